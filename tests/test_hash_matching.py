"""Hash banks and PDQ matching (README "Hash banks and PDQ matching"): import, matching at
ingest, the match API, the automatic actions on a CSAM match, and equality with
python-threatexchange's exact PDQ index. Generated images and random hashes only."""

import hashlib
import io
import random

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from PIL import Image

from cases.models import CaseEvent
from detection import matching
from detection.models import HashBank, HashEntry, HashMatch
from evidence import vault
from evidence.samples import pattern_png

from .factories import make_report

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_index(settings):
    settings.BAKKME_PDQ_INDEX_REFRESH_SECONDS = 0
    matching.reset_index()
    yield
    matching.reset_index()


def random_hex(rng, digits=64):
    return "".join(rng.choice("0123456789abcdef") for _ in range(digits))


def flip(pdq_hex: str, bits, rng) -> str:
    value = int(pdq_hex, 16)
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def bank(name="ncmec-test", is_csam=True, **entries):
    the_bank = HashBank.objects.create(name=name, source="ncmec", is_csam=is_csam)
    for signal_type, values in entries.items():
        for value in values:
            HashEntry.objects.create(bank=the_bank, signal_type=signal_type, value=value)
    return the_bank


def collect(integration, data, **report):
    report = make_report(integration, **report)
    return vault.collect(io.BytesIO(data), case=report.case, report=report)


# --- import_hashes -----------------------------------------------------------------------------


def test_import_hashes_creates_the_bank_and_adds_each_hash_once(tmp_path):
    rng = random.Random(1)
    values = [random_hex(rng) for _ in range(3)]
    path = tmp_path / "hashes.txt"
    path.write_text(f"{values[0]}, first\n\n{values[1].upper()}\n{values[2]},third\n{values[0]}\n")
    out = io.StringIO()
    call_command("import_hashes", "shared", str(path), "--type", "pdq", stdout=out)
    assert "3 pdq hashes added to shared (bank created)" in out.getvalue()
    entries = HashEntry.objects.filter(bank__name="shared").order_by("pk")
    assert [e.value for e in entries] == values  # lower case
    assert [e.note for e in entries] == ["first", "", "third"]
    call_command("import_hashes", "shared", str(path), "--type", "pdq", stdout=out)
    assert HashEntry.objects.count() == 3


def test_a_bad_line_is_named_and_nothing_is_imported(tmp_path):
    rng = random.Random(2)
    path = tmp_path / "hashes.txt"
    path.write_text(f"{random_hex(rng, 32)}\n{random_hex(rng, 32)}\nnot-a-hash, note\n")
    with pytest.raises(CommandError, match="line 3"):
        call_command("import_hashes", "md5s", str(path), "--type", "md5")
    assert not HashEntry.objects.exists()
    assert not HashBank.objects.exists()


def test_the_admin_validates_an_entry(db):
    from django.core.exceptions import ValidationError

    entry = HashEntry(bank=bank(), signal_type="sha256", value="ABC")
    with pytest.raises(ValidationError):
        entry.full_clean()


# --- Matching at ingest --------------------------------------------------------------------------


def test_an_entrys_hash_cannot_be_edited_only_its_note(client, db):
    from django.urls import reverse

    from .factories import UserFactory

    entry = bank(md5=["0" * 32]).entries.get()
    client.force_login(UserFactory(roles=["senior_reviewer"]))
    url = reverse("admin:detection_hashentry_change", args=[entry.pk])
    response = client.post(url, {"signal_type": "md5", "value": "1" * 32, "note": "corrected"})
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.value == "0" * 32 and entry.note == "corrected"


def test_exact_md5_and_sha256_match_at_ingest(integration):
    data = pattern_png(seed=11)
    bank(md5=[hashlib.md5(data).hexdigest()], sha256=[hashlib.sha256(data).hexdigest()])
    item = collect(integration, data)
    assert sorted(m.entry.signal_type for m in item.hash_matches.all()) == ["md5", "sha256"]
    assert {m.distance for m in item.hash_matches.all()} == {0}


def test_a_resized_reencoded_copy_matches_and_an_unrelated_image_does_not(integration):
    original = pattern_png(seed=13)
    first = collect(integration, original)
    assert first.pdq_quality >= django_settings.BAKKME_PDQ_MIN_QUALITY
    bank(pdq=[first.pdq])
    image = Image.open(io.BytesIO(original)).convert("RGB")
    image = image.crop((2, 2, 318, 238)).resize((200, 150))
    copy = io.BytesIO()
    image.save(copy, format="JPEG", quality=70)
    item = collect(integration, copy.getvalue())
    (match,) = item.hash_matches.all()
    assert 0 < match.distance <= django_settings.BAKKME_PDQ_MAX_DISTANCE
    assert not collect(integration, pattern_png(seed=99)).hash_matches.exists()


def test_pdq_near_copies_within_the_distance_match_and_far_ones_do_not():
    rng = random.Random(3)
    value = random_hex(rng)
    entry = bank(pdq=[value]).entries.get()
    limit = django_settings.BAKKME_PDQ_MAX_DISTANCE
    for bits in (0, 1, 16, limit):
        (match,) = matching.match_hashes(pdq=flip(value, bits, rng), pdq_quality=100)
        assert (match.entry, match.distance) == (entry, bits)
    assert matching.match_hashes(pdq=flip(value, limit + 1, rng), pdq_quality=100) == []
    assert matching.match_hashes(pdq=random_hex(rng), pdq_quality=100) == []


def test_a_pdq_hash_of_low_quality_is_not_matched():
    rng = random.Random(4)
    value = random_hex(rng)
    bank(pdq=[value])
    low = django_settings.BAKKME_PDQ_MIN_QUALITY - 1
    assert matching.match_hashes(pdq=value, pdq_quality=low) == []
    assert len(matching.match_hashes(pdq=value, pdq_quality=low + 1)) == 1


def test_a_new_entry_matches_without_a_restart_and_a_disabled_bank_stops_matching():
    rng = random.Random(5)
    the_bank = bank(pdq=[random_hex(rng)])
    value = random_hex(rng)
    assert matching.match_hashes(pdq=value) == []  # the index is built now
    HashEntry.objects.create(bank=the_bank, signal_type="pdq", value=value)
    assert len(matching.match_hashes(pdq=value)) == 1
    HashBank.objects.filter(pk=the_bank.pk).update(enabled=False)
    assert matching.match_hashes(pdq=value) == []


def test_the_index_is_reused_until_the_banks_change():
    rng = random.Random(6)
    bank(pdq=[random_hex(rng)])
    first = matching.pdq_index()
    assert matching.pdq_index() is first
    HashEntry.objects.create(bank=HashBank.objects.get(), signal_type="pdq", value=random_hex(rng))
    assert matching.pdq_index() is not first


def test_another_process_maps_the_saved_index_instead_of_building_it(settings, tmp_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.BAKKME_PDQ_INDEX_DIR = tmp_path
    rng = random.Random(7)
    values = [random_hex(rng) for _ in range(50)]
    bank(pdq=values)
    built = matching.pdq_index()  # the first process builds it and saves it
    (saved,) = tmp_path.iterdir()
    matching.reset_index()  # another process, same banks
    with CaptureQueriesContext(connection) as queries:
        mapped = matching.pdq_index()
    assert len(queries) == 1  # the version; no entries read, nothing built
    assert isinstance(mapped.codes, np.memmap) and isinstance(mapped.positions, np.memmap)
    query = flip(values[3], 9, rng)
    assert mapped.search(query, 31) == built.search(query, 31) != []
    # A new entry is a new version: built and saved beside it, the old one left for processes
    # that may still be loading it.
    HashEntry.objects.create(bank=HashBank.objects.get(), signal_type="pdq", value=random_hex(rng))
    matching.pdq_index()
    assert len(list(tmp_path.iterdir())) == 2 and saved.is_dir()


def test_a_damaged_saved_index_is_built_again(settings, tmp_path):
    settings.BAKKME_PDQ_INDEX_DIR = tmp_path
    rng = random.Random(8)
    value = random_hex(rng)
    bank(pdq=[value])
    matching.pdq_index()
    (saved,) = tmp_path.iterdir()
    (saved / "codes.npy").write_bytes(b"not an array")
    matching.reset_index()
    assert [m.distance for m in matching.match_hashes(pdq=value)] == [0]


def test_old_versions_are_removed_once_no_process_can_still_load_them(settings, tmp_path):
    import os
    import time

    settings.BAKKME_PDQ_INDEX_DIR = tmp_path
    rng = random.Random(9)
    bank(pdq=[random_hex(rng)])
    matching.pdq_index()
    (old,) = tmp_path.iterdir()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    HashEntry.objects.create(bank=HashBank.objects.get(), signal_type="pdq", value=random_hex(rng))
    matching.pdq_index()
    assert [d.name for d in tmp_path.iterdir()] != [old.name]
    assert len(list(tmp_path.iterdir())) == 1


# --- Automatic actions ---------------------------------------------------------------------------


def test_a_csam_match_suspends_and_removes_at_once_and_raises_the_case_to_p1(integration):
    data = pattern_png(seed=13)
    bank(md5=[hashlib.md5(data).hexdigest()])
    item = collect(integration, data, category="other", surface="post")
    case = item.case
    case.refresh_from_db()
    assert case.priority == 1 and case.is_child_safety
    actions = {a.type: a for a in case.actions.all()}
    assert set(actions) == {"remove_content", "suspend_account"}
    assert {a.status for a in actions.values()} == {"pending"}
    assert {a.decision_id for a in actions.values()} == {None}
    assert actions["remove_content"].content_platform_id == item.report.content_platform_id
    draft = case.events.get(type=CaseEvent.Type.NOTE_ADDED, payload__cybertip_draft=True)
    assert draft.payload["hash_matches"][0]["bank"] == "ncmec-test"
    # The same file again: its match is recorded, the actions are not taken twice.
    again = vault.collect(io.BytesIO(data), case=case, report=item.report)
    assert again.hash_matches.count() == 1
    assert case.actions.count() == 2


def test_a_match_against_a_bank_that_is_not_csam_takes_no_action(integration):
    data = pattern_png(seed=14)
    bank(is_csam=False, sha256=[hashlib.sha256(data).hexdigest()])
    item = collect(integration, data, category="other", surface="post")
    assert HashMatch.objects.filter(item=item).exists()
    assert not item.case.actions.exists()


# --- POST /api/v1/match/ -------------------------------------------------------------------------


def test_the_match_api_answers_a_hash(api):
    rng = random.Random(7)
    value = random_hex(rng)
    entry = bank(pdq=[value]).entries.get()
    near = flip(value, 9, rng)
    answer = api.post("/api/v1/match/", {"signal_type": "pdq", "hash": near}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "matches": [{"bank": "ncmec-test", "entry": entry.pk, "signal_type": "pdq", "distance": 9}]
    }
    missing = api.post("/api/v1/match/", {"signal_type": "md5", "hash": "0" * 32}, format="json")
    assert missing.json() == {"matches": []}


def test_the_match_api_hashes_a_file_without_storing_it(api, evidence_root):
    data = pattern_png(seed=15)
    bank(sha256=[hashlib.sha256(data).hexdigest()])
    answer = api.post("/api/v1/match/", {"file": io.BytesIO(data)}, format="multipart")
    assert answer.status_code == 200, answer.content
    assert [m["signal_type"] for m in answer.json()["matches"]] == ["sha256"]
    assert not HashMatch.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"signal_type": "pdq", "hash": "xyz"}, "hash"),
        ({"signal_type": "md5", "hash": "0" * 64}, "hash"),
        ({"signal_type": "crc32", "hash": "0" * 8}, "signal_type"),
        ({"hash": "0" * 64}, "signal_type"),
        ({}, "signal_type"),
    ],
)
def test_the_match_api_refuses_bad_input_field_by_field(api, body, field):
    answer = api.post("/api/v1/match/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()


def test_the_match_api_needs_a_token(client):
    assert client.post("/api/v1/match/", {}).status_code == 401


# --- Against the reference -----------------------------------------------------------------------


def test_our_pdq_matches_equal_python_threatexchange_exact_index():
    """2,000 random bank hashes, 200 queries: half near copies at distances 0..31, half random.
    The reference is python-threatexchange's PDQIndex2 (faiss range search, exact); its default
    PDQIndex (faiss IndexBinaryMultiHash, HMA's) must find nothing we do not."""
    pdq_index2 = pytest.importorskip("threatexchange.signal_type.pdq.pdq_index2")
    pdq_index = pytest.importorskip("threatexchange.signal_type.pdq.pdq_index")
    rng = random.Random(8)
    hashes = [random_hex(rng) for _ in range(2000)]
    ours = matching.PDQIndex(hashes, range(len(hashes)))
    theirs = pdq_index2.PDQIndex2(entries=[(h, i) for i, h in enumerate(hashes)])
    multihash = pdq_index.PDQIndex([(h, i) for i, h in enumerate(hashes)])
    queries = [flip(rng.choice(hashes), rng.randint(0, 31), rng) for _ in range(100)]
    queries += [random_hex(rng) for _ in range(100)]
    found = 0
    for query in queries:
        got = sorted(ours.search(query, 31))
        expected = sorted((m.metadata, m.similarity_info.distance) for m in theirs.query(query))
        assert got == expected
        approximate = {(m.metadata, m.similarity_info.distance) for m in multihash.query(query)}
        assert approximate <= set(got)
        found += bool(got)
    assert found >= 100


def test_our_pdq_index_equals_a_brute_force_scan():
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    hexes = [bytes(row).hex() for row in codes]
    index = matching.PDQIndex(hexes, range(len(hexes)))
    for _ in range(100):
        query = codes[rng.integers(len(codes))].copy()
        for bit in rng.choice(256, rng.integers(0, 40), replace=False):
            query[bit // 8] ^= 1 << (bit % 8)
        distances = np.unpackbits(codes ^ query, axis=1).sum(axis=1)
        expected = sorted((int(i), int(distances[i])) for i in np.flatnonzero(distances <= 31))
        assert sorted(index.search(bytes(query).hex(), 31)) == expected


def test_a_large_file_to_match_is_never_written_to_disk(api, monkeypatch, settings, tmp_path):
    """A file over Django's in-memory upload size would go to a plaintext temporary file; the
    match endpoint keeps it in memory (it may be CSAM) and still matches it."""
    import tempfile

    from django.core.files import uploadedfile

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    data = pattern_png(seed=16) + b"\0" * (settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1)
    bank(sha256=[hashlib.sha256(data).hexdigest()])

    def no_temporary_file(*args, **kwargs):
        raise AssertionError("the upload was written to a temporary file")

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", no_temporary_file)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_temporary_file)
    answer = api.post("/api/v1/match/", {"file": io.BytesIO(data)}, format="multipart")
    assert answer.status_code == 200, answer.content
    assert [m["signal_type"] for m in answer.json()["matches"]] == ["sha256"]
    assert list(tmp_path.iterdir()) == []
