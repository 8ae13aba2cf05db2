import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from evidence import crypto, custody, vault
from evidence.checks import master_key_opens_the_vault
from evidence.models import CustodyEvent, EvidenceItem, EvidenceProblem
from staff.models import Notification

from .evidence_files import bomb_png, pattern_png, truncated_png
from .factories import make_report

pytestmark = pytest.mark.django_db

MARKER = b"PLACEHOLDER-EVIDENCE-MARKER-7f3a"


@pytest.fixture
def case(integration):
    return make_report(integration).case


def stored_bytes(root) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def collect(case, data: bytes, name="file.bin", **kwargs) -> EvidenceItem:
    return vault.collect(io.BytesIO(data), case=case, original_name=name, **kwargs)


def test_storage_holds_no_plaintext_and_the_item_reads_back(case, evidence_root):
    data = MARKER * 50_000 + b"tail"  # several encryption chunks
    item = collect(case, data)
    stored = stored_bytes(evidence_root)
    assert stored and MARKER not in stored
    assert b"".join(vault.read_verified(item)) == data
    assert item.size == len(data)
    assert item.sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert item.md5 == __import__("hashlib").md5(data).hexdigest()
    (event,) = item.custody.all()
    assert (event.action, event.item_sha256) == ("collect", item.sha256)


def test_the_type_comes_from_the_bytes_not_the_name(case):
    item = collect(case, pattern_png(), name="holiday.txt")
    assert item.media_type == "image/png"
    assert len(item.pdq) == 64 and item.pdq_quality is not None
    assert item.problem == ""


def test_exif_is_read_from_images(case):
    item = collect(case, pattern_png(exif=True), name="photo.jpg")
    assert item.media_type == "image/jpeg"
    assert item.exif["Make"] == "PlaceholderCam"


@pytest.mark.parametrize(
    "data, problem",
    [(truncated_png(), EvidenceProblem.CORRUPT), (bomb_png(), EvidenceProblem.BOMB)],
)
def test_corrupt_and_bomb_images_are_preserved_and_flagged(case, data, problem):
    item = collect(case, data, name="broken.png")
    assert item.problem == problem
    assert item.pdq == ""
    assert b"".join(vault.read_verified(item)) == data  # preserved byte for byte


def flip_a_byte(root, offset_from_end=40):
    (path,) = [p for p in root.rglob("*") if p.is_file()]
    raw = bytearray(path.read_bytes())
    raw[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_storage_refuses_the_read_and_alerts_the_cso(case, evidence_root, cso):
    item = collect(case, MARKER * 100)
    flip_a_byte(evidence_root)
    with pytest.raises(vault.EvidenceIntegrityError):
        vault.read_verified(item)
    assert item.custody.filter(action=CustodyEvent.Action.VERIFY_FAILED).exists()
    assert Notification.objects.filter(recipient=cso, kind="evidence_integrity").exists()


def test_verify_custody_finds_a_flipped_byte(case, evidence_root):
    collect(case, MARKER * 100)
    call_command("verify_custody")  # all well: exits normally
    flip_a_byte(evidence_root)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_custody", stdout=out)
    assert exit_.value.code != 0
    assert "fails authentication" in out.getvalue()


def test_a_truncated_item_is_caught(case, evidence_root):
    item = collect(case, MARKER * 40_000)  # two chunks
    (path,) = [p for p in evidence_root.rglob("*") if p.is_file()]
    path.write_bytes(path.read_bytes()[: crypto.HEADER_SIZE + crypto.CHUNK_SIZE + 16])
    assert "fails authentication" in vault.check(item)


def test_the_ledger_is_a_hash_chain(case):
    item = collect(case, b"one")
    custody.record(item, CustodyEvent.Action.VIEW, system="test", purpose="review")
    events = list(CustodyEvent.objects.order_by("pk"))
    assert events[0].prev_hash == custody.GENESIS
    assert events[1].prev_hash == events[0].hash
    assert custody.verify_chain().broken == []


def test_the_model_refuses_to_change_or_delete_custody_events(case):
    collect(case, b"one")
    event = CustodyEvent.objects.get()
    event.purpose = "changed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        CustodyEvent.objects.all().update(purpose="changed")
    with pytest.raises(TypeError):
        CustodyEvent.objects.all().delete()


def force(sql, params=()):
    """Change the ledger behind the application's back (on PostgreSQL past its trigger, as a
    database superuser could)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def test_the_database_refuses_changes_to_the_ledger_and_verify_custody_catches_forced_ones(case):
    collect(case, b"one")
    collect(case, b"two")
    if connection.vendor == "postgresql":
        for sql in [
            "UPDATE evidence_custodyevent SET purpose = 'changed'",
            "DELETE FROM evidence_custodyevent",
        ]:
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
        assert CustodyEvent.objects.count() == 2
    first = CustodyEvent.objects.order_by("pk").first()
    force("UPDATE evidence_custodyevent SET purpose = 'changed' WHERE id = %s", [first.pk])
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_custody", stdout=out)
    assert exit_.value.code == 1
    assert f"custody event {first.pk}: its fields were changed" in out.getvalue()


def test_a_deleted_event_breaks_the_chain(case):
    collect(case, b"one")
    collect(case, b"two")
    collect(case, b"three")
    middle = CustodyEvent.objects.order_by("pk")[1]
    force("DELETE FROM evidence_custodyevent WHERE id = %s", [middle.pk])
    assert any("does not follow" in line for line in custody.verify_chain().broken)


def test_nothing_is_stored_when_the_database_write_fails(case, evidence_root, monkeypatch):
    def fail(*args, **kwargs):
        raise DatabaseError("simulated")

    monkeypatch.setattr(custody, "record", fail)
    with pytest.raises(DatabaseError):
        collect(case, MARKER)
    assert not EvidenceItem.objects.exists()
    assert not [p for p in evidence_root.rglob("*") if p.is_file()]


def test_a_wrong_master_key_is_a_start_up_error(case, settings):
    collect(case, b"one")
    assert master_key_opens_the_vault() == []
    settings.BAKKME_EVIDENCE_KEY = crypto.new_key_text()
    (error,) = master_key_opens_the_vault()
    assert error.id == "evidence.E002"
    settings.BAKKME_EVIDENCE_KEY = "not-a-key"
    (error,) = master_key_opens_the_vault()
    assert error.id == "evidence.E001"


def test_reading_with_the_wrong_key_is_refused_clearly(case, settings):
    item = collect(case, b"one")
    settings.BAKKME_EVIDENCE_KEY = crypto.new_key_text()
    with pytest.raises(crypto.UnknownKeyError, match="not configured"):
        vault.check(item)


def test_a_missing_key_is_a_clear_error(settings):
    settings.BAKKME_EVIDENCE_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="BAKKME_EVIDENCE_KEY is not set"):
        crypto.current_key()
