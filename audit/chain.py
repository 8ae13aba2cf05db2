"""The audit trail as a keyed chain: each event's MAC covers its fields and the MAC of the event
before it, under the ledger key (bakkme_safety/ledger.py). Checked by `verify_custody` together
with the custody ledger, against the same signed checkpoints (evidence/checkpoints.py)."""

import json

from django.db import transaction

from core import ledger

from .models import AuditEvent

CHAIN = "audit"
_LOCK_ID = 0x4155444954  # pg_advisory_xact_lock key of the audit trail's head ("AUDIT")


def body(event) -> str:
    """What an event's MAC covers, as it reads back from either database: the detail through
    JSON (its keys become text), the address as the field stores it. `event`: an AuditEvent,
    or the historical model's in the migration that chained the rows already there."""
    return ledger.canonical(
        {
            "at": event.at.isoformat(),
            "action": event.action,
            "actor": event.actor_id,
            "actor_name": event.actor_name,
            "object_type": event.object_type,
            "object_id": str(event.object_id),
            "object_repr": event.object_repr,
            "detail": json.loads(json.dumps(event.detail)),
            "ip": AuditEvent._meta.get_field("ip").get_prep_value(event.ip),
        }
    )


def append(event: AuditEvent) -> AuditEvent:
    """Chain `event` (not saved yet) after the trail's head and save it, writers taking turns."""
    key = ledger.current_key()
    with transaction.atomic():
        ledger.lock_chain(_LOCK_ID)
        prev_mac = AuditEvent.objects.order_by("-pk").values_list("mac", flat=True).first()
        event.key_id = key.key_id
        event.mac = key.link(CHAIN, prev_mac or ledger.GENESIS_MAC, body(event))
        event.save()
    return event


def verify_chain(batch: int = 2000, mark: int | None = None) -> ledger.ChainWalk:
    """Walk the trail in order; every MAC must be the ledger key's over the event and the MAC
    before it. `mark`: the event a checkpoint names."""
    keys = ledger.known_keys()
    walk = ledger.ChainWalk(chain=CHAIN, mark=mark)
    prev_mac = ledger.GENESIS_MAC
    for event in AuditEvent.objects.order_by("pk").iterator(chunk_size=batch):
        wrong = ledger.verify_link(keys, CHAIN, event.key_id, prev_mac, body(event), event.mac)
        if wrong:
            walk.problem(f"audit event {event.pk}: {wrong}")
        prev_mac = event.mac  # go on from what is stored: each break is reported once
        walk.step(event.pk, event.mac)
    return walk


def head() -> tuple[int | None, int, str]:
    """(the last event's id, how many events up to it, its MAC), as committed now."""
    last = AuditEvent.objects.order_by("-pk").values_list("pk", "mac").first()
    if last is None:
        return None, 0, ledger.GENESIS_MAC
    return last[0], AuditEvent.objects.filter(pk__lte=last[0]).count(), last[1]
