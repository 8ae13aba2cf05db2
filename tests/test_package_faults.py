"""Evidence package builds under faults (issue 13, finding 5): a worker killed mid-build leaves
no plaintext evidence on disk and no package stuck "building"; the build's lease, the sweep of
dead builds, "Build again", and the sweep of work folders when a worker starts."""

import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_q.signals import post_spawn

from evidence import access, custody, packages, tasks, vault
from evidence.models import CustodyEvent, EvidencePackage

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db
Status = EvidencePackage.Status

ITEM_SIZE = 3 * 1024 * 1024 // 2  # 1.5 MiB: two encryption chunks each


def item_bytes(seed: int, size: int = ITEM_SIZE) -> bytes:
    """Placeholder evidence: bytes no other file holds by chance."""
    return random.Random(seed).randbytes(size)


def samples(data: bytes, count: int = 16, length: int = 48) -> list[bytes]:
    step = (len(data) - length) // (count - 1)
    return [data[i * step : i * step + length] for i in range(count)]


def plaintext_on_disk(roots: list[Path], originals: list[bytes]) -> list[str]:
    """Every file under `roots` that holds a sample of one of the originals."""
    wanted = [sample for data in originals for sample in samples(data)]
    found = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                if any(sample in content for sample in wanted):
                    found.append(str(path.relative_to(root.parent)))
    return found


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
    return [item_bytes(seed) for seed in range(4)]


@pytest.fixture
def items(case, originals):
    return [
        vault.collect(io.BytesIO(data), case=case, original_name=f"placeholder-{n}.bin")
        for n, data in enumerate(originals)
    ]


def request(case, user) -> EvidencePackage:
    """A requested package, not built yet (the caller builds it)."""
    return packages.request_package(case, user, "placeholder purpose", "Placeholder Police",
                                    queue=False)  # fmt: skip


def downloaded(package, user, folder: Path) -> Path:
    path = folder / "download.zip"
    path.write_bytes(b"".join(packages.open_download(package, user)))
    return path


def set_building(package, *, lease_until, token="a" * 32, heartbeat_at=None) -> None:
    """The package as a build in another process leaves it."""
    heartbeat_at = heartbeat_at or lease_until - timedelta(seconds=30)
    EvidencePackage.objects.filter(pk=package.pk).update(
        status=Status.BUILDING, progress=30, progress_note="Writing item 2 of 4",
        lease_token=token, lease_until=lease_until, heartbeat_at=heartbeat_at,
    )  # fmt: skip


# --- A real worker, killed mid-build -------------------------------------------------------------

# The worker: a Python process set up against the test's database, evidence storage and
# package folder, that builds the package the way the django-q2 task does. Reading each chunk
# of evidence is slowed down so that the test can kill it mid-build.
WORKER = r"""
import json, os, sys, time

config = json.loads(sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "bakkme_safety.settings_test"
from django.conf import settings

settings.DATABASES["default"]["NAME"] = config["database"]
settings.STORAGES = {**settings.STORAGES, "evidence": {**settings.STORAGES["evidence"],
    "OPTIONS": {**settings.STORAGES["evidence"]["OPTIONS"], "location": config["evidence"]}}}
settings.BAKKME_PACKAGE_TEMP_DIR = config["temp_dir"]
settings.BAKKME_PACKAGE_LEASE_SECONDS = config["lease_seconds"]
import django

django.setup()
from evidence import tasks, vault

decrypted = vault.decrypted


def slow(sealed):
    for piece in decrypted(sealed):
        time.sleep(config["pause"])
        yield piece


vault.decrypted = slow
print("building", flush=True)
tasks.build_package(config["package"])
print("built", flush=True)
"""

LEASE_SECONDS = 2


def start_worker(package, evidence_root, temp_root, log: Path) -> subprocess.Popen:
    config = {
        "database": str(settings.DATABASES["default"]["NAME"]),
        "evidence": str(evidence_root),
        "temp_dir": str(temp_root),
        "lease_seconds": LEASE_SECONDS,
        "package": package.pk,
        "pause": 0.25,
    }
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(config)],
        cwd=settings.BASE_DIR,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def kill_mid_build(package, evidence_root, temp_root, tmp_path) -> EvidencePackage:
    """Start the worker, wait until it writes the second item, kill -9 it."""
    log = tmp_path / "worker.log"
    worker = start_worker(package, evidence_root, temp_root, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            package.refresh_from_db()
            if package.progress_note.startswith("Writing item 2"):
                break
            assert worker.poll() is None, f"the worker ended early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the worker never wrote:\n{log.read_text()}"
            time.sleep(0.02)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    package.refresh_from_db()
    assert package.status == Status.BUILDING, log.read_text()  # killed before it was done
    return package


def wait_for_the_lease_to_run_out(package) -> None:
    package.refresh_from_db()
    assert package.lease_until is not None
    while timezone.now() <= package.lease_until:
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_killed_build_leaves_no_plaintext_and_the_task_delivered_again_builds_it(
    case, items, originals, lawyer, evidence_root, temp_root, tmp_path, settings
):
    settings.BAKKME_PACKAGE_LEASE_SECONDS = LEASE_SECONDS
    package = kill_mid_build(request(case, lawyer), evidence_root, temp_root, tmp_path)
    assert plaintext_on_disk([temp_root, evidence_root], originals) == []

    tasks.build_package(package.pk)  # delivered again while the lease still runs: left alone
    token = package.lease_token
    package.refresh_from_db()
    assert (package.status, package.lease_token) == (Status.BUILDING, token)

    wait_for_the_lease_to_run_out(package)
    post_spawn.send(sender="django_q", proc_name="Process-1:2")  # a worker starts again
    assert list(temp_root.iterdir()) == []  # the dead build's work folder is gone
    tasks.build_package(package.pk)  # delivered again after the lease ran out: taken over
    package.refresh_from_db()
    assert package.status == Status.READY, package.error
    assert package.lease_token != token
    assert packages.verify_zip(downloaded(package, lawyer, tmp_path)) == []
    exports = CustodyEvent.objects.filter(action=CustodyEvent.Action.EXPORT)
    assert sorted(exports.values_list("item_id", flat=True)) == [item.pk for item in items]
    assert plaintext_on_disk([temp_root, evidence_root], originals) == []
    assert list(temp_root.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_a_killed_build_is_failed_by_the_sweep_and_built_again_by_its_requester(
    client, case, items, originals, lawyer, evidence_root, temp_root, tmp_path, settings
):
    settings.BAKKME_PACKAGE_LEASE_SECONDS = LEASE_SECONDS
    package = kill_mid_build(request(case, lawyer), evidence_root, temp_root, tmp_path)
    assert plaintext_on_disk([temp_root, evidence_root], originals) == []
    wait_for_the_lease_to_run_out(package)

    grace = timedelta(seconds=settings.Q_CLUSTER["retry"])
    with time_machine.travel(package.lease_until + grace + timedelta(seconds=1), tick=False):
        assert tasks.fail_dead_package_builds() == 1
    package.refresh_from_db()
    stopped = package.heartbeat_at
    assert package.status == Status.FAILED
    assert f"The build stopped at {stopped:%H:%M} UTC on {stopped:%Y-%m-%d}" in package.error
    tasks.build_package(package.pk)  # a delivery again now changes nothing
    package.refresh_from_db()
    assert package.status == Status.FAILED

    client.force_login(lawyer)
    page = client.get(reverse("admin:evidence_evidencepackage_change", args=[package.pk]))
    assert "The build stopped at" in page.content.decode()
    assert "Build again" in page.content.decode()
    response = client.post(reverse("admin:evidence_evidencepackage_rebuild", args=[package.pk]))
    assert response.status_code == 302
    package.refresh_from_db()
    assert package.status == Status.READY, package.error  # the sync cluster built it at once
    assert packages.verify_zip(downloaded(package, lawyer, tmp_path)) == []
    assert plaintext_on_disk([temp_root, evidence_root], originals) == []


# --- The stream-built bag ------------------------------------------------------------------------


def test_no_plaintext_reaches_the_disk_while_building_and_the_bag_validates(
    case, items, originals, lawyer, temp_root, evidence_root, tmp_path, monkeypatch
):
    seen = []
    set_progress = packages._Progress.set

    def look(progress, percent, note):
        seen.append((note, plaintext_on_disk([temp_root, evidence_root], originals)))
        set_progress(progress, percent, note)

    monkeypatch.setattr(packages._Progress, "set", look)
    package = packages.build(request(case, lawyer).pk)
    assert package.status == Status.READY, package.error
    assert any(note.startswith("Writing item 4") for note, _ in seen)
    assert [(note, found) for note, found in seen if found] == []

    path = downloaded(package, lawyer, tmp_path)
    assert packages.verify_zip(path) == []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "out")
    root = f"bakkme-evidence-package-{package.pk}"
    assert {name.split("/", 1)[0] for name in names} == {root}
    assert {
        f"{root}/{name}"
        for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                     "tagmanifest-sha256.txt", "tagmanifest-sha512.txt", "data/metadata.json",
                     "data/timeline.json", "data/custody.json", "data/summary.html",
                     "data/ledger-checkpoint.json")
    } | {f"{root}/data/{packages.item_path(item)}" for item in items} == set(names)  # fmt: skip
    bag = bagit.Bag(str(tmp_path / "out" / root))
    bag.validate()  # payload and tag manifests, Payload-Oxum
    assert bag.version_info == (1, 0)
    payload = [path for path in (tmp_path / "out" / root / "data").rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in payload)
    assert bag.info["Payload-Oxum"] == f"{size}.{len(payload)}"
    assert set(bag.algorithms) == {"sha256", "sha512"}
    tag_manifest = (tmp_path / "out" / root / "tagmanifest-sha512.txt").read_text()
    assert {line.split()[1] for line in tag_manifest.splitlines()} == {
        "bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt"}  # fmt: skip
    assert list(temp_root.iterdir()) == []


def zip64_entries(path: Path) -> list[str]:
    """The entries whose local header carries a ZIP64 extra field."""
    names = []
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            offset = info.header_offset
            name_length, extra_length = struct.unpack("<HH", raw[offset + 26 : offset + 30])
            extra = raw[offset + 30 + name_length : offset + 30 + name_length + extra_length]
            while len(extra) >= 4:
                header, length = struct.unpack("<HH", extra[:4])
                if header == 0x0001:
                    names.append(info.filename)
                extra = extra[4 + length :]
    return names


def test_large_entries_are_zip64_and_still_validate(
    case, items, lawyer, temp_root, tmp_path, monkeypatch
):
    monkeypatch.setattr(packages, "ZIP64_FROM", 1024 * 1024)  # "large" from 1 MiB, not 2 GiB
    package = packages.build(request(case, lawyer).pk)
    path = downloaded(package, lawyer, tmp_path)
    assert packages.verify_zip(path) == []
    assert sorted(name.rsplit("/", 1)[1] for name in zip64_entries(path)) == sorted(
        packages.item_path(item).rsplit("/", 1)[1] for item in items
    )


# --- The lease -----------------------------------------------------------------------------------


def test_a_live_build_is_not_taken_over_and_a_dead_one_is(case, items, lawyer, temp_root):
    package = request(case, lawyer)
    live = timezone.now() + timedelta(seconds=settings.BAKKME_PACKAGE_LEASE_SECONDS)
    set_building(package, lease_until=live)
    assert tasks.build_package(package.pk) is None
    package.refresh_from_db()
    assert (package.status, package.lease_token, package.progress) == (
        Status.BUILDING,
        "a" * 32,
        30,
    )
    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.EXPORT).exists()

    # The dead build had got as far as recording the export: the one taking over reuses it.
    custody.record(items, CustodyEvent.Action.EXPORT, actor=lawyer, purpose=package.purpose,
                   detail={"package": package.pk, "recipient": package.recipient})  # fmt: skip
    set_building(package, lease_until=timezone.now() - timedelta(seconds=1))
    tasks.build_package(package.pk)
    package.refresh_from_db()
    assert package.status == Status.READY, package.error
    assert package.lease_until is None
    exports = CustodyEvent.objects.filter(action=CustodyEvent.Action.EXPORT)
    assert sorted(exports.values_list("item_id", flat=True)) == [item.pk for item in items]


def test_a_build_without_its_work_folder_fails_instead_of_staying_building(
    case, items, lawyer, settings, tmp_path
):
    settings.BAKKME_PACKAGE_TEMP_DIR = str(tmp_path / "no-such-folder")
    package = packages.build(request(case, lawyer).pk)
    assert package.status == Status.FAILED
    assert "FileNotFoundError" in package.error


def test_a_build_that_lost_its_lease_stops_without_a_trace(
    case, items, lawyer, temp_root, evidence_root, monkeypatch
):
    """Another run took it over (this one stalled past its lease): this one stops, stores
    nothing and does not fail the other's build."""
    set_progress = packages._Progress.set

    def taken_over(progress, percent, note):
        if note.startswith("Writing item 2"):
            EvidencePackage.objects.filter(pk=package.pk).update(lease_token="b" * 32)
        set_progress(progress, percent, note)

    monkeypatch.setattr(packages._Progress, "set", taken_over)
    package = request(case, lawyer)
    packages.build(package.pk)
    package.refresh_from_db()
    assert (package.status, package.lease_token, package.error) == (Status.BUILDING, "b" * 32, "")
    assert not (evidence_root / "packages").exists()
    assert list(temp_root.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_the_lease_through_a_step_without_progress(
    case, items, lawyer, temp_root, settings, monkeypatch
):
    """Checking an item whole before it is read reports no progress: the lease is renewed
    meanwhile all the same, so nobody takes over a build that is alive."""
    settings.BAKKME_PACKAGE_LEASE_SECONDS = 1
    check = vault.check
    leases = []

    def slow_check(item):
        time.sleep(1.5)
        package = EvidencePackage.objects.get(pk=package_id)
        leases.append(package.lease_until - timezone.now())
        return check(item)

    monkeypatch.setattr(vault, "check", slow_check)
    package_id = request(case, lawyer).pk
    monkeypatch.setattr(packages, "included_items", lambda package: items[:1])
    assert packages.build(package_id).status == Status.READY
    assert len(leases) == 1 and leases[0] > timedelta(0)  # still live after 1.5 leases


# --- The sweep of dead builds --------------------------------------------------------------------


def test_the_sweep_fails_a_dead_build_once_with_the_reason(case, items, lawyer, cso):
    now = timezone.now()
    grace = timedelta(seconds=settings.Q_CLUSTER["retry"])
    dead, recent, live = request(case, lawyer), request(case, lawyer), request(case, lawyer)
    heartbeat = now - grace - timedelta(minutes=5)
    set_building(dead, lease_until=now - grace - timedelta(seconds=1), heartbeat_at=heartbeat)
    set_building(recent, lease_until=now - timedelta(seconds=1), token="c" * 32)
    set_building(live, lease_until=now + timedelta(seconds=60), token="d" * 32)

    assert packages.fail_dead_builds(now) == 1
    dead.refresh_from_db()
    assert dead.status == Status.FAILED
    assert dead.error == (
        f"The build stopped at {heartbeat:%H:%M} UTC on {heartbeat:%Y-%m-%d} (its worker "
        'ended). Press "Build again" to build it again.'
    )
    assert packages.fail_dead_builds(now) == 0  # once
    assert EvidencePackage.objects.get(pk=dead.pk).error == dead.error
    statuses = EvidencePackage.objects.filter(pk__in=[recent.pk, live.pk]).values_list(
        "status", flat=True
    )
    assert list(statuses) == [Status.BUILDING, Status.BUILDING]  # a delivery again may take them


def test_the_sweep_runs_as_a_django_q_schedule():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="evidence-package-builds")
    assert schedule.func == "evidence.tasks.fail_dead_package_builds"
    assert (schedule.schedule_type, schedule.minutes) == (
        Schedule.MINUTES, settings.BAKKME_PACKAGE_SWEEP_MINUTES)  # fmt: skip


# --- Build again ---------------------------------------------------------------------------------


@pytest.fixture
def failed(case, items, lawyer, temp_root):
    package = request(case, lawyer)
    long_ago = timezone.now() - timedelta(hours=1)
    set_building(package, lease_until=long_ago)
    packages.fail_dead_builds()
    package.refresh_from_db()
    assert package.status == Status.FAILED
    return package


def rebuild_url(package) -> str:
    return reverse("admin:evidence_evidencepackage_rebuild", args=[package.pk])


def test_build_again_for_the_requester(client, failed, lawyer, django_capture_on_commit_callbacks):
    client.force_login(lawyer)
    page = client.get(reverse("admin:evidence_evidencepackage_change", args=[failed.pk]))
    html = page.content.decode()
    assert "The build stopped at" in html and 'id="package-rebuild"' in html
    assert client.get(rebuild_url(failed)).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rebuild_url(failed))
    assert response["Location"] == reverse(
        "admin:evidence_evidencepackage_change", args=[failed.pk]
    )
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (Status.READY, "")
    response = client.post(rebuild_url(failed))  # only a failed one
    assert response.status_code == 409
    assert "only a failed package can be built again" in response.content.decode()


def test_build_again_for_the_cso_and_nobody_else(
    client, failed, case, cso, reviewer, django_capture_on_commit_callbacks
):
    other_lawyer = UserFactory(username="lou", roles=["legal"])
    access.grant(case, other_lawyer, by=cso, reason="placeholder")
    for person in (other_lawyer, reviewer):
        client.force_login(person)
        assert client.post(rebuild_url(failed)).status_code == 404
    failed.refresh_from_db()
    assert failed.status == Status.FAILED

    client.force_login(cso)
    page = client.get(reverse("admin:evidence_evidencepackage_change", args=[failed.pk]))
    assert 'id="package-rebuild"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(rebuild_url(failed)).status_code == 302
    failed.refresh_from_db()
    assert failed.status == Status.READY


def test_build_again_deletes_the_zip_of_a_package_that_failed_its_integrity_check(
    client, case, items, lawyer, evidence_root, django_capture_on_commit_callbacks
):
    package = packages.build(request(case, lawyer).pk)
    stored = evidence_root / package.storage_name
    stored.write_bytes(b"placeholder: not the zip that was built")
    with pytest.raises(packages.PackageIntegrityError):
        packages.open_download(package, lawyer)
    package.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        packages.rebuild(package, actor=lawyer)
    package.refresh_from_db()
    assert package.status == Status.READY and not stored.exists()
    assert packages.check_package(package) is None


# --- The sweep of work folders at a worker's start -----------------------------------------------


def test_work_folders_no_live_build_uses_are_removed_when_a_worker_starts(
    case, items, lawyer, temp_root
):
    old = temp_root / "bakkme-package-k2j4x9qa" / "bag" / "data" / "items"  # older versions'
    old.mkdir(parents=True)
    (old / "1-placeholder.bin").write_bytes(item_bytes(9, 4096))
    live, dead = request(case, lawyer), request(case, lawyer)
    set_building(live, lease_until=timezone.now() + timedelta(seconds=60), token="e" * 32)
    set_building(dead, lease_until=timezone.now() - timedelta(seconds=1), token="f" * 32)
    (temp_root / f"bakkme-package-{live.pk}-{'e' * 32}").mkdir()
    (temp_root / f"bakkme-package-{dead.pk}-{'f' * 32}").mkdir()
    (temp_root / "someone-else").mkdir()

    post_spawn.send(sender="django_q", proc_name="Process-1:1")
    assert sorted(path.name for path in temp_root.iterdir()) == [
        f"bakkme-package-{live.pk}-{'e' * 32}",
        "someone-else",
    ]
