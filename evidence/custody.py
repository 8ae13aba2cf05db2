"""The chain of custody: an append-only ledger, each event hashed with the one before it, and
each link keyed (HMAC under the ledger key, bakkme_safety/ledger.py) so that nobody without the
key can edit an event and recompute the hashes after it. The ledger's head is anchored outside
the database by signed checkpoints (evidence/checkpoints.py).

The chain is global (one sequence over the whole ledger), not one per item. A global chain
puts every event in one order, so removing events, even every event of one item, or reordering
them breaks it, and `verify_custody` checks it in one walk. The price is that writers take
turns: record() holds a short transaction-level lock while it reads the chain's head and
inserts. Custody events are written a few at a time by people's actions and in batches by
exports and purges, so the lock is never held long.
"""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from core import ledger

from .models import CustodyEvent, EvidenceItem

GENESIS = "0" * 64
CHAIN = "custody"
_LOCK_ID = 0x42414B4B  # pg_advisory_xact_lock key of the ledger's head ("BAKK")


def _actor_name(actor, system: str | None) -> str:
    if actor is not None:
        return actor.get_username()
    return system or "system"


def _lock_head() -> tuple[str, str]:
    """Take the ledger's write lock and return the hash and the MAC of the last event."""
    ledger.lock_chain(_LOCK_ID)
    last = CustodyEvent.objects.order_by("-pk").values_list("hash", "mac").first()
    return last or (GENESIS, ledger.GENESIS_MAC)


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
    key = ledger.current_key()
    with transaction.atomic():
        prev, prev_mac = _lock_head()
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
                key_id=key.key_id,
            )
            event.hash = prev = event.compute_hash()
            event.mac = prev_mac = key.link(CHAIN, prev_mac, event.hash)
            events.append(event)
        CustodyEvent.objects.bulk_create(events)
    return events


def verify_chain(batch: int = 2000, mark: int | None = None) -> ledger.ChainWalk:
    """Walk the ledger in order: each event's hash must cover its fields and the previous hash,
    and its MAC must be the ledger key's over its hash and the previous MAC. `mark`: the event
    a checkpoint names (the walk notes how many events lead up to it and its MAC)."""
    keys = ledger.known_keys()
    walk = ledger.ChainWalk(chain=CHAIN, mark=mark)
    prev, prev_mac = GENESIS, ledger.GENESIS_MAC
    for event in CustodyEvent.objects.order_by("pk").iterator(chunk_size=batch):
        if event.prev_hash != prev:
            walk.problem(
                f"custody event {event.pk}: does not follow the event before it "
                "(an event was removed, inserted or reordered)"
            )
        if event.compute_hash() != event.hash:
            walk.problem(f"custody event {event.pk}: its fields were changed after it was written")
        wrong = ledger.verify_link(keys, CHAIN, event.key_id, prev_mac, event.hash, event.mac)
        if wrong:
            walk.problem(f"custody event {event.pk}: {wrong}")
        # Go on from what is stored: each break is reported where it is, once.
        prev, prev_mac = event.hash, event.mac
        walk.step(event.pk, event.mac)
    return walk


def head() -> tuple[int | None, int, str]:
    """(the last event's id, how many events up to it, its MAC), as committed now."""
    last = CustodyEvent.objects.order_by("-pk").values_list("pk", "mac").first()
    if last is None:
        return None, 0, ledger.GENESIS_MAC
    return last[0], CustodyEvent.objects.filter(pk__lte=last[0]).count(), last[1]
