"""The chain of custody: an append-only ledger, each event hashed with the one before it.

The chain is global (one sequence over the whole ledger), not one per item. A global chain
puts every event in one order, so removing events, even every event of one item, or reordering
them breaks it, and `verify_custody` checks it in one walk. The price is that writers take
turns: record() holds a short transaction-level lock while it reads the chain's head and
inserts. Custody events are written a few at a time by people's actions and in batches by
exports and purges, so the lock is never held long.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from .models import CustodyEvent, EvidenceItem

GENESIS = "0" * 64
_LOCK_ID = 0x42414B4B  # pg_advisory_xact_lock key of the ledger's head ("BAKK")


def _actor_name(actor, system: str | None) -> str:
    if actor is not None:
        return actor.get_username()
    return system or "system"


def _lock_head() -> str:
    """Take the ledger's write lock (PostgreSQL: advisory; SQLite: BEGIN IMMEDIATE already
    serialises writers) and return the hash of the last event."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    last = CustodyEvent.objects.order_by("-pk").values_list("hash", flat=True).first()
    return last or GENESIS


def record(
    items: EvidenceItem | Iterable[EvidenceItem],
    action: str,
    *,
    actor=None,
    system: str | None = None,
    purpose: str = "",
    detail: dict | None = None,
    at=None,
) -> list[CustodyEvent]:
    """Append one event per item, in the caller's transaction (or a new one)."""
    items = [items] if isinstance(items, EvidenceItem) else list(items)
    at = at or timezone.now()
    with transaction.atomic():
        prev = _lock_head()
        events = []
        for item in items:
            event = CustodyEvent(
                item=item,
                at=at,
                action=action,
                actor=actor,
                actor_name=_actor_name(actor, system),
                purpose=purpose,
                item_sha256=item.sha256,
                detail=detail or {},
                prev_hash=prev,
            )
            event.hash = prev = event.compute_hash()
            events.append(event)
        CustodyEvent.objects.bulk_create(events)
    return events


@dataclass
class ChainReport:
    events: int = 0
    broken: list[str] = field(default_factory=list)


def verify_chain(batch: int = 2000) -> ChainReport:
    """Walk the ledger in order: each event's hash must cover its fields and the previous hash."""
    report = ChainReport()
    prev = GENESIS
    for event in CustodyEvent.objects.order_by("pk").iterator(chunk_size=batch):
        report.events += 1
        if event.prev_hash != prev:
            report.broken.append(
                f"custody event {event.pk}: does not follow the event before it "
                "(an event was removed, inserted or reordered)"
            )
        if event.compute_hash() != event.hash:
            report.broken.append(
                f"custody event {event.pk}: its fields were changed after it was written"
            )
        prev = event.hash
    return report
