"""Evidence packages: a case's evidence as a BagIt bag, for a named recipient.

Legal staff ask for one (request_package); a django-q2 task builds it (build): the items are
decrypted, checked against their SHA-256 and written with the case's metadata, timeline and
chain of custody as a BagIt bag (SHA-256 and SHA-512 manifests) straight into a zip that is
encrypted as it is written (vault.Sealer), then stored in evidence storage like an item.
Only the requester downloads it (open_download), until the link expires; every download is a
custody event of every item in it. verify_zip checks a downloaded zip (with the `bagit` library).

A package requested with its recipient's age public key is also encrypted for them
(evidence.recipients): the zip streams into an age encryptor that streams into the Sealer, so
the vault keeps, and the requester downloads, `<name>.zip.age`, which only the recipient's
identity opens (verify_download checks it given that identity).

No plaintext evidence rests on disk, even when the worker is killed mid-build: plaintext exists
only in memory, a chunk (crypto.CHUNK_SIZE) at a time; the build's work folder only ever holds
ciphertext. A build holds a lease on its package, renewed while it lives: a build whose lease
ran out is dead, taken over by the task delivered again (build) or failed by the sweep
(fail_dead_builds) with the reason, and built again on request (rebuild). Work folders that no
live build uses are removed when a worker starts (sweep_work_areas).
"""

import hashlib
import json
import logging
import mimetypes
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta
from pathlib import Path

import bagit
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone

from cases.actions import timeline

from . import access, checkpoints, crypto, custody, recipients, signals, vault
from .models import CustodyEvent, EvidenceItem, EvidenceKind, EvidencePackage
from .storage import evidence_storage

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "evidence.export_evidence"
BAG_CHECKSUMS = ["sha256", "sha512"]
# bag-info.txt fields every package has (the build adds Payload-Oxum and Bag-Software-Agent).
REQUIRED_BAG_INFO = (
    "Source-Organization",
    "External-Identifier",
    "Bagging-Date",
    "Requested-By",
    "Purpose",
    "Recipient",
    "Evidence-Package",
)
# Evidence is mostly compressed media already: deflating it costs far more time than it saves
# (see bench/RESULTS.md), so the zip stores files as they are.
ZIP_COMPRESSION = zipfile.ZIP_STORED
# Entries from this size are written with ZIP64 headers (force_zip64). zipfile would choose
# ZIP64 itself from the size given up front (above 2 GiB / 1.05); forcing it from 1 GiB leaves
# no doubt for an entry larger than the zip format's 32-bit sizes.
ZIP64_FROM = zipfile.ZIP64_LIMIT // 2
BAGIT_VERSION = "1.0"  # RFC 8493
BAG_SOFTWARE_AGENT = "BakkMe Safety back office (evidence.packages)"
READ_CHUNK = crypto.CHUNK_SIZE
Status = EvidencePackage.Status
# A build's work folder: bakkme-package-<package id>-<lease token> (sweep_work_areas); older
# versions named theirs bakkme-package-<random> and left a plaintext bag in it when killed.
WORK_AREA_PREFIX = "bakkme-package-"
_WORK_AREA = re.compile(rf"{WORK_AREA_PREFIX}(?P<package>\d+)-(?P<token>[0-9a-f]{{32}})")
REBUILD_HINT = 'Press "Build again" to build it again.'


class PackageUnavailable(Exception):
    """The package cannot be downloaded now; `status` is the HTTP status that says why."""

    status = 409


class LinkExpired(PackageUnavailable):
    status = 410


class PackageIntegrityError(PackageUnavailable):
    """The stored package is not the one built: it is not handed out."""


class PackageBuildError(Exception):
    """The package cannot be built as asked (its message is shown to the requester)."""


# --- Requesting ----------------------------------------------------------------------------------


def may_export(user, case) -> bool:
    """The export permission and the one evidence access rule (evidence.access)."""
    return user.has_perm(EXPORT_PERMISSION) and access.may_access(user, case)


def request_package(
    case,
    user,
    purpose: str,
    recipient: str,
    items=None,
    *,
    recipient_key: str = "",
    queue: bool = True,
) -> EvidencePackage:
    """Ask for a package of `case`'s evidence (`items`: some of it, as items or ids; None or
    empty: all of it). With `recipient_key` (the recipient's age public key, "age1..."), the
    package is also encrypted for the recipient: only their identity opens what is handed out.
    Queues the build when the transaction commits (queue=False: the caller builds it, as
    export_evidence does)."""
    if not may_export(user, case):
        raise PermissionDenied("You may not export this case's evidence.")
    purpose, recipient = (purpose or "").strip(), (recipient or "").strip()
    errors: dict[str, list[str]] = {}
    recipient_key = _recipient_key(recipient_key, errors)
    if not purpose:
        errors.setdefault("purpose", []).append("Say what the package is for.")
    if not recipient:
        errors.setdefault("recipient", []).append("Name who receives the package.")
    for field, value in (("purpose", purpose), ("recipient", recipient)):
        limit = EvidencePackage._meta.get_field(field).max_length
        if len(value) > limit:
            errors.setdefault(field, []).append(f"At most {limit} characters.")
    chosen = _chosen_items(case, items, errors)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        package = EvidencePackage.objects.create(
            case=case,
            purpose=purpose,
            recipient=recipient,
            recipient_key=recipient_key,
            requested_by=user,
        )
        package.items.set(chosen)
        signals.package_requested.send(sender=EvidencePackage, package=package)
        if queue:
            transaction.on_commit(lambda: _queue_build(package.pk))
    return package


def _recipient_key(text: str, errors: dict) -> str:
    """The age recipient as age writes it ("" for none); a malformed one is a field error."""
    if not (text or "").strip():
        return ""
    try:
        return recipients.normalize_recipient(text)
    except recipients.RecipientKeyError as exc:
        errors.setdefault("recipient_key", []).append(str(exc))
        return ""


def _queue_build(package_id: int) -> None:
    from django_q.tasks import async_task

    # Its own timeout: a large package takes longer than the cluster's default. A delivery
    # again while it runs (Q_CLUSTER retry) finds its lease live and does nothing; after its
    # worker died, it builds it again (build).
    async_task(
        "evidence.tasks.build_package",
        package_id,
        timeout=settings.BAKKME_PACKAGE_BUILD_TIMEOUT,
        task_name=f"evidence package {package_id}",
    )


def _chosen_items(case, items, errors: dict) -> list[EvidenceItem]:
    if not items:
        if not case.evidence.filter(purged_at__isnull=True).exists():
            errors.setdefault("items", []).append(f"Case #{case.pk} has no evidence to export.")
        return []
    ids = {item.pk if isinstance(item, EvidenceItem) else int(item) for item in items}
    found = list(EvidenceItem.objects.filter(pk__in=ids, case=case).order_by("pk"))
    foreign = sorted(ids - {item.pk for item in found})
    if foreign:
        errors.setdefault("items", []).append(
            f"Not evidence of case #{case.pk}: {_numbers(foreign)}."
        )
    purged = [item.pk for item in found if item.purged]
    if purged:
        errors.setdefault("items", []).append(
            f"Destroyed by retention, so they cannot be exported: {_numbers(purged)}."
        )
    return found


def _numbers(ids: Iterable[int]) -> str:
    return ", ".join(f"#{pk}" for pk in ids)


def included_items(package: EvidencePackage) -> list[EvidenceItem]:
    """The items chosen, or (none chosen) every item of the case not destroyed by retention."""
    related = ("collected_by", "collected_via")
    chosen = list(package.items.select_related(*related).order_by("pk"))
    if not chosen:
        whole_case = package.case.evidence.filter(purged_at__isnull=True)
        return list(whole_case.select_related(*related).order_by("pk"))
    purged = [item.pk for item in chosen if item.purged]
    if purged:
        raise PackageBuildError(
            f"Evidence {_numbers(purged)} was destroyed by retention after the package was "
            "requested; request a package without it."
        )
    return chosen


# --- Building ------------------------------------------------------------------------------------


class LeaseLost(Exception):
    """This run no longer holds the build: another run took it over, or the sweep failed it."""


def build(package_id: int) -> EvidencePackage | None:
    """Build a queued package, or take over a build whose lease ran out (its worker died); None
    when there is nothing to do (built, failed, or building under a live lease: a second
    delivery of the task leaves a live build alone). A failure marks it failed with the reason
    and leaves nothing behind: no work folder, no stored zip."""
    claimed = _claim(package_id)
    if claimed is None:
        return None
    package, lease = claimed
    workdir = stored = None
    try:
        with _Heartbeat(lease):
            workdir = _make_work_area(package, lease)
            items = included_items(package)
            if not items:
                raise PackageBuildError(f"Case #{package.case_id} has no evidence left to export.")
            progress = _Progress(lease)
            stored, zipped = _write_sealed_bag(package, items, workdir, progress)
            _mark_ready(package, items, stored, zipped, lease)
    except LeaseLost:
        logger.warning("Evidence package %s: this build lost its lease and stopped", package_id)
        if stored is not None:
            evidence_storage().delete(stored.storage_name)
    except Exception as exc:
        logger.exception("Evidence package %s failed", package_id)
        if stored is not None:
            evidence_storage().delete(stored.storage_name)
        _mark_failed(package, _describe_failure(exc), lease=lease)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    package.refresh_from_db()
    return package


def _lease_ran_out(package: EvidencePackage, now) -> bool:
    # No lease at all: a build started before builds had leases, stuck since.
    return package.lease_until is None or package.lease_until <= now


def _claim(package_id: int) -> tuple[EvidencePackage, "_Lease"] | None:
    """Take the build: a queued package, or a building one whose lease ran out. A conditional
    UPDATE on the state read (status, lease) makes two runs never both win, on SQLite too."""
    now = timezone.now()
    package = (
        EvidencePackage.objects.select_related("case", "requested_by").filter(pk=package_id).first()
    )
    if package is None:
        return None
    if package.status == Status.QUEUED:
        note = "Starting"
    elif package.status == Status.BUILDING and _lease_ran_out(package, now):
        note = f"Building again: the previous build {_stopped(package)}"
        logger.warning(
            "Evidence package %s: the previous build %s; building it again",
            package.pk,
            _stopped(package),
        )
    else:
        return None
    lease = _Lease(package.pk)
    claimed = EvidencePackage.objects.filter(
        pk=package.pk,
        status=package.status,
        lease_token=package.lease_token,
        lease_until=package.lease_until,
    ).update(
        status=Status.BUILDING,
        progress=0,
        progress_note=note[:200],
        error="",
        lease_token=lease.token,
        heartbeat_at=now,
        lease_until=now + lease.duration,
    )
    if not claimed:
        return None  # another run took it in between
    package.refresh_from_db()
    return package, lease


def _stopped(package: EvidencePackage) -> str:
    """When a dead build last showed life: "stopped at 14:03 UTC on 2026-12-01 (...)"."""
    if package.heartbeat_at is None:
        return "stopped (its worker ended)"
    at = package.heartbeat_at.astimezone(UTC)
    return f"stopped at {at:%H:%M} UTC on {at:%Y-%m-%d} (its worker ended)"


class _Lease:
    """A run's hold on its package's build: a token only this run knows, and `lease_until`,
    renewed by each progress update and at least every third of BAKKME_PACKAGE_LEASE_SECONDS.
    A renewal is a conditional UPDATE on the token: when another run took the build over (or
    the sweep failed it), it changes nothing and LeaseLost stops this run."""

    def __init__(self, package_id: int):
        self.package_id = package_id
        self.token = uuid.uuid4().hex
        self.duration = timedelta(seconds=settings.BAKKME_PACKAGE_LEASE_SECONDS)
        self.interval = max(settings.BAKKME_PACKAGE_LEASE_SECONDS / 3, 0.05)
        self.renewed = time.monotonic()
        self.lost = False  # set by the heartbeat thread; the build's own thread raises

    def renew(self, **fields) -> None:
        """Extend the lease, writing `fields` (the progress) in the same UPDATE."""
        now = timezone.now()
        kept = EvidencePackage.objects.filter(
            pk=self.package_id, status=Status.BUILDING, lease_token=self.token
        ).update(heartbeat_at=now, lease_until=now + self.duration, **fields)
        if not kept:
            self.lost = True
            raise LeaseLost(self.package_id)
        self.renewed = time.monotonic()

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(self.package_id)

    def due(self) -> bool:
        return time.monotonic() - self.renewed >= self.interval

    def owns(self, package: EvidencePackage) -> bool:
        return package.status == Status.BUILDING and package.lease_token == self.token


class _Heartbeat:
    """Renews the lease from a thread of its own every third of the lease, so that the steps
    that report no progress (an item checked whole before it is read, the zip stored) keep
    it too; it dies with the process, which is the point. Not started for a build inside the
    caller's transaction (a sync cluster in tests): no other connection can see that build,
    so nobody can take it over, and a second connection would wait for its locks."""

    def __init__(self, lease: _Lease):
        self.lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if not connection.in_atomic_block:
            name = f"evidence-package-{self.lease.package_id}-lease"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.lease.interval):
                try:
                    self.lease.renew()
                except LeaseLost:
                    return
                except Exception:  # a database hiccup: the next beat tries again
                    logger.exception(
                        "Evidence package %s: lease not renewed", self.lease.package_id
                    )
        finally:
            connection.close()  # this thread's own connection


def _make_work_area(package: EvidencePackage, lease: _Lease) -> Path:
    """The build's private folder: it only ever holds the encrypted zip as it is written (an
    unnamed temporary file). Its name says which build uses it (sweep_work_areas)."""
    path = work_root() / f"{WORK_AREA_PREFIX}{package.pk}-{lease.token}"
    path.mkdir(mode=0o700)
    return path


def work_root() -> Path:
    return Path(settings.BAKKME_PACKAGE_TEMP_DIR or tempfile.gettempdir())


def sweep_work_areas() -> list[Path]:
    """Remove every package work folder that no live build uses (those of builds whose worker
    died, and the plaintext bags older versions left in `bakkme-package-*` folders). Run when
    a worker starts (evidence.receivers); a build whose lease is live keeps its folder."""
    live = set(
        EvidencePackage.objects.filter(
            status=Status.BUILDING, lease_until__gt=timezone.now()
        ).values_list("lease_token", flat=True)
    )
    removed = []
    for path in sorted(work_root().glob(f"{WORK_AREA_PREFIX}*")):
        if path.is_symlink() or not path.is_dir():
            continue
        match = _WORK_AREA.fullmatch(path.name)
        if match and match["token"] in live:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logger.warning("Removed %s stale evidence package work folders", len(removed))
    return removed


def fail_dead_builds(now=None) -> int:
    """Mark failed, with the reason, each build whose lease ran out more than Q_CLUSTER's retry
    ago (time for the task delivered again to take it over first; with a broker that does not
    deliver again, this is the only way out). A build taken over meanwhile is left alone.
    Returns how many were failed."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.Q_CLUSTER.get("retry", 60))
    dead = EvidencePackage.objects.filter(status=Status.BUILDING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now - grace)
    )
    failed = 0
    for package in dead.only("pk", "lease_token", "lease_until", "heartbeat_at"):
        reason = f"The build {_stopped(package)}. {REBUILD_HINT}"
        failed += EvidencePackage.objects.filter(
            pk=package.pk,
            status=Status.BUILDING,
            lease_token=package.lease_token,
            lease_until=package.lease_until,
        ).update(status=Status.FAILED, error=reason, progress_note="Failed", lease_until=None)
    if failed:
        logger.warning("Marked %s dead evidence package builds failed", failed)
    return failed


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, vault.EvidenceIntegrityError):
        return (
            f"{exc} The package was not built and the Child Safety Officer was alerted; "
            "request it again once the item has been dealt with."
        )
    if isinstance(exc, PackageBuildError):
        return str(exc)
    return f"The package could not be built ({type(exc).__name__}: {exc})."


def _mark_failed(package: EvidencePackage, error: str, *, lease: "_Lease | None" = None) -> None:
    """Failed with the reason; a build's failure only while it still holds the lease."""
    packages_ = EvidencePackage.objects.filter(pk=package.pk)
    if lease is not None:
        packages_ = packages_.filter(status=Status.BUILDING, lease_token=lease.token)
    packages_.update(status=Status.FAILED, error=error, progress_note="Failed", lease_until=None)


def _mark_ready(
    package: EvidencePackage, items: list[EvidenceItem], stored, zipped: "_ZipTarget", lease
) -> None:
    now = timezone.now()
    with transaction.atomic():
        package = EvidencePackage.objects.select_for_update().get(pk=package.pk)
        if not lease.owns(package):
            raise LeaseLost(package.pk)
        if not package.items.exists():
            package.items.set(items)  # "the whole case" becomes the items it held at the build
        package.status, package.progress, package.progress_note = Status.READY, 100, "Ready"
        package.error = ""
        package.storage_name, package.wrapped_key = stored.storage_name, stored.wrapped_key
        package.key_id, package.size, package.sha256 = stored.key_id, stored.size, stored.sha256
        package.zip_size, package.zip_sha256 = zipped.size, zipped.sha256.hexdigest()
        package.built_at = now
        package.expires_at = now + timedelta(hours=settings.BAKKME_PACKAGE_LINK_HOURS)
        package.lease_until = None
        package.save()


# Progress: the items are 0-90 %, the case's files and the manifests 90-95 %, storing the rest.
_ITEMS_END, _TAGS_START, _ZIP_END = 90, 93, 95


class _Progress:
    """Writes percent and note to the package row when the percent changes (at most ~100
    small UPDATEs a build), so the admin page can show them while the build runs. Each write
    renews the lease, and so does a step that runs for a third of the lease without a new
    percent."""

    def __init__(self, lease: _Lease):
        self.lease = lease
        self.percent = -1

    def set(self, percent: int, note: str) -> None:
        self.lease.check()
        if percent != self.percent:
            self.percent = percent
            self.lease.renew(progress=percent, progress_note=note[:200])
        elif self.lease.due():
            self.lease.renew()

    def between(self, start: int, end: int, done: int, total: int, note: str) -> None:
        """`done` of `total` bytes of a step that runs from `start` to `end` percent."""
        self.set(start + (end - start) * min(done, total) // max(total, 1), note)


def item_path(item: EvidenceItem) -> str:
    """Where an item goes in the bag's data/ folder: `items/<id>-<safe original name>`, or
    `items/<id>.<ext>` without a name (communication logs in `communication_logs/`)."""
    folder = "communication_logs" if item.kind == EvidenceKind.COMMUNICATION_LOG else "items"
    name = unicodedata.normalize("NFKD", Path(item.original_name.replace("\\", "/")).name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name.encode("ascii", "ignore").decode()).strip("._")
    if name:
        return f"{folder}/{item.pk}-{name[:100]}"
    extension = mimetypes.guess_extension(item.media_type) or ".bin"
    return f"{folder}/{item.pk}{extension}"


class _ZipTarget:
    """What the zip is written into: it counts and hashes the zip as it passes (the recipient's
    check after decrypting it), then hands it to the Sealer, or, for a package with a recipient
    key, to the age encryptor in front of the Sealer. Not seekable, like the Sealer."""

    def __init__(self, sealer: vault.Sealer, recipient_key: str):
        self.sealer = sealer
        self.encryptor = recipients.AgeEncryptor(recipient_key, sealer) if recipient_key else None
        self.sha256, self.size = hashlib.sha256(), 0

    def write(self, piece) -> int:
        self.sha256.update(piece)
        self.size += len(piece)
        return (self.encryptor or self.sealer).write(piece)

    def flush(self) -> None:
        """(zipfile asks for it.)"""

    def finish(self) -> vault.Sealed:
        """The zip is complete: the last of the age ciphertext into the Sealer, then sealed."""
        if self.encryptor is not None:
            self.encryptor.close()
        return self.sealer.finish()

    def discard(self) -> None:
        if self.encryptor is not None:
            self.encryptor.abort()
        self.sealer.discard()


def _write_sealed_bag(
    package, items, workdir: Path, progress: _Progress
) -> tuple[vault.Sealed, _ZipTarget]:
    """The bag, written file by file into a zip that streams into a vault.Sealer (through an
    age encryptor for a package with a recipient key): plaintext exists only in memory, a
    chunk at a time; the disk (the work folder) sees ciphertext only. Then the ciphertext is
    stored. No size limit: a package of a large case is larger than any one item may be."""
    target = _ZipTarget(vault.Sealer(limit=None, dir=str(workdir)), package.recipient_key)
    try:
        with zipfile.ZipFile(target, "w", compression=ZIP_COMPRESSION) as archive:
            bag = _BagWriter(archive, download_name(package))
            _write_items(package, items, bag, progress)
            progress.set(
                _ITEMS_END, "Zipping and encrypting the metadata, timeline and chain of custody"
            )
            _record_export(package, items)
            # The ledger's head, signed and kept outside the database, as it stands with this
            # package's EXPORT events: the package carries it, so the chain of custody it holds
            # can be checked against the ledger later (README "Custody ledger").
            checkpoint = checkpoints.write_checkpoint(reason=f"evidence package {package.pk}")
            _write_case_files(package, items, bag, checkpoint)
            progress.set(_TAGS_START, "Zipping and encrypting the BagIt manifests")
            bag.finish(_bag_info(package))
        sealed = target.finish()
    except BaseException:
        target.discard()
        raise
    progress.set(_ZIP_END, "Storing the encrypted package")
    return vault.store(sealed, "packages"), target


def _write_items(package, items, bag: "_BagWriter", progress: _Progress) -> None:
    """Each item decrypted (checked whole against its SHA-256 first) into its zip entry."""
    done, total = 0, sum(item.size for item in items)
    for number, item in enumerate(items, 1):
        note = f"Writing item {number} of {len(items)} (#{item.pk})"

        def pieces(item=item, note=note):
            nonlocal done
            purpose = f"building evidence package #{package.pk}"
            for piece in vault.read_verified(item, purpose=purpose):
                yield piece
                done += len(piece)
                progress.between(0, _ITEMS_END, done, total, note)

        bag.add_payload(item_path(item), pieces(), size=item.size)


def _record_export(package, items) -> None:
    """The EXPORT custody events, once per package: a build taken over or built again after
    the events were recorded reuses them (custody.json lists them either way)."""
    recorded = set(
        CustodyEvent.objects.filter(
            action=CustodyEvent.Action.EXPORT,
            item__in=[item.pk for item in items],
            detail__package=package.pk,
        ).values_list("item_id", flat=True)
    )
    missing = [item for item in items if item.pk not in recorded]
    if missing:
        custody.record(
            missing,
            CustodyEvent.Action.EXPORT,
            actor=package.requested_by,
            purpose=package.purpose,
            detail={"package": package.pk, "recipient": package.recipient},
        )


def _write_case_files(package, items, bag: "_BagWriter", checkpoint) -> None:
    """metadata.json, timeline.json, custody.json, ledger-checkpoint.json and summary.html.
    They are made in memory: they are the size of the database rows behind them, which are in
    memory anyway."""
    metadata = package_metadata(package, items)
    metadata["ledger_checkpoint"] = {"file": "ledger-checkpoint.json", "name": checkpoint.name}
    summary = render_to_string(
        "admin/evidence/package/summary.html",
        {"meta": metadata, "organization": settings.BAKKME_EVIDENCE_ORGANIZATION},
    )
    files = {
        "metadata.json": _json(metadata),
        "timeline.json": _json([_timeline_entry(event) for event in timeline(package.case)]),
        "custody.json": _json(_custody(items)),
        "ledger-checkpoint.json": checkpoint.json_bytes(),
        "summary.html": summary.encode("utf-8"),
    }
    for path, data in files.items():
        bag.add_payload(path, [data], len(data))


def _json(data) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False).encode("utf-8")


class _BagWriter:
    """Writes a BagIt 1.0 bag (RFC 8493) into a zip as it goes, under one root folder: payload
    files under data/, hashed (SHA-256, SHA-512) as they pass; then bagit.txt, bag-info.txt
    (with Payload-Oxum), the manifests and the tag manifests. (The `bagit` library makes bags
    only from files on disk, so here it only validates them: verify_zip.)

    The zip's target cannot seek, so zipfile writes each entry's sizes and CRC after its data
    (a data descriptor); an entry's size is given up front so that zipfile uses ZIP64 for the
    entries that need it.
    """

    def __init__(self, archive: zipfile.ZipFile, root: str):
        self.archive, self.root = archive, root
        self.date_time = timezone.now().astimezone(UTC).timetuple()[:6]
        self.manifest: dict[str, list[str]] = {algorithm: [] for algorithm in BAG_CHECKSUMS}
        self.tag_manifest: dict[str, list[str]] = {algorithm: [] for algorithm in BAG_CHECKSUMS}
        self.payload_bytes = self.payload_files = 0

    def add_payload(self, path: str, pieces: Iterable[bytes], size: int) -> None:
        name = f"data/{path}"
        digests, written = self._write(name, pieces, size)
        for algorithm, digest in digests.items():
            self.manifest[algorithm].append(_manifest_line(digest, name))
        self.payload_bytes += written
        self.payload_files += 1

    def finish(self, bag_info: dict[str, str]) -> None:
        bagit_txt = f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n"
        self._add_tag_file("bagit.txt", bagit_txt)
        info = {
            **bag_info,
            "Bag-Software-Agent": BAG_SOFTWARE_AGENT,
            "Payload-Oxum": f"{self.payload_bytes}.{self.payload_files}",
        }
        self._add_tag_file("bag-info.txt", "".join(_tag_line(k, v) for k, v in info.items()))
        for algorithm in BAG_CHECKSUMS:
            self._add_tag_file(f"manifest-{algorithm}.txt", "".join(self.manifest[algorithm]))
        # The tag manifests list the tag files above, not each other.
        for algorithm in BAG_CHECKSUMS:
            data = "".join(self.tag_manifest[algorithm]).encode("utf-8")
            self._write(f"tagmanifest-{algorithm}.txt", [data], len(data))

    def _add_tag_file(self, name: str, text: str) -> None:
        data = text.encode("utf-8")
        digests, _ = self._write(name, [data], len(data))
        for algorithm, digest in digests.items():
            self.tag_manifest[algorithm].append(_manifest_line(digest, name))

    def _write(self, name: str, pieces: Iterable[bytes], size: int) -> tuple[dict[str, str], int]:
        info = zipfile.ZipInfo(f"{self.root}/{name}", date_time=self.date_time)
        info.compress_type = ZIP_COMPRESSION
        info.external_attr = 0o644 << 16  # rw-r--r--, as files written to disk had
        info.file_size = size
        hashers = {algorithm: hashlib.new(algorithm) for algorithm in BAG_CHECKSUMS}
        written = 0
        with self.archive.open(info, "w", force_zip64=size >= ZIP64_FROM) as target:
            for piece in pieces:
                target.write(piece)
                for hasher in hashers.values():
                    hasher.update(piece)
                written += len(piece)
        return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}, written


def _manifest_line(digest: str, path: str) -> str:
    # RFC 8493 §2.1.3: a path's %, CR and LF are percent-encoded (item_path never makes them).
    encoded = path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"{digest}  {encoded}\n"


def _tag_line(label: str, value: str) -> str:
    return f"{label}: {' '.join(str(value).split())}\n"  # one line per tag (RFC 8493 §2.2.2)


def _person(user) -> str:
    if user is None:
        return ""
    full = user.get_full_name()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def package_metadata(package: EvidencePackage, items: list[EvidenceItem]) -> dict:
    """metadata.json: the package, the case, its reports (the account and content as the
    platform reported them; never the reporter's identity, which stays in the back office)
    and the items with their hashes and what was learnt from them at collection."""
    case = package.case
    purged = []
    if not package.items.exists():  # the whole case: say what retention destroyed
        purged = [
            {"id": item.pk, "sha256": item.sha256, "size": item.size, "purged_at": item.purged_at}
            for item in case.evidence.filter(purged_at__isnull=False).order_by("pk")
        ]
    return {
        "package": {
            "id": package.pk,
            "organization": settings.BAKKME_EVIDENCE_ORGANIZATION,
            "purpose": package.purpose,
            "recipient": package.recipient,
            "recipient_key": package.recipient_key,
            "requested_by": _person(package.requested_by),
            "requested_at": package.requested_at,
            "bagged_at": timezone.now(),
            "scope": "chosen items" if package.items.exists() else "the whole case",
        },
        "case": {
            "id": case.pk,
            "account_platform_id": case.account_platform_id,
            "account_username": case.account_username,
            "content_platform_id": case.content_platform_id,
            "state": case.state,
            "priority": case.priority,
            "category": case.category,
            "surface": case.surface,
            "is_child_safety": case.is_child_safety,
            "created_at": case.created_at,
            "sla_started_at": case.sla_started_at,
            "decided_at": case.decided_at,
            "closed_at": case.closed_at,
            "report_count": case.report_count,
        },
        "reports": [_report(report) for report in case.reports.order_by("received_at", "pk")],
        "items": [_item(item) for item in items],
        "purged_items": purged,
    }


def _report(report) -> dict:
    return {
        "id": report.pk,
        "source": report.source,
        "category": report.category,
        "surface": report.surface,
        "priority": report.priority,
        "received_at": report.received_at,
        "stored_at": report.created_at,
        "account": {
            "platform_id": report.account_platform_id,
            "username": report.account_username,
            "date_of_birth": report.account_date_of_birth,
            "age_band": report.account_age_band,
            "created_at": report.account_created_at,
        },
        "content": {
            "platform_id": report.content_platform_id,
            "type": report.content_type,
            "text": report.content_text,
            "url": report.content_url,
        },
        "description": report.description,
    }


def _item(item: EvidenceItem) -> dict:
    return {
        "id": item.pk,
        "path": item_path(item),
        "kind": item.kind,
        "report": item.report_id,
        "original_name": item.original_name,
        "media_type": item.media_type,
        "size": item.size,
        "sha256": item.sha256,
        "md5": item.md5,
        "pdq": item.pdq,
        "pdq_quality": item.pdq_quality,
        "exif": item.exif,
        "problem": item.problem,
        "collected_at": item.collected_at,
        "collected_by": _person(item.collected_by),
        "collected_via": item.collected_via.name if item.collected_via else "",
    }


def _timeline_entry(event) -> dict:
    return {
        "at": event.at,
        "type": event.type,
        "what": event.get_type_display(),
        "by": event.actor_name,
        "detail": event.payload,
    }


def _custody(items: list[EvidenceItem]) -> list[dict]:
    """Every custody event of the included items, in ledger order (the EXPORT ones too), with
    the hashes that chain them."""
    events = CustodyEvent.objects.filter(item__in=[item.pk for item in items]).order_by("pk")
    return [
        {
            "id": event.pk,
            "item": event.item_id,
            "at": event.at,
            "action": event.action,
            "by": event.actor_name,
            "purpose": event.purpose,
            "item_sha256": event.item_sha256,
            "detail": event.detail,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }
        for event in events.iterator()
    ]


def _bag_info(package: EvidencePackage) -> dict:
    return {
        "Source-Organization": settings.BAKKME_EVIDENCE_ORGANIZATION,
        "External-Identifier": str(package.case_id),
        "Bagging-Date": timezone.now().date().isoformat(),
        "Requested-By": _person(package.requested_by),
        "Purpose": package.purpose,  # bag-info values are one line (_tag_line)
        "Recipient": package.recipient,
        "Evidence-Package": str(package.pk),
    }


def download_name(package: EvidencePackage) -> str:
    return f"bakkme-evidence-package-{package.pk}"


def download_filename(package: EvidencePackage) -> str:
    """The file handed out: `<name>.zip`, or `<name>.zip.age` when encrypted for the
    recipient (the file they decrypt to `<name>.zip`)."""
    return f"{download_name(package)}.zip" + (".age" if package.recipient_key else "")


def download_content_type(package: EvidencePackage) -> str:
    return "application/octet-stream" if package.recipient_key else "application/zip"


def opening_command(package: EvidencePackage, identity: str = "key.txt") -> str:
    """How the recipient opens an encrypted package (age; rage takes the same arguments)."""
    name = download_name(package)
    return f"age -d -i {identity} {name}.zip.age > {name}.zip"


# --- Building again ------------------------------------------------------------------------------


def may_rebuild(user, package: EvidencePackage) -> bool:
    """Its requester, while they may still export the case's evidence; or the Child Safety
    Officer (every case's evidence) for a case they can see."""
    if package.requested_by_id == user.pk and may_export(user, package.case):
        return True
    return user.has_perm(access.CASE_EVIDENCE_PERMISSION) and access.may_access(user, package.case)


def rebuild(package: EvidencePackage, *, actor) -> EvidencePackage:
    """Queue a failed package to be built again (the same package: its purpose, recipient and
    items). Only a failed one (PackageUnavailable otherwise); Http404 for anyone who may not
    (may_rebuild), so its existence is not disclosed. A zip stored by an earlier build (one that
    failed its integrity check later) is deleted once this commits."""
    if not may_rebuild(actor, package):
        raise Http404("No such evidence package.")
    with transaction.atomic():
        package = EvidencePackage.objects.select_for_update().get(pk=package.pk)
        if package.status != Status.FAILED:
            raise PackageUnavailable(
                f"Evidence package #{package.pk} is {package.get_status_display().lower()}: "
                "only a failed package can be built again."
            )
        old_zip = package.storage_name
        package.status, package.progress = Status.QUEUED, 0
        package.progress_note = f"Queued again by {actor.get_username()}"[:200]
        package.error = ""
        package.lease_token, package.lease_until, package.heartbeat_at = "", None, None
        package.storage_name, package.wrapped_key, package.key_id = "", None, ""
        package.size, package.sha256, package.built_at, package.expires_at = None, "", None, None
        package.zip_size, package.zip_sha256 = None, ""
        package.save()
        if old_zip:
            transaction.on_commit(lambda: evidence_storage().delete(old_zip))
        transaction.on_commit(lambda: _queue_build(package.pk))
    return package


# --- Downloading ---------------------------------------------------------------------------------


def check_package(package: EvidencePackage) -> str | None:
    """None when the stored zip decrypts to the SHA-256 recorded at the build; else what is
    wrong."""
    return vault.check_sealed(package, "package")


def open_download(package: EvidencePackage, user, *, via: str = "admin") -> Iterator[bytes]:
    """The package as it is handed out, in chunks, for its requester while the link is valid:
    the zip, or (a package with a recipient key) the zip's age ciphertext for the recipient.

    Others (and a requester who lost access to the case) get Http404. The stored zip is checked
    whole against its SHA-256 before anything is handed out (a change between that pass and
    the download fails the chunks' authentication), then a DOWNLOAD custody event is recorded
    for every item in it.
    """
    if package.requested_by_id != user.pk or not may_export(user, package.case):
        raise Http404("No such evidence package.")
    if package.status != Status.READY:
        raise PackageUnavailable(
            f"Evidence package #{package.pk} is {package.get_status_display().lower()}, "
            "not ready for download."
        )
    if package.link_expired():
        raise LinkExpired(
            f"The download link of evidence package #{package.pk} expired at "
            f"{package.expires_at:%Y-%m-%d %H:%M} UTC. Request a new package."
        )
    problem = check_package(package)
    if problem:
        _refuse_tampered(package, problem)
    custody.record(
        package.items.order_by("pk"),
        CustodyEvent.Action.DOWNLOAD,
        actor=user,
        purpose=package.purpose,
        detail={"package": package.pk, "via": via},
    )
    signals.package_downloaded.send(sender=EvidencePackage, package=package, user=user)
    return vault.decrypted(package)


def _refuse_tampered(package: EvidencePackage, problem: str) -> None:
    """Fail the package for good, alert the CSO, refuse the download."""
    from bakkme_safety.roles import Role
    from staff import actions as staff
    from staff.models import Notification

    message = (
        f"Evidence package #{package.pk} failed its integrity check ({problem}); it will not "
        "be handed out. Request a new package."
    )
    with transaction.atomic():
        _mark_failed(package, message)
        staff.notify(
            Notification.Kind.EVIDENCE_INTEGRITY,
            {cso: [package.case_id] for cso in staff.staff_in_role(Role.CHILD_SAFETY_OFFICER)},
            timezone.now(),
        )
    raise PackageIntegrityError(message)


# --- Verifying a downloaded zip ------------------------------------------------------------------


def verify_download(path, identity=None) -> list[str]:
    """What is wrong with a package as downloaded: [] when it is valid. A zip is checked by
    verify_zip; a zip encrypted for its recipient (`.zip.age`) needs the recipient's identity
    file (`identity`, age-keygen's key.txt) to be opened first. It is decrypted into a
    temporary folder that is removed afterwards, as verify_zip does with what it extracts."""
    path = Path(path)
    if not path.is_file() or not recipients.is_encrypted(path):
        return verify_zip(path)
    if identity is None:
        return [
            f"{path.name} is encrypted for its recipient (age): give the recipient's identity "
            "file to open it (--identity key.txt)."
        ]
    with tempfile.TemporaryDirectory(
        prefix="bakkme-verify-", dir=settings.BAKKME_PACKAGE_TEMP_DIR
    ) as temp:
        opened = Path(temp) / "package.zip"
        try:
            recipients.decrypt_file(path, identity, opened)
        except recipients.RecipientKeyError as exc:
            return [str(exc)]
        return verify_zip(opened)


def verify_zip(path) -> list[str]:
    """What is wrong with a package zip: [] when it is valid.

    Extracts it into a temporary folder; bagit validates the bag (every file against the
    SHA-256 and SHA-512 manifests, the Payload-Oxum); then our checks: the bag-info fields, and
    metadata.json present with each item file matching the SHA-256 it records.
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return [f"{path} is not a zip file."]
    with tempfile.TemporaryDirectory(
        prefix="bakkme-verify-", dir=settings.BAKKME_PACKAGE_TEMP_DIR
    ) as temp:
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(temp)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return [f"The zip is damaged: {exc}."]
        root = _bag_root(Path(temp))
        if root is None:
            return ["The zip holds no BagIt bag (no bagit.txt)."]
        try:
            bag = bagit.Bag(str(root))
        except bagit.BagError as exc:
            return [f"Not a readable bag: {exc}."]
        problems = [
            f"The bag has no manifest-{algorithm}.txt."
            for algorithm in BAG_CHECKSUMS
            if algorithm not in bag.algorithms
        ]
        try:
            bag.validate()
        except bagit.BagValidationError as exc:
            problems += [str(detail) for detail in exc.details] or [str(exc)]
        except bagit.BagError as exc:
            problems.append(str(exc))
        problems += [
            f"bag-info.txt has no {field}."
            for field in REQUIRED_BAG_INFO
            if not bag.info.get(field)
        ]
        problems += _check_metadata(root / "data")
    return problems


def _bag_root(folder: Path) -> Path | None:
    if (folder / "bagit.txt").is_file():
        return folder
    inside = [child for child in folder.iterdir() if child.is_dir()]
    if len(inside) == 1 and (inside[0] / "bagit.txt").is_file():
        return inside[0]
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(READ_CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def _check_metadata(data: Path) -> list[str]:
    try:
        metadata = json.loads((data / "metadata.json").read_text(encoding="utf-8"))
        entries = metadata["items"]
    except FileNotFoundError:
        return ["data/metadata.json is missing."]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"data/metadata.json is not a package's metadata ({exc})."]
    problems, listed = [], set()
    for entry in entries:
        relative = str(entry.get("path", ""))
        file = (data / relative).resolve()
        if not relative or not file.is_relative_to(data.resolve()):
            problems.append(f"Item #{entry.get('id')}: metadata.json gives no safe path.")
            continue
        listed.add(file)
        if not file.is_file():
            problems.append(f"Item #{entry.get('id')}: data/{relative} is missing.")
            continue
        digest = _file_sha256(file)
        if digest != entry.get("sha256"):
            problems.append(
                f"Item #{entry.get('id')}: data/{relative} has SHA-256 {digest}, "
                f"metadata.json records {entry.get('sha256')}."
            )
    for folder in ("items", "communication_logs"):
        for file in sorted((data / folder).rglob("*")):
            if file.is_file() and file.resolve() not in listed:
                problems.append(f"data/{file.relative_to(data)} is not listed in metadata.json.")
    return problems
