"""Account events from the platform, and the behaviour rules run over them (README "Detection").

ingest_events stores a batch exactly once per idempotency key, all or nothing, then evaluates the
behaviour rules (reports/rules.py) for the batch's actors with one query for their recent events.
A hit raises a behaviour Detection on the adult's case, opened or joined through the intake's case
grouping (an automated report about the account), once per rule per adult per window.
"""

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from . import signals
from .models import AccountEvent

_ATTEMPTS = 3


class EventConflict(Exception):
    """The key was used before for a different event."""


@dataclass(frozen=True)
class EventResult:
    event: AccountEvent
    created: bool


def fingerprint(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_event(integration, data: dict, payload_sha256: str) -> AccountEvent:
    """An unsaved AccountEvent from validated API data (reports.api.serializers)."""
    actor = data["actor"]
    target = data.get("target") or {}
    identifiers = {k: v for k, v in (data.get("identifiers") or {}).items() if v}
    return AccountEvent(
        integration=integration,
        idempotency_key=data["idempotency_key"],
        payload_sha256=payload_sha256,
        type=data["type"],
        occurred_at=data["occurred_at"],
        actor_platform_id=actor["platform_id"],
        actor_age=actor.get("age"),
        actor_age_band=actor.get("age_band", ""),
        target_platform_id=target.get("platform_id", ""),
        target_age=target.get("age"),
        target_age_band=target.get("age_band", ""),
        mutual_followers=data.get("mutual_followers"),
        surface=data.get("surface", ""),
        identifiers=identifiers,
    )


def ingest_events(integration, events: list[AccountEvent]) -> list[EventResult]:
    """Store new events and run the behaviour rules, in one transaction.

    A key already used by this integration answers with the stored event; a key reused for a
    different event raises EventConflict and stores nothing of the batch.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return _ingest(integration, events)
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
            for event in events:
                event.pk = None
    raise AssertionError("unreachable")


def _ingest(integration, events):
    keys = {e.idempotency_key for e in events}
    stored = {
        e.idempotency_key: e
        for e in AccountEvent.objects.filter(integration=integration, idempotency_key__in=keys)
    }
    new: dict[str, AccountEvent] = {}
    results = []
    for event in events:
        earlier = stored.get(event.idempotency_key) or new.get(event.idempotency_key)
        if earlier is None:
            new[event.idempotency_key] = event
            results.append(EventResult(event, created=True))
        elif earlier.payload_sha256 != event.payload_sha256:
            raise EventConflict(
                f"idempotency_key {event.idempotency_key!r} was used for a different event."
            )
        else:
            results.append(EventResult(earlier, created=False))
    if new:
        created = AccountEvent.objects.bulk_create(new.values())
        if any(e.pk is None for e in created):  # backends that return no ids (none we use)
            by_key = {
                e.idempotency_key: e
                for e in AccountEvent.objects.filter(
                    integration=integration, idempotency_key__in=new
                )
            }
            for event in created:
                event.pk = by_key[event.idempotency_key].pk
        # The detection app runs the behaviour rules and the ban-evasion checks on them.
        signals.account_events_received.send(
            sender=AccountEvent, events=list(new.values()), integration=integration
        )
    return results
