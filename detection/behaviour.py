"""The behaviour rules run over the account events the platform sends (README "Detection"):
for the batch's adult actors, with one query for their recent events. A hit files an automated
report about the adult's account (the intake's grouping opens or joins its case) and a behaviour
detection, once per rule per adult per window. The rules themselves are pure functions
(detection/rules.py). Runs inside the intake's transaction (reports.signals.account_events_received,
detection/receivers.py)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from bakkme_safety.policy import Source
from reports.actions import store_reports
from reports.events import fingerprint
from reports.models import AccountEvent, Report

from . import rules
from .models import Detection, DetectionMethod

# The event types the behaviour rules count.
RULE_EVENT_TYPES = (AccountEvent.Type.MESSAGE_SENT, AccountEvent.Type.GIFT_OR_PAYMENT)


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
    store_reports(reports, now=now)  # the intake's grouping: the adult's account case
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
