"""Evidence packages: request, build (BagIt), download, expiry, verify_package, the admin."""

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from evidence import access, packages, tasks, vault
from evidence.models import CustodyEvent, EvidenceItem, EvidenceKind, EvidencePackage
from staff.models import Notification

from .evidence_files import pattern_png
from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

LOG = json.dumps([{"at": "2025-01-01T00:00:00Z", "from": "u-1", "text": "placeholder"}]).encode()
BIG = b"PLACEHOLDER-EVIDENCE-BYTES-0123456789" * 60_000  # > 2 MB: several encryption chunks


@pytest.fixture
def report(integration):
    return make_report(integration)


@pytest.fixture
def case(report):
    return report.case


@pytest.fixture
def items(case, report):
    return [
        vault.collect(
            io.BytesIO(pattern_png(exif=True)),
            case=case,
            report=report,
            original_name="photo one.jpg",
        ),  # fmt: skip
        vault.collect(io.BytesIO(pattern_png(seed=3)), case=case, original_name=""),
        vault.collect(
            io.BytesIO(LOG),
            case=case,
            kind=EvidenceKind.COMMUNICATION_LOG,
            original_name="chat-log.json",
        ),  # fmt: skip
        vault.collect(io.BytesIO(BIG), case=case, original_name="../../large.bin"),
    ]


@pytest.fixture
def lawyer(legal, cso, case):
    access.grant(case, legal, by=cso, reason="law-enforcement request placeholder")
    return legal


@pytest.fixture
def temp_root(settings, tmp_path):
    """The packages' temporary folder, to see that nothing is left in it."""
    root = tmp_path / "package-temp"
    root.mkdir()
    settings.BAKKME_PACKAGE_TEMP_DIR = str(root)
    return root


def request(case, user, django_capture_on_commit_callbacks, **kwargs) -> EvidencePackage:
    """Request a package; the queued task runs when the transaction commits (sync cluster)."""
    kwargs = {"purpose": "placeholder purpose", "recipient": "Placeholder Police", **kwargs}
    with django_capture_on_commit_callbacks(execute=True):
        package = packages.request_package(case, user, **kwargs)
    package.refresh_from_db()
    return package


def download(client, user, package):
    client.force_login(user)
    return client.get(reverse("admin:evidence_evidencepackage_download", args=[package.pk]))


def zip_bytes(response) -> bytes:
    return b"".join(response.streaming_content)


def extract(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    (root,) = folder.iterdir()
    return root


@pytest.fixture
def built(case, items, lawyer, temp_root, django_capture_on_commit_callbacks):
    package = request(case, lawyer, django_capture_on_commit_callbacks)
    assert package.status == EvidencePackage.Status.READY, package.error
    return package


# --- The bag -------------------------------------------------------------------------------------


def test_the_downloaded_bag_validates_and_its_manifests_are_the_collected_hashes(
    client, built, items, lawyer, tmp_path, temp_root
):
    response = download(client, lawyer, built)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = zip_bytes(response)
    assert len(data) == built.size and hashlib.sha256(data).hexdigest() == built.sha256

    bag = bagit.Bag(str(extract(data, tmp_path / "out")))
    bag.validate()
    assert set(bag.algorithms) == {"sha256", "sha512"}
    for item in items:
        entry = bag.entries[f"data/{packages.item_path(item)}"]
        assert entry["sha256"] == item.sha256
        assert len(entry["sha512"]) == 128
    assert bag.info["Source-Organization"] == settings.BAKKME_EVIDENCE_ORGANIZATION
    assert bag.info["External-Identifier"] == str(built.case_id)
    assert bag.info["Bagging-Date"] == timezone.now().date().isoformat()
    assert bag.info["Requested-By"] == lawyer.username
    assert bag.info["Purpose"] == "placeholder purpose"
    assert bag.info["Recipient"] == "Placeholder Police"
    assert list(temp_root.iterdir()) == []  # the plaintext bag is gone


def test_files_are_named_by_item_and_safe_name_and_logs_copied_as_is(
    client, built, items, lawyer, tmp_path
):
    root = extract(zip_bytes(download(client, lawyer, built)), tmp_path / "out")
    photo, unnamed, log, big = items
    assert packages.item_path(photo) == f"items/{photo.pk}-photo_one.jpg"
    assert packages.item_path(unnamed) == f"items/{unnamed.pk}.png"
    assert packages.item_path(big) == f"items/{big.pk}-large.bin"  # no way out of the folder
    assert (root / "data" / packages.item_path(log)).read_bytes() == LOG
    assert (root / "data" / packages.item_path(big)).read_bytes() == BIG
    summary = (root / "data" / "summary.html").read_text()
    assert f"Evidence package #{built.pk}" in summary
    assert "src=" not in summary and "<script" not in summary  # no external assets


def test_metadata_timeline_and_custody_files(client, built, items, report, lawyer, tmp_path):
    data_dir = extract(zip_bytes(download(client, lawyer, built)), tmp_path / "out") / "data"
    meta = json.loads((data_dir / "metadata.json").read_text())
    assert meta["case"]["id"] == built.case_id
    assert meta["package"]["recipient"] == "Placeholder Police"
    assert meta["package"]["scope"] == "the whole case"
    (reported,) = meta["reports"]
    assert reported["account"]["platform_id"] == report.account_platform_id
    assert reported["account"]["username"] == report.account_username
    assert reported["content"]["platform_id"] == report.content_platform_id
    # The reporter's identity never leaves the back office.
    assert report.reporter_contact not in (data_dir / "metadata.json").read_text()
    by_id = {entry["id"]: entry for entry in meta["items"]}
    assert set(by_id) == {item.pk for item in items}
    photo = by_id[items[0].pk]
    assert (photo["sha256"], photo["md5"], photo["size"]) == (
        items[0].sha256, items[0].md5, items[0].size)  # fmt: skip
    assert photo["media_type"] == "image/jpeg"
    assert photo["exif"]["Make"] == "PlaceholderCam"
    assert photo["pdq"] == items[0].pdq and len(photo["pdq"]) == 64
    assert photo["problem"] == "" and photo["report"] == report.pk
    assert by_id[items[2].pk]["kind"] == "communication_log"

    timeline = json.loads((data_dir / "timeline.json").read_text())
    assert [entry["type"] for entry in timeline][:2] == ["created", "report_added"]
    assert "evidence_access_granted" in {entry["type"] for entry in timeline}

    custody = json.loads((data_dir / "custody.json").read_text())
    actions = {(event["item"], event["action"]) for event in custody}
    for item in items:
        assert (item.pk, "collect") in actions and (item.pk, "export") in actions
    exported = [event for event in custody if event["action"] == "export"]
    assert exported[0]["detail"] == {"package": built.pk, "recipient": "Placeholder Police"}


def test_chosen_items_only(case, items, lawyer, django_capture_on_commit_callbacks):
    package = request(case, lawyer, django_capture_on_commit_callbacks, items=[items[1].pk])
    assert package.status == "ready"
    assert list(package.items.all()) == [items[1]]
    assert EvidenceItem.objects.get(pk=items[0].pk).custody.filter(action="export").count() == 0


def test_progress_is_written_as_the_build_goes(
    case, items, lawyer, monkeypatch, django_capture_on_commit_callbacks
):
    seen = []
    original = packages._Progress.set

    def spy(progress, percent, note):
        seen.append((percent, note))
        original(progress, percent, note)

    monkeypatch.setattr(packages._Progress, "set", spy)
    package = request(case, lawyer, django_capture_on_commit_callbacks)
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents) and 0 < len(set(percents)) <= 101
    assert any(note.startswith("Writing item") for _, note in seen)
    assert any(note.startswith("Zipping and encrypting") for _, note in seen)
    assert (package.progress, package.progress_note) == (100, "Ready")


# --- Custody -------------------------------------------------------------------------------------


def test_building_records_export_and_each_download_records_download(client, built, items, lawyer):
    for item in items:
        (export,) = item.custody.filter(action=CustodyEvent.Action.EXPORT)
        assert export.actor == lawyer and export.purpose == "placeholder purpose"
        assert export.detail["package"] == built.pk
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOAD).exists()
    zip_bytes(download(client, lawyer, built))
    zip_bytes(download(client, lawyer, built))
    for item in items:
        downloads = item.custody.filter(action=CustodyEvent.Action.DOWNLOAD)
        assert downloads.count() == 2
        assert all(d.detail["package"] == built.pk and d.actor == lawyer for d in downloads)


# --- Who may, and for how long -------------------------------------------------------------------


def test_the_link_expires_with_410(client, built, lawyer):
    later = built.expires_at + timedelta(minutes=1)
    client.force_login(lawyer)
    with time_machine.travel(later, tick=False):
        response = download(client, lawyer, built)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOAD).exists()
    hours = settings.BAKKME_PACKAGE_LINK_HOURS
    with time_machine.travel(built.built_at + timedelta(hours=hours - 1), tick=False):
        assert download(client, lawyer, built).status_code == 200


def test_only_the_requester_downloads(client, built, cso, lawyer):
    other_lawyer = UserFactory(username="lou", roles=["legal"])
    access.grant(built.case, other_lawyer, by=cso, reason="placeholder")
    for person in (cso, other_lawyer):  # both may see the case's evidence: still 404
        assert download(client, person, built).status_code == 404
    access.revoke(built.case, lawyer, by=cso, reason="placeholder")
    assert download(client, lawyer, built).status_code == 404  # lost access: no download


def test_someone_without_access_cannot_request(client, case, items, legal, reviewer):
    with pytest.raises(PermissionDenied):  # legal staff without a grant on the case
        packages.request_package(case, legal, "placeholder", "placeholder")
    client.force_login(legal)
    response = client.post(
        reverse("admin:evidence_evidencepackage_add"),
        {"case": case.pk, "purpose": "placeholder", "recipient": "placeholder"},
    )
    assert response.status_code == 200
    assert "No such case" in response.content.decode()
    client.force_login(reviewer)  # no export permission at all
    assert client.get(reverse("admin:evidence_evidencepackage_add")).status_code == 403
    assert not EvidencePackage.objects.exists()


def test_requests_are_checked(case, items, lawyer, cso, integration):
    other_item = vault.collect(io.BytesIO(b"other"), case=make_report(integration).case)
    with pytest.raises(ValidationError) as blank:
        packages.request_package(case, lawyer, "  ", "")
    assert set(blank.value.message_dict) == {"purpose", "recipient"}
    with pytest.raises(ValidationError, match="Not evidence of case"):
        packages.request_package(case, lawyer, "p", "r", items=[items[0], other_item])
    EvidenceItem.objects.filter(pk=items[1].pk).update(purged_at=timezone.now())
    with pytest.raises(ValidationError, match="Destroyed by retention"):
        packages.request_package(case, lawyer, "p", "r", items=[items[1].pk])
    assert not EvidencePackage.objects.exists()


# --- The task ------------------------------------------------------------------------------------


def test_the_task_run_twice_builds_once(built, items, evidence_root):
    stored = sorted((evidence_root / "packages").rglob("*.bkev"))
    assert len(stored) == 1
    tasks.build_package(built.pk)  # delivered again
    built.refresh_from_db()
    assert built.status == "ready"
    assert sorted((evidence_root / "packages").rglob("*.bkev")) == stored
    assert CustodyEvent.objects.filter(action="export").count() == len(items)


def test_a_tampered_item_fails_the_package_and_leaves_nothing(
    case, items, lawyer, cso, evidence_root, temp_root, django_capture_on_commit_callbacks
):
    stored = evidence_root / items[3].storage_name
    raw = bytearray(stored.read_bytes())
    raw[-40] ^= 0x01
    stored.write_bytes(bytes(raw))
    package = request(case, lawyer, django_capture_on_commit_callbacks)
    assert package.status == EvidencePackage.Status.FAILED
    assert f"Evidence #{items[3].pk} failed its integrity check" in package.error
    assert package.storage_name == "" and package.expires_at is None
    assert not (evidence_root / "packages").exists()
    assert list(temp_root.iterdir()) == []
    assert items[3].custody.filter(action=CustodyEvent.Action.VERIFY_FAILED).exists()
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.EXPORT).exists()
    assert Notification.objects.filter(recipient=cso, kind="evidence_integrity").exists()


def test_a_tampered_stored_package_is_not_handed_out(client, built, lawyer, evidence_root):
    stored = evidence_root / built.storage_name
    raw = bytearray(stored.read_bytes())
    raw[100] ^= 0x01
    stored.write_bytes(bytes(raw))
    response = download(client, lawyer, built)
    assert response.status_code == 409
    assert "failed its integrity check" in response.content.decode()
    built.refresh_from_db()
    assert built.status == EvidencePackage.Status.FAILED
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOAD).exists()


# --- The commands --------------------------------------------------------------------------------


def export(case, user, out: Path) -> str:
    stdout = io.StringIO()
    call_command(
        "export_evidence", str(case.pk), out=str(out), user=user.username,
        purpose="placeholder purpose", recipient="Placeholder Court", stdout=stdout,
    )  # fmt: skip
    return stdout.getvalue()


def test_export_evidence_writes_the_zip_and_verify_package_says_valid(
    case, items, lawyer, tmp_path
):
    out = tmp_path / "package.zip"
    printed = export(case, lawyer, out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() in printed
    package = EvidencePackage.objects.get()
    assert (package.status, package.recipient) == ("ready", "Placeholder Court")
    assert items[0].custody.filter(action="download", detail__via="export_evidence").exists()
    stdout = io.StringIO()
    call_command("verify_package", str(out), stdout=stdout)
    assert "valid" in stdout.getvalue()


def test_export_evidence_refuses_someone_without_access(case, items, legal, tmp_path):
    with pytest.raises(CommandError, match="may not export"):
        export(case, legal, tmp_path / "package.zip")
    assert not (tmp_path / "package.zip").exists()


def rewrite_zip(source: Path, target: Path, change) -> None:
    """A copy of the zip with one member's bytes changed (the zip itself stays well-formed)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info)))


def test_verify_package_finds_a_changed_file(case, items, lawyer, tmp_path):
    good = tmp_path / "good.zip"
    export(case, lawyer, good)
    target = f"data/{packages.item_path(items[0])}"

    def flip(name, data):
        return bytes([data[0] ^ 0x01]) + data[1:] if name.endswith(target) else data

    rewrite_zip(good, tmp_path / "changed.zip", flip)
    with pytest.raises(CommandError) as failed:
        call_command("verify_package", str(tmp_path / "changed.zip"))
    message = str(failed.value)
    assert target in message and "metadata.json records" in message

    raw = bytearray(good.read_bytes())  # a flipped byte in the zip as downloaded
    raw[raw.index(BIG[:20]) + 1000] ^= 0x01
    (tmp_path / "flipped.zip").write_bytes(bytes(raw))
    with pytest.raises(CommandError, match="not a valid evidence package"):
        call_command("verify_package", str(tmp_path / "flipped.zip"))


def test_verify_package_wants_the_bag_info_and_metadata(case, items, lawyer, tmp_path):
    good = tmp_path / "good.zip"
    export(case, lawyer, good)

    def strip(name, data):
        if name.endswith("/bag-info.txt"):
            return b"".join(line for line in data.splitlines(True) if b"Recipient" not in line)
        return data

    rewrite_zip(good, tmp_path / "no-recipient.zip", strip)
    with pytest.raises(CommandError, match="bag-info.txt has no Recipient"):
        call_command("verify_package", str(tmp_path / "no-recipient.zip"))
    (tmp_path / "not.zip").write_bytes(b"placeholder")
    with pytest.raises(CommandError, match="not a zip file"):
        call_command("verify_package", str(tmp_path / "not.zip"))


# --- The admin -----------------------------------------------------------------------------------


def test_request_through_the_admin_and_follow_it(
    client, case, items, lawyer, django_capture_on_commit_callbacks
):
    client.force_login(lawyer)
    add_url = reverse("admin:evidence_evidencepackage_add")
    assert "Request the package" in client.get(add_url).content.decode()
    form = {"case": case.pk, "purpose": "placeholder", "recipient": "placeholder",
            "item_ids": f"{items[0].pk}, {items[1].pk}"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(add_url, form)
    package = EvidencePackage.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:evidence_evidencepackage_change", args=[package.pk]
    )
    assert sorted(package.items.values_list("pk", flat=True)) == [items[0].pk, items[1].pk]

    page = client.get(response["Location"]).content.decode()
    assert "Download the package" in page and 'http-equiv="refresh"' not in page
    assert "<script>" not in page  # nothing inline (a strict CSP is coming)

    EvidencePackage.objects.filter(pk=package.pk).update(status="building", progress=40)
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page and 'value="40"' in page
    assert "Download the package" not in page


def test_the_list_shows_ones_own_packages_and_the_cso_all(
    client, built, case, cso, django_capture_on_commit_callbacks
):
    other_lawyer = UserFactory(username="lou", roles=["legal"])
    access.grant(case, other_lawyer, by=cso, reason="placeholder")
    request(case, other_lawyer, django_capture_on_commit_callbacks, recipient="Other Recipient")
    changelist = reverse("admin:evidence_evidencepackage_changelist")

    client.force_login(built.requested_by)
    page = client.get(changelist).content.decode()
    assert "Placeholder Police" in page and "Other Recipient" not in page
    change = reverse("admin:evidence_evidencepackage_change", args=[built.pk + 1])
    assert client.get(change).status_code == 404  # another's package: as if missing

    client.force_login(cso)
    page = client.get(changelist).content.decode()
    assert "Placeholder Police" in page and "Other Recipient" in page
    assert "Download the package" not in client.get(change).content.decode()  # not theirs
    assert (
        client.post(reverse("admin:evidence_evidencepackage_delete", args=[built.pk])).status_code
        == 403
    )


def test_the_retention_run_deletes_the_zips_of_expired_packages(built, evidence_root):
    from evidence import retention

    before = len([p for p in evidence_root.rglob("*") if p.is_file()])
    assert retention.purge(built.expires_at - timedelta(minutes=1)).packages_deleted == 0
    result = retention.purge(built.expires_at)
    assert result.packages_deleted == 1
    built.refresh_from_db()
    assert built.storage_name == "" and built.wrapped_key is None
    assert len([p for p in evidence_root.rglob("*") if p.is_file()]) == before - 1


def test_rotating_the_master_key_keeps_ready_packages_readable(settings, built):
    from evidence import crypto
    from evidence.actions import rotate_master_key

    old = settings.BAKKME_EVIDENCE_KEY
    settings.BAKKME_EVIDENCE_KEY = crypto.new_key_text()
    settings.BAKKME_EVIDENCE_OLD_KEYS = [old]
    rotate_master_key()
    settings.BAKKME_EVIDENCE_OLD_KEYS = []
    built.refresh_from_db()
    assert packages.check_package(built) is None
