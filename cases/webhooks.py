"""Delivering enforcement actions and reporter acknowledgments to the platform's webhook.

deliver_due() is one run (the django-q2 task cases.tasks.deliver_webhooks, every
BAKKME_WEBHOOK_SCHEDULE_MINUTES and queued after a decision or an intake creates something to
send). A run, for each kind, until BAKKME_WEBHOOK_BATCH rows or nothing is due:

1. claims the next due rows in one short transaction: SELECT ... FOR UPDATE SKIP LOCKED (on
   SQLite writers are serialised by IMMEDIATE transactions), then leases them (in_flight_until)
   and commits. It claims only what it can call within one lease, each call taking up to the
   timeout (claim_size()); a concurrent run skips locked and leased rows and takes the next.
2. right before each call, renews that row's lease with a conditional UPDATE: only while the
   row still holds this run's lease and that lease has not run out (the real clock, not the
   run's start). This counts the attempt. A row whose lease was lost (this run was slowed
   down and another run took it over) is skipped, never called: each call is made by one run.
3. calls the platform, outside any transaction (signed, with the row's idempotency key: if an
   answer is lost and the lease runs out, the retry carries the same key and the platform
   drops it);
4. records the answer on the row, only if the row still holds this run's lease: 2xx -> sent
   (or confirmed when the answer's JSON "status" says the platform carried it out); anything
   else -> retried after an exponential backoff, and failed once BAKKME_WEBHOOK_GIVE_UP_HOURS
   have passed since the first attempt; the CSO is then alerted.

Enforcement actions go before acknowledgments, and both before the kinds the apps above
register with register_kind() (legal: a freeze's request for an account's records); among
actions, removals, suspensions and freezes on P0 and CSAM cases go first, then the oldest.
Without a URL and a secret, nothing is claimed: the deliveries wait, and the run says how many.

The reported party never learns who reported: an enforcement payload names the action's
account and content only; an acknowledgment payload names the reporter and the report only.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from bakkme_safety import webhooks
from bakkme_safety.roles import Role
from reports.models import Acknowledgment
from staff import services as staff
from staff.models import Notification

from .models import EnforcementAction

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    sent: int = 0
    confirmed: int = 0
    retrying: int = 0
    failed: int = 0
    waiting: int = 0
    # Claimed, but taken over by another run before this one got to call (not called).
    lease_lost: int = 0
    failed_case_ids: list = field(default_factory=list)

    def as_dict(self) -> dict:
        result = asdict(self)
        result.pop("failed_case_ids")
        return result


# --- What is due, in which order ----------------------------------------------------------------


def _due(qs, now: datetime):
    return qs.filter(status="pending").filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        Q(in_flight_until__isnull=True) | Q(in_flight_until__lte=now),
    )


def deliverable_actions():
    """The actions the platform carries out (not the back office's own: CyberTipline, police)."""
    return EnforcementAction.objects.filter(type__in=settings.BAKKME_WEBHOOK_ACTION_TYPES)


def urgency():
    """0 for removals and suspensions on P0 and CSAM cases, 1 for the rest."""
    urgent_case = (
        Q(case__priority__in=settings.BAKKME_WEBHOOK_URGENT_PRIORITIES)
        | Q(case__category__in=settings.BAKKME_WEBHOOK_URGENT_CATEGORIES)
        | Q(decision__violation__in=settings.BAKKME_WEBHOOK_URGENT_VIOLATIONS)
    )
    return models.Case(
        models.When(Q(type__in=settings.BAKKME_WEBHOOK_URGENT_ACTION_TYPES) & urgent_case, then=0),
        default=1,
        output_field=models.IntegerField(),
    )


def due_actions(now: datetime):
    return (
        _due(deliverable_actions(), now)
        .annotate(urgency=urgency())
        .order_by("urgency", "created_at", "pk")
    )


def due_acknowledgments(now: datetime):
    return _due(Acknowledgment.objects.all(), now).order_by("created_at", "pk")


def waiting_count() -> int:
    """Deliveries not yet sent (shown when no webhook is configured)."""
    return sum(kind.waiting().count() for kind in kinds() if kind.waiting is not None)


# --- Payloads -----------------------------------------------------------------------------------


def action_idempotency_key(action: EnforcementAction) -> str:
    return f"bakkme-action-{action.pk}"


def acknowledgment_idempotency_key(ack: Acknowledgment) -> str:
    return f"bakkme-ack-{ack.pk}"


def action_payload(action: EnforcementAction) -> dict:
    """What the platform gets for an action: never anything about the reporter."""
    return {
        "type": "enforcement_action",
        "action": {
            "id": action.pk,
            "type": action.type,
            "account_platform_id": action.account_platform_id,
            "content_platform_id": action.content_platform_id,
            "restricted_feature": action.restricted_feature,
            "case": action.case_id,
            "created_at": action.created_at.isoformat(),
        },
        "idempotency_key": action_idempotency_key(action),
    }


def acknowledgment_payload(ack: Acknowledgment) -> dict:
    """What the platform passes on to a reporter: never anything about the reported party."""
    report = ack.report
    return {
        "type": "reporter_acknowledgment",
        "acknowledgment": {
            "id": ack.pk,
            "kind": ack.kind,
            "outcome": ack.outcome or None,
            "report": {"id": report.pk, "idempotency_key": report.idempotency_key},
            "reporter": {
                "platform_id": report.reporter_platform_id,
                "contact": report.reporter_contact,
            },
            "created_at": ack.created_at.isoformat(),
        },
        "idempotency_key": acknowledgment_idempotency_key(ack),
    }


@dataclass
class DeliveryKind:
    """One kind of thing sent to the platform's webhook: rows of a WebhookDelivery model with a
    `status` (pending while due), delivered by the runs below. `due(now)` gives the rows due, in
    order; `waiting()` the pending rows (counted when no webhook is configured). A 2xx answer
    whose JSON "status" confirms the delivery sets `confirmed_status` ("sent" for a kind that
    has no confirmed state)."""

    model: type
    due: object
    payload: object
    key: object
    related: tuple
    case_id: object
    waiting: object = None
    confirmed_status: str = "confirmed"


_Kind = DeliveryKind

ACTIONS = DeliveryKind(
    EnforcementAction,
    due_actions,
    action_payload,
    action_idempotency_key,
    (),
    lambda a: a.case_id,
    waiting=lambda: deliverable_actions().filter(status="pending"),
)
ACKNOWLEDGMENTS = DeliveryKind(
    Acknowledgment,
    due_acknowledgments,
    acknowledgment_payload,
    acknowledgment_idempotency_key,
    ("report",),
    lambda a: a.report.case_id,
    waiting=lambda: Acknowledgment.objects.filter(status="pending"),
)

# The kinds a run delivers, in this order: enforcement actions first, then acknowledgments, then
# the kinds the apps above register (in their AppConfig.ready: cases never imports them).
_KINDS: list[DeliveryKind] = [ACTIONS, ACKNOWLEDGMENTS]


def register_kind(kind: DeliveryKind) -> None:
    """Deliver `kind` too, after the kinds registered before it; once per model."""
    if all(known.model is not kind.model for known in _KINDS):
        _KINDS.append(kind)


def kinds() -> tuple[DeliveryKind, ...]:
    return tuple(_KINDS)


# --- One run ------------------------------------------------------------------------------------


def deliver_due() -> DeliveryResult:
    """Send what is due (see the module's docstring); safe to run twice, and at once."""
    result = DeliveryResult()
    if not webhooks.configured():
        result.waiting = waiting_count()
        if result.waiting:
            log.warning(
                "No platform webhook configured: %s deliveries wait "
                "(BAKKME_PLATFORM_WEBHOOK_URL, BAKKME_PLATFORM_WEBHOOK_SECRET).",
                result.waiting,
            )
        return result
    for kind in kinds():
        budget = settings.BAKKME_WEBHOOK_BATCH
        while budget > 0:
            rows = _claim(kind, min(budget, claim_size()))
            if not rows:
                break
            budget -= len(rows)
            for row in rows:
                _send(kind, row, result)
    if result.failed_case_ids:
        alert_failures(result.failed_case_ids, timezone.now())
    return result


def lease_length() -> timedelta:
    """How long a run holds a row: one call's timeout plus the margin."""
    return timedelta(
        seconds=settings.BAKKME_WEBHOOK_TIMEOUT_SECONDS
        + settings.BAKKME_WEBHOOK_LEASE_MARGIN_SECONDS
    )


def claim_size() -> int:
    """The rows claimed at once: as many as a run can call within one lease when every call
    takes the whole timeout, so that a slow platform does not leave claimed rows waiting past
    their lease (at least one)."""
    timeout = max(settings.BAKKME_WEBHOOK_TIMEOUT_SECONDS, 1)
    return max(int(lease_length().total_seconds() // timeout), 1)


def _claim(kind: _Kind, limit: int) -> list:
    """Lease up to `limit` due rows to this run, in order; the lease value is the run's token."""
    now = timezone.now()
    lease = now + lease_length()
    with transaction.atomic():
        ids = list(
            kind.due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        # Re-checked in the UPDATE itself: a row another run leased meanwhile is not taken.
        _due(kind.model.objects.filter(pk__in=ids), now).update(in_flight_until=lease)
        rows = {
            row.pk: row
            for row in kind.model.objects.filter(pk__in=ids, in_flight_until=lease).select_related(
                *kind.related
            )
        }
    return [rows[pk] for pk in ids if pk in rows]


def _renew(kind: _Kind, row) -> datetime | None:
    """Renew this run's lease on the row right before its call and count the attempt; only
    while the row still holds that lease and the lease has not run out by the clock now.
    Returns the time of the attempt, or None when the lease was lost (the row is not called:
    another run may be calling it)."""
    now = timezone.now()
    lease = now + lease_length()
    renewed = kind.model.objects.filter(
        pk=row.pk,
        status="pending",
        in_flight_until=row.in_flight_until,
        in_flight_until__gt=now,
    ).update(
        in_flight_until=lease,
        attempts=F("attempts") + 1,
        last_attempt_at=now,
        first_attempt_at=Coalesce("first_attempt_at", now),
    )
    if not renewed:
        return None
    # Nobody else writes the row while this run holds its lease: the values are known.
    row.in_flight_until, row.attempts, row.last_attempt_at = lease, row.attempts + 1, now
    row.first_attempt_at = row.first_attempt_at or now
    return now


def _send(kind: _Kind, row, result: DeliveryResult) -> None:
    attempted_at = _renew(kind, row)
    if attempted_at is None:
        result.lease_lost += 1
        return
    body = webhooks.encode(kind.payload(row))
    headers = webhooks.signed_headers(
        settings.BAKKME_PLATFORM_WEBHOOK_SECRET, body, kind.key(row), attempted_at
    )
    answer = webhooks.post(settings.BAKKME_PLATFORM_WEBHOOK_URL, body, headers)
    now = timezone.now()
    fields = {
        "in_flight_until": None,
        "last_response_code": answer.code,
        "last_response_body": answer.body,
        "last_error": answer.error,
    }
    if answer.ok:
        confirmed = answer.status in settings.BAKKME_WEBHOOK_CONFIRMED_ANSWERS
        fields.update(
            status=kind.confirmed_status if confirmed else "sent",
            sent_at=now,
            next_attempt_at=None,
        )
        outcome = fields["status"]
    else:
        deadline = row.first_attempt_at + timedelta(hours=settings.BAKKME_WEBHOOK_GIVE_UP_HOURS)
        if now >= deadline:
            fields.update(status="failed", next_attempt_at=None)
            outcome = "failed"
        else:
            # The last retry is at the deadline itself: 24 hours of trying, not a little less.
            fields["next_attempt_at"] = min(now + webhooks.retry_delay(row.attempts), deadline)
            outcome = "retrying"
        log.warning(
            "Webhook delivery %s failed (attempt %s): %s %s",
            kind.key(row),
            row.attempts,
            answer.code,
            answer.error,
        )
    # Only while this run holds the lease: a run that outlived it records nothing.
    updated = kind.model.objects.filter(
        pk=row.pk, status="pending", in_flight_until=row.in_flight_until
    ).update(**fields)
    if not updated:
        return
    setattr(result, outcome, getattr(result, outcome) + 1)
    if outcome == "failed":
        result.failed_case_ids.append(kind.case_id(row))


def alert_failures(case_ids: list[int], now: datetime) -> list[Notification]:
    """Tell every CSO which cases have deliveries the platform never received."""
    recipients = dict.fromkeys(staff.staff_in_role(Role.CHILD_SAFETY_OFFICER), case_ids)
    return staff.notify(Notification.Kind.WEBHOOK_FAILED, recipients, now)


def retry_now(row, now: datetime | None = None) -> bool:
    """A failed delivery goes back to pending for another BAKKME_WEBHOOK_GIVE_UP_HOURS
    (the CSO, after the platform's outage or a fixed secret); queued at once."""
    now = now or timezone.now()
    updated = (
        type(row)
        .objects.filter(pk=row.pk, status="failed")
        .update(
            status="pending",
            next_attempt_at=now,
            first_attempt_at=None,
            in_flight_until=None,
        )
    )
    if updated:
        transaction.on_commit(queue_delivery, robust=True)
    return bool(updated)


def queue_delivery() -> None:
    """Queue a run now (after a decision or an intake committed), rather than at the next
    scheduled one."""
    from django_q.tasks import async_task

    async_task("cases.tasks.deliver_webhooks")
