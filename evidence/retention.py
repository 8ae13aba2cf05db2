"""Retention: evidence past its retention period is destroyed, unless a legal hold covers it.

Per kind, items go BAKKME_EVIDENCE_RETENTION_DAYS[kind] days after collection; the items of a
case closed with no violation go BAKKME_EVIDENCE_NO_VIOLATION_RETENTION_DAYS after its decision.
A purge is a custody event carrying the item's hash. The row stays (the ledger refers to it):
its bytes are deleted from storage and its data key wiped, so no copy of the bytes that may
survive elsewhere (a backup) can be decrypted.

The stored zips of evidence packages whose download link expired are deleted by the same run.
Run daily by the django-q2 schedule "evidence-retention"; safe to run twice or at once.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from cases.models import CaseState, Decision

from . import custody, holds
from .models import CustodyEvent, EvidenceItem, EvidencePackage
from .storage import evidence_storage


@dataclass
class PurgeResult:
    purged: int = 0
    held: int = 0
    packages_deleted: int = 0
    storage_failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def past_retention(now: datetime):
    """Items whose retention period is over, held or not."""
    by_kind = Q(pk__in=[])
    for kind, days in settings.BAKKME_EVIDENCE_RETENTION_DAYS.items():
        by_kind |= Q(kind=kind, collected_at__lte=now - timedelta(days=days))
    no_violation = Decision.objects.filter(case=OuterRef("case"), violation="no_violation")
    later_decision = Decision.objects.filter(
        case=OuterRef("case"), created_at__gt=OuterRef("created_at")
    )
    last_is_no_violation = Exists(no_violation.filter(~Exists(later_decision)))
    closed_no_violation = Q(
        last_is_no_violation,
        case__state=CaseState.CLOSED,
        case__decided_at__lte=now
        - timedelta(days=settings.BAKKME_EVIDENCE_NO_VIOLATION_RETENTION_DAYS),
    )
    return EvidenceItem.objects.filter(purged_at__isnull=True).filter(by_kind | closed_no_violation)


def purge(now: datetime | None = None, batch: int = 200) -> PurgeResult:
    now = now or timezone.now()
    result = PurgeResult()
    candidates = list(past_retention(now).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(candidates), batch):
        ids = candidates[start : start + batch]
        with transaction.atomic():
            items = list(
                EvidenceItem.objects.select_for_update()
                .filter(pk__in=ids, purged_at__isnull=True)
                .order_by("pk")
            )
            held = set(holds.held_items(now).filter(pk__in=ids).values_list("pk", flat=True))
            result.held += len(held)
            doomed = [item for item in items if item.pk not in held]
            custody.record(
                doomed,
                CustodyEvent.Action.DESTROY,
                system="retention",
                purpose="retention period over",
                at=now,
            )
            for item in doomed:
                item.purged_at = now
                item.wrapped_key = b""
            EvidenceItem.objects.bulk_update(doomed, ["purged_at", "wrapped_key"])
            result.purged += len(doomed)
    delete_purged_bytes(result)
    delete_expired_packages(now, result)
    return result


def _delete_stored(rows, what: str, result: PurgeResult, **cleared) -> int:
    """Delete the stored bytes of these rows and clear their storage fields; a storage failure
    is recorded and left for the next run (the rows keep their storage name)."""
    storage = evidence_storage()
    deleted = 0
    for row in rows.only("pk", "storage_name").iterator():
        try:
            storage.delete(row.storage_name)
        except OSError as exc:
            result.storage_failures.append(f"{what} {row.pk}: {exc}")
            continue
        type(row).objects.filter(pk=row.pk).update(storage_name="", **cleared)
        deleted += 1
    return deleted


def delete_purged_bytes(result: PurgeResult | None = None) -> PurgeResult:
    """Delete the stored bytes of purged items (retried by the next run if storage fails)."""
    result = result or PurgeResult()
    pending = EvidenceItem.objects.filter(purged_at__isnull=False).exclude(storage_name="")
    _delete_stored(pending, "evidence item", result)
    return result


def delete_expired_packages(now: datetime, result: PurgeResult) -> None:
    """A package whose download link expired is of no more use: its stored zip goes (the
    package row, and the custody events of its export, stay)."""
    expired = EvidencePackage.objects.filter(expires_at__lte=now).exclude(storage_name="")
    result.packages_deleted += _delete_stored(expired, "evidence package", result, wrapped_key=None)
