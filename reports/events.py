"""Account events from the platform, and the behaviour rules run over them (README "Detection").

ingest_events stores a batch exactly once per idempotency key, all or nothing, then evaluates the
behaviour rules (reports/rules.py) for the batch's actors with one query for their recent events.
A hit raises a behaviour Detection on the adult's case, opened or joined through the intake's case
grouping (an automated report about the account), once per rule per adult per window.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bakkme_safety.policy import Source
from cases.services import attach_reports
from detection import rules
from detection.models import Detection, DetectionMethod

from .models import AccountEvent, Report

_ATTEMPTS = 3
RULE_EVENT_TYPES = (AccountEvent.Type.MESSAGE_SENT, AccountEvent.Type.GIFT_OR_PAYMENT)


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
        evaluate_behaviour(integration, list(new.values()))
        from detection.banevasion import check_events

        check_events(list(new.values()))
    return results


def evaluate_behaviour(integration, new_events: list[AccountEvent]) -> list[Detection]:
    """Run the rules for the adults acting in `new_events`; one query for their recent events."""
    window = timedelta(hours=settings.BAKKME_RULE_WINDOW_HOURS)
    now_of: dict[str, object] = {}
    for event in new_events:
        if event.type in RULE_EVENT_TYPES and rules.is_adult(event.actor_age, event.actor_age_band):
            at = now_of.get(event.actor_platform_id)
            now_of[event.actor_platform_id] = (
                max(at, event.occurred_at) if at else event.occurred_at
            )
    if not now_of:
        return []
    recent: dict[str, list[AccountEvent]] = {actor: [] for actor in now_of}
    for event in AccountEvent.objects.filter(
        actor_platform_id__in=now_of,
        type__in=RULE_EVENT_TYPES,
        occurred_at__gte=min(now_of.values()) - window,
        occurred_at__lte=max(now_of.values()),
    ).order_by("occurred_at", "pk"):
        recent[event.actor_platform_id].append(event)
    hits = [
        (actor, hit)
        for actor, events in recent.items()
        for hit in rules.evaluate(events, now_of[actor])
    ]
    if not hits:
        return []
    # Once per rule per adult per window: a behaviour detection from the last window stands.
    seen = {
        (d.matched.get("actor"), d.matched.get("rule"))
        for d in Detection.objects.filter(
            method=DetectionMethod.BEHAVIOUR,
            created_at__gte=timezone.now() - window,
            matched__actor__in=list(now_of),
        ).only("matched")
    }
    hits = [(actor, hit) for actor, hit in hits if (actor, hit["rule"]) not in seen]
    if not hits:
        return []
    now = timezone.now()
    reports = []
    for actor, hit in hits:
        key = f"behaviour:{hit['rule']}:{actor}:{hit['events'][-1]}"
        reports.append(
            Report(
                integration=integration,
                idempotency_key=key[:200],
                payload_sha256=fingerprint(hit),
                source=Source.AUTOMATED,
                category=settings.BAKKME_RULE_CASE_CATEGORY,
                surface=settings.BAKKME_RULE_CASE_SURFACE,
                received_at=now,
                account_platform_id=actor,
                description=f"Behaviour rule {hit['rule']}: {hit['counts']}",
            )
        )
    attach_reports(reports, now=now)  # the intake's grouping: the adult's account case
    detections = [
        Detection(
            case_id=report.case_id,
            report=report,
            method=DetectionMethod.BEHAVIOUR,
            matched={"actor": actor, **hit},
        )
        for report, (actor, hit) in zip(reports, hits, strict=True)
    ]
    return Detection.objects.bulk_create(detections)


def with_events(detections: list[Detection]) -> list[Detection]:
    """Give each behaviour and ban-evasion detection the account events it names (`.events`,
    oldest first), so the case page shows what the adult did; one query for them all."""
    wanted = {d.pk: _event_ids(d) for d in detections}
    ids = {pk for pks in wanted.values() for pk in pks}
    found = {e.pk: e for e in AccountEvent.objects.filter(pk__in=ids)} if ids else {}
    for detection in detections:
        detection.events = [found[pk] for pk in wanted[detection.pk] if pk in found]
    return detections


def _event_ids(detection: Detection) -> list[int]:
    matched = detection.matched if isinstance(detection.matched, dict) else {}
    if detection.method == DetectionMethod.BEHAVIOUR:
        return [pk for pk in matched.get("events", []) if isinstance(pk, int)]
    if detection.method == DetectionMethod.BAN_EVASION and matched.get("account_event"):
        return [matched["account_event"]]
    return []
