"""Evidence packages: a case's evidence as a BagIt bag, for a named recipient.

Legal staff ask for one (request_package); a django-q2 task builds it (build): the items are
decrypted, checked against their SHA-256 and written with the case's metadata, timeline and
chain of custody into a bag (the `bagit` library, SHA-256 and SHA-512 manifests) in a private
temporary folder; the bag is zipped and the zip is encrypted into evidence storage like an item.
Only the requester downloads it (open_download), until the link expires; every download is a
custody event of every item in it. verify_zip checks a downloaded zip.

Nothing is held whole in memory: items and the zip go through in chunks of crypto.CHUNK_SIZE,
bagit hashes files in blocks. The zip is written straight into the encryptor (no plaintext zip
on disk); the plaintext bag lives only in the temporary folder and is removed, built or not.
"""

import hashlib
import json
import logging
import mimetypes
import re
import shutil
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import bagit
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone

from cases.services import timeline

from . import access, crypto, custody, vault
from .models import CustodyEvent, EvidenceItem, EvidenceKind, EvidencePackage
from .storage import evidence_storage

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "evidence.export_evidence"
BAG_CHECKSUMS = ["sha256", "sha512"]
# bag-info.txt fields every package has (bagit adds Payload-Oxum and Bag-Software-Agent).
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
READ_CHUNK = crypto.CHUNK_SIZE
MIB = 1024 * 1024
Status = EvidencePackage.Status


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
    case, user, purpose: str, recipient: str, items=None, *, queue: bool = True
) -> EvidencePackage:
    """Ask for a package of `case`'s evidence (`items`: some of it, as items or ids; None or
    empty: all of it). Queues the build when the transaction commits (queue=False: the caller
    builds it, as export_evidence does)."""
    if not may_export(user, case):
        raise PermissionDenied("You may not export this case's evidence.")
    purpose, recipient = (purpose or "").strip(), (recipient or "").strip()
    errors: dict[str, list[str]] = {}
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
            case=case, purpose=purpose, recipient=recipient, requested_by=user
        )
        package.items.set(chosen)
        if queue:
            transaction.on_commit(lambda: _queue_build(package.pk))
    return package


def _queue_build(package_id: int) -> None:
    from django_q.tasks import async_task

    # Its own timeout: a large package takes longer than the cluster's default. A delivery
    # again while it runs (Q_CLUSTER retry) finds it building and does nothing.
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


def build(package_id: int) -> EvidencePackage | None:
    """Build a queued package; None when it is not queued (built, building or failed already:
    a second delivery of the task does nothing). A failure marks it failed with the reason and
    leaves nothing behind: no temporary files, no stored zip."""
    package = _claim(package_id)
    if package is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="bakkme-package-", dir=settings.BAKKME_PACKAGE_TEMP_DIR))
    stored = None
    try:
        items = included_items(package)
        if not items:
            raise PackageBuildError(f"Case #{package.case_id} has no evidence left to export.")
        progress = _Progress(package)
        bag_dir = workdir / "bag"
        _write_payload(package, items, bag_dir, progress)
        progress.set(_WRITE_END, "Computing the SHA-256 and SHA-512 manifests")
        bagit.make_bag(str(bag_dir), _bag_info(package), checksums=BAG_CHECKSUMS)
        stored = _zip_and_seal(package, bag_dir, workdir, progress)
        _mark_ready(package, items, stored)
    except Exception as exc:
        logger.exception("Evidence package %s failed", package_id)
        if stored is not None:
            evidence_storage().delete(stored.storage_name)
        _mark_failed(package, _describe_failure(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    package.refresh_from_db()
    return package


def _claim(package_id: int) -> EvidencePackage | None:
    with transaction.atomic():
        package = (
            EvidencePackage.objects.select_for_update()
            .select_related("case", "requested_by")
            .filter(pk=package_id)
            .first()
        )
        if package is None or package.status != Status.QUEUED:
            return None
        package.status, package.progress, package.progress_note = Status.BUILDING, 0, "Starting"
        package.save(update_fields=["status", "progress", "progress_note"])
    return package


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, vault.EvidenceIntegrityError):
        return (
            f"{exc} The package was not built and the Child Safety Officer was alerted; "
            "request it again once the item has been dealt with."
        )
    if isinstance(exc, PackageBuildError):
        return str(exc)
    return f"The package could not be built ({type(exc).__name__}: {exc})."


def _mark_failed(package: EvidencePackage, error: str) -> None:
    EvidencePackage.objects.filter(pk=package.pk).update(
        status=Status.FAILED, error=error, progress_note="Failed"
    )


def _mark_ready(package: EvidencePackage, items: list[EvidenceItem], stored) -> None:
    now = timezone.now()
    with transaction.atomic():
        package = EvidencePackage.objects.select_for_update().get(pk=package.pk)
        if not package.items.exists():
            package.items.set(items)  # "the whole case" becomes the items it held at the build
        package.status, package.progress, package.progress_note = Status.READY, 100, "Ready"
        package.error = ""
        package.storage_name, package.wrapped_key = stored.storage_name, stored.wrapped_key
        package.key_id, package.size, package.sha256 = stored.key_id, stored.size, stored.sha256
        package.built_at = now
        package.expires_at = now + timedelta(hours=settings.BAKKME_PACKAGE_LINK_HOURS)
        package.save()


# Progress: writing the items is 0-50 %, the manifests 50-60 %, zipping and encrypting 60-95 %.
_WRITE_END, _ZIP_START, _ZIP_END = 50, 60, 95


class _Progress:
    """Writes percent and note to the package row when the percent changes (at most ~100
    small UPDATEs a build), so the admin page can show them while the build runs."""

    def __init__(self, package: EvidencePackage):
        self.package_id = package.pk
        self.percent = -1

    def set(self, percent: int, note: str) -> None:
        if percent != self.percent:
            self.percent = percent
            EvidencePackage.objects.filter(pk=self.package_id).update(
                progress=percent, progress_note=note[:200]
            )

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


def _write_payload(package, items, bag_dir: Path, progress: _Progress) -> None:
    """The items (decrypted, each checked whole against its SHA-256 first), the EXPORT custody
    events, then metadata.json, timeline.json, custody.json and summary.html."""
    done, total = 0, sum(item.size for item in items)
    for number, item in enumerate(items, 1):
        path = bag_dir / item_path(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        note = f"Writing item {number} of {len(items)} (#{item.pk})"
        with open(path, "xb") as out:
            for piece in vault.read_verified(
                item, purpose=f"building evidence package #{package.pk}"
            ):
                out.write(piece)
                done += len(piece)
                progress.between(0, _WRITE_END, done, total, note)
    custody.record(
        items,
        CustodyEvent.Action.EXPORT,
        actor=package.requested_by,
        purpose=package.purpose,
        detail={"package": package.pk, "recipient": package.recipient},
    )
    metadata = package_metadata(package, items)
    _write_json(bag_dir / "metadata.json", metadata)
    _write_json(bag_dir / "timeline.json", [_timeline_entry(e) for e in timeline(package.case)])
    _write_json(bag_dir / "custody.json", _custody(items))
    summary = render_to_string(
        "admin/evidence/package/summary.html",
        {"meta": metadata, "organization": settings.BAKKME_EVIDENCE_ORGANIZATION},
    )
    (bag_dir / "summary.html").write_text(summary, encoding="utf-8")


def _write_json(path: Path, data) -> None:
    with open(path, "x", encoding="utf-8") as out:
        json.dump(data, out, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)


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
        "Purpose": " ".join(package.purpose.split()),  # bag-info values are one line
        "Recipient": " ".join(package.recipient.split()),
        "Evidence-Package": str(package.pk),
    }


def download_name(package: EvidencePackage) -> str:
    return f"bakkme-evidence-package-{package.pk}"


def _zip_and_seal(package, bag_dir: Path, workdir: Path, progress: _Progress) -> vault.Sealed:
    """Zip the bag file by file, straight into a vault.Sealer (no plaintext zip anywhere),
    then store the ciphertext. No size limit: a package of a large case is larger than any
    one item may be."""
    root = download_name(package)
    files = sorted(path for path in bag_dir.rglob("*") if path.is_file())
    total = sum(path.stat().st_size for path in files)
    done = 0
    sealer = vault.Sealer(limit=None, dir=str(workdir))
    try:
        with zipfile.ZipFile(sealer, "w", compression=ZIP_COMPRESSION) as archive:
            for path in files:
                name = f"{root}/{path.relative_to(bag_dir).as_posix()}"
                info = zipfile.ZipInfo.from_file(path, name)
                info.compress_type = ZIP_COMPRESSION
                with open(path, "rb") as source, archive.open(info, "w") as target:
                    while piece := source.read(READ_CHUNK):
                        target.write(piece)
                        done += len(piece)
                        note = f"Zipping and encrypting: {done // MIB:,} of {total // MIB:,} MB"
                        progress.between(_ZIP_START, _ZIP_END, done, total, note)
    except BaseException:
        sealer.discard()
        raise
    progress.set(_ZIP_END, "Storing the encrypted package")
    return vault.store(sealer.finish(), "packages")


# --- Downloading ---------------------------------------------------------------------------------


def check_package(package: EvidencePackage) -> str | None:
    """None when the stored zip decrypts to the SHA-256 recorded at the build; else what is
    wrong."""
    return vault.check_sealed(package, "package")


def open_download(package: EvidencePackage, user, *, via: str = "admin") -> Iterator[bytes]:
    """The decrypted zip, in chunks, for its requester while the link is valid.

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
    return vault.decrypted(package)


def _refuse_tampered(package: EvidencePackage, problem: str) -> None:
    """Fail the package for good, alert the CSO, refuse the download."""
    from bakkme_safety.roles import Role
    from staff import services as staff
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
