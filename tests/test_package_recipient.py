"""Evidence packages encrypted for their recipient (issue 14, "Packages for their recipient"):
with the recipient's age public key, what is handed out is the zip's age ciphertext, which
only the recipient's identity opens; the vault still encrypts it at rest. No manual 7-Zip step.
"""

import hashlib
import io
import tracemalloc
import zipfile
from pathlib import Path

import bagit
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from pyrage import DecryptError, decrypt, x25519

from evidence import access, packages, vault
from evidence.models import CustodyEvent, EvidencePackage

from .factories import make_report
from .test_package_faults import item_bytes, plaintext_on_disk, samples

pytestmark = pytest.mark.django_db
Status = EvidencePackage.Status

AGE_MAGIC = b"age-encryption.org/v1\n"
# Text every bag holds (bagit.txt): it must not rest on disk either.
BAG_MARKER = b"BagIt-Version: 1.0"


@pytest.fixture
def identity():
    """The recipient's age identity (what `age-keygen -o key.txt` makes)."""
    return x25519.Identity.generate()


@pytest.fixture
def recipient_key(identity) -> str:
    return str(identity.to_public())


@pytest.fixture
def key_file(identity, tmp_path) -> Path:
    path = tmp_path / "key.txt"
    public = identity.to_public()
    path.write_text(f"# created: placeholder\n# public key: {public}\n{identity}\n")
    return path


@pytest.fixture
def temp_root(settings, tmp_path):
    root = tmp_path / "package-temp"
    root.mkdir()
    settings.BAKKME_PACKAGE_TEMP_DIR = str(root)
    return root


@pytest.fixture
def case(integration):
    return make_report(integration).case


@pytest.fixture
def lawyer(legal, cso, case):
    access.grant(case, legal, by=cso, reason="law-enforcement request placeholder")
    return legal


@pytest.fixture
def originals():
    return [item_bytes(seed) for seed in range(3)]


@pytest.fixture
def items(case, originals):
    return [
        vault.collect(io.BytesIO(data), case=case, original_name=f"placeholder-{n}.bin")
        for n, data in enumerate(originals)
    ]


def request(case, user, key: str = "") -> EvidencePackage:
    return packages.request_package(
        case, user, "placeholder purpose", "Placeholder Police", recipient_key=key, queue=False
    )


def request_in_admin(client, case, user, key, django_capture_on_commit_callbacks):
    client.force_login(user)
    form = {"case": case.pk, "purpose": "placeholder purpose", "recipient": "Placeholder Police",
            "recipient_key": key}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("admin:evidence_evidencepackage_add"), form)


def download(client, user, package):
    client.force_login(user)
    response = client.get(reverse("admin:evidence_evidencepackage_download", args=[package.pk]))
    assert response.status_code == 200
    return response, b"".join(response.streaming_content)


def opened(data: bytes, identity, folder: Path) -> Path:
    """The recipient's side: decrypt with their identity, write the zip."""
    path = folder / "package.zip"
    path.write_bytes(decrypt(data, [identity]))
    return path


# --- The hand-over -------------------------------------------------------------------------------


def test_the_download_is_age_encrypted_and_the_recipients_identity_opens_a_valid_bag(
    client, case, items, originals, lawyer, identity, recipient_key, temp_root, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    response = request_in_admin(client, case, lawyer, recipient_key,
                                django_capture_on_commit_callbacks)  # fmt: skip
    package = EvidencePackage.objects.get()
    assert response.status_code == 302
    assert (package.status, package.recipient_key) == (Status.READY, recipient_key)

    page = client.get(response["Location"]).content.decode()
    name = f"bakkme-evidence-package-{package.pk}"
    assert 'id="package-recipient-key"' in page and recipient_key in page
    assert f"age -d -i key.txt {name}.zip.age &gt; {name}.zip" in page
    assert f"{name}.zip.age" in page and package.zip_sha256 in page

    response, data = download(client, lawyer, package)
    assert response["Content-Disposition"] == f'attachment; filename="{name}.zip.age"'
    assert data.startswith(AGE_MAGIC) and not zipfile.is_zipfile(io.BytesIO(data))
    # What is stored (under the vault's encryption) is what is handed out.
    assert (len(data), hashlib.sha256(data).hexdigest()) == (package.size, package.sha256)
    assert packages.check_package(package) is None

    path = opened(data, identity, tmp_path)
    zipped = path.read_bytes()
    assert (len(zipped), hashlib.sha256(zipped).hexdigest()) == (
        package.zip_size, package.zip_sha256)  # fmt: skip
    assert packages.verify_zip(path) == []
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path / "out")
    bag = bagit.Bag(str(tmp_path / "out" / name))
    bag.validate()
    for item, data in zip(items, originals, strict=True):
        assert (tmp_path / "out" / name / "data" / packages.item_path(item)).read_bytes() == data
        assert bag.entries[f"data/{packages.item_path(item)}"]["sha256"] == item.sha256
    assert list(temp_root.iterdir()) == []


def test_without_the_identity_it_does_not_open(client, case, items, originals, lawyer,
                                               recipient_key, temp_root):  # fmt: skip
    package = packages.build(request(case, lawyer, recipient_key).pk)
    _, data = download(client, lawyer, package)
    with pytest.raises(DecryptError):
        decrypt(data, [x25519.Identity.generate()])  # anyone else's key
    assert not any(sample in data for original in originals for sample in samples(original))
    assert BAG_MARKER not in data


def test_a_package_without_a_key_is_the_zip_as_before(client, case, items, lawyer, temp_root):
    package = packages.build(request(case, lawyer).pk)
    response, data = download(client, lawyer, package)
    name = f"bakkme-evidence-package-{package.pk}"
    assert response["Content-Disposition"] == f'attachment; filename="{name}.zip"'
    assert response["Content-Type"] == "application/zip" and zipfile.is_zipfile(io.BytesIO(data))
    assert package.recipient_key == "" and package.zip_sha256 == package.sha256
    page = client.get(reverse("admin:evidence_evidencepackage_change", args=[package.pk]))
    assert 'id="package-recipient-key"' not in page.content.decode()


# --- Bad keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "age1notakey",
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gp",  # checksum wrong
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderPlaceholderPlaceholder placeholder",
        "the recipient's key",
    ],
)
def test_a_malformed_key_is_refused_with_a_field_error_and_nothing_stored(
    client, case, items, lawyer, bad, django_capture_on_commit_callbacks
):
    response = request_in_admin(client, case, lawyer, bad, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Not an age public key" in page and 'class="form-row errors"' in page
    assert not EvidencePackage.objects.exists()
    with pytest.raises(ValidationError) as refused:
        request(case, lawyer, bad)
    assert set(refused.value.message_dict) == {"recipient_key"}
    assert not EvidencePackage.objects.exists()


def test_a_secret_key_pasted_by_mistake_is_refused_and_not_echoed(
    client, case, items, lawyer, identity, django_capture_on_commit_callbacks
):
    secret = str(identity)
    response = request_in_admin(client, case, lawyer, secret, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    page = response.content.decode()
    assert "That is the recipient&#x27;s secret key" in page and "age-keygen" in page
    assert secret not in page and secret.lower() not in page
    assert not EvidencePackage.objects.exists()
    with pytest.raises(ValidationError, match="secret key"):
        request(case, lawyer, f"# a key file\n{secret}")


def test_the_form_says_where_the_recipient_gets_a_key(client, lawyer):
    client.force_login(lawyer)
    page = client.get(reverse("admin:evidence_evidencepackage_add")).content.decode()
    assert 'name="recipient_key"' in page and "age-keygen" in page


def test_a_pasted_key_is_kept_as_age_writes_it(case, items, lawyer, recipient_key):
    package = request(case, lawyer, f"  {recipient_key.upper()}\n")
    assert package.recipient_key == recipient_key


# --- Building it ---------------------------------------------------------------------------------


def test_memory_stays_bounded_while_encrypting(case, lawyer, recipient_key, temp_root):
    many = [item_bytes(seed) for seed in range(16)]  # 24 MiB of evidence
    for n, data in enumerate(many):
        vault.collect(io.BytesIO(data), case=case, original_name=f"placeholder-{n}.bin")
    package = request(case, lawyer, recipient_key)
    tracemalloc.start()
    try:
        package = packages.build(package.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert package.status == Status.READY, package.error
    assert package.zip_size > sum(len(data) for data in many)
    # The zip streams through; a few chunks (crypto.CHUNK_SIZE) are in memory at a time.
    assert peak < package.zip_size / 2, f"peak {peak:,} bytes for a {package.zip_size:,} zip"


def test_no_plaintext_reaches_the_disk_while_building(
    case, items, originals, lawyer, identity, recipient_key, temp_root, evidence_root,
    monkeypatch, tmp_path,
):  # fmt: skip
    seen = []
    set_progress = packages._Progress.set

    def look(progress, percent, note):
        found = plaintext_on_disk([temp_root, evidence_root], originals)
        found += [str(path) for path in temp_root.rglob("*")
                  if path.is_file() and BAG_MARKER in path.read_bytes()]  # fmt: skip
        seen.append((note, found))
        set_progress(progress, percent, note)

    monkeypatch.setattr(packages._Progress, "set", look)
    package = packages.build(request(case, lawyer, recipient_key).pk)
    assert package.status == Status.READY, package.error
    assert any(note.startswith("Writing item 3") for note, _ in seen)
    assert [(note, found) for note, found in seen if found] == []
    assert plaintext_on_disk([temp_root, evidence_root], originals) == []
    # Under the vault's encryption lies the age ciphertext, not the zip.
    assert b"".join(vault.decrypted(package)).startswith(AGE_MAGIC)
    assert list(temp_root.iterdir()) == []


def test_a_failure_inside_the_encryption_fails_the_package_and_leaves_nothing(
    case, items, lawyer, recipient_key, temp_root, evidence_root, monkeypatch
):
    writes = []
    sealer_write = vault.Sealer.write

    def full_disk(sealer, piece):
        writes.append(len(piece))
        if len(writes) > 40:  # a while into the first item
            raise OSError(28, "No space left on device")
        return sealer_write(sealer, piece)

    monkeypatch.setattr(vault.Sealer, "write", full_disk)
    package = packages.build(request(case, lawyer, recipient_key).pk)
    assert package.status == Status.FAILED
    assert "Encrypting the package for its recipient failed" in package.error
    assert "No space left on device" in package.error
    assert package.storage_name == "" and not (evidence_root / "packages").exists()
    assert list(temp_root.iterdir()) == []


def test_the_custody_events_are_as_before(client, case, items, lawyer, recipient_key, temp_root):
    package = packages.build(request(case, lawyer, recipient_key).pk)
    for item in items:
        (export,) = item.custody.filter(action=CustodyEvent.Action.EXPORT)
        assert (export.actor, export.purpose) == (lawyer, "placeholder purpose")
        assert export.detail == {"package": package.pk, "recipient": "Placeholder Police"}
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOAD).exists()
    download(client, lawyer, package)
    for item in items:
        (event,) = item.custody.filter(action=CustodyEvent.Action.DOWNLOAD)
        assert event.detail == {"package": package.pk, "via": "admin"}


def test_building_again_keeps_the_key(case, items, lawyer, recipient_key, identity, temp_root):
    package = request(case, lawyer, recipient_key)
    EvidencePackage.objects.filter(pk=package.pk).update(status=Status.FAILED, error="placeholder")
    package.refresh_from_db()
    packages.rebuild(package, actor=lawyer)
    package = packages.build(package.pk)
    assert (package.status, package.recipient_key) == (Status.READY, recipient_key)
    data = b"".join(packages.open_download(package, lawyer))
    assert hashlib.sha256(decrypt(data, [identity])).hexdigest() == package.zip_sha256


# --- The commands --------------------------------------------------------------------------------


def test_export_evidence_encrypts_for_the_key_and_verify_package_needs_the_identity(
    case, items, lawyer, recipient_key, key_file, temp_root, tmp_path
):
    out = tmp_path / "package.zip.age"
    stdout = io.StringIO()
    call_command(
        "export_evidence", str(case.pk), out=str(out), user=lawyer.username,
        purpose="placeholder purpose", recipient="Placeholder Court",
        recipient_key=recipient_key, stdout=stdout,
    )  # fmt: skip
    data = out.read_bytes()
    package = EvidencePackage.objects.get()
    assert data.startswith(AGE_MAGIC) and package.recipient_key == recipient_key
    assert hashlib.sha256(data).hexdigest() in stdout.getvalue()
    assert f"age -d -i key.txt {out.name}" in stdout.getvalue()
    assert items[0].custody.filter(action="download", detail__via="export_evidence").exists()

    with pytest.raises(CommandError, match=r"encrypted for its recipient.*--identity key\.txt"):
        call_command("verify_package", str(out))
    other = tmp_path / "other-key.txt"
    other.write_text(f"{x25519.Identity.generate()}\n")
    with pytest.raises(CommandError, match="does not open"):
        call_command("verify_package", str(out), identity=str(other))
    (tmp_path / "not-a-key.txt").write_text("placeholder\n")
    with pytest.raises(CommandError, match="holds no age identity"):
        call_command("verify_package", str(out), identity=str(tmp_path / "not-a-key.txt"))
    stdout = io.StringIO()
    call_command("verify_package", str(out), identity=str(key_file), stdout=stdout)
    assert "valid" in stdout.getvalue()
    assert list(temp_root.iterdir()) == []  # the opened zip is gone again


def test_verify_package_finds_a_changed_file_inside_the_encryption(
    case, items, lawyer, identity, recipient_key, key_file, tmp_path
):
    package = packages.build(request(case, lawyer, recipient_key).pk)
    data = b"".join(packages.open_download(package, lawyer))
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in the age ciphertext
    (tmp_path / "flipped.zip.age").write_bytes(bytes(raw))
    with pytest.raises(CommandError, match="not a valid evidence package"):
        call_command("verify_package", str(tmp_path / "flipped.zip.age"),
                     identity=str(key_file))  # fmt: skip


def test_export_evidence_refuses_a_malformed_key(case, items, lawyer, tmp_path):
    out = tmp_path / "package.zip.age"
    with pytest.raises(CommandError, match="Not an age public key"):
        call_command(
            "export_evidence", str(case.pk), out=str(out), user=lawyer.username,
            purpose="placeholder purpose", recipient_key="age1notakey",
        )  # fmt: skip
    assert not out.exists() and not EvidencePackage.objects.exists()


def test_recipients_reads_age_keygen_identity_files(identity, key_file):
    from evidence import recipients  # (imported here: the module is new)

    (read,) = recipients.read_identities(key_file)
    assert str(read.to_public()) == str(identity.to_public())
