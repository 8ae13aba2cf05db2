"""The outbox: everything the back office sends to the platform's webhook, delivered by runs.

The apps register their kinds (register_kind, in their AppConfig.ready): the enforcement actions
(cases/outbox.py), the reporter acknowledgments (reports/acknowledgments.py), a legal freeze's
request for an account's records (legal/freeze.py). deliver_due() is one run (the django-q2 task
deliveries.tasks.deliver, every
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

Kinds go in the order of their `order` (enforcement actions first, then the records requests,
then acknowledgments); each kind's `due` orders its own rows (actions: removals, suspensions and
freezes on P0 and CSAM cases first, then the oldest).
Without a URL and a secret, nothing is claimed: the deliveries wait, and the run says how many.

What a payload holds is its kind's business (the reported party never learns who reported;
a records request never says why).
"""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from bakkme_safety.roles import Role
from staff import actions as staff
from staff.models import Notification

from . import http, signing

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


def due(qs: QuerySet, now: datetime) -> QuerySet:
    """The rows of `qs` due now: pending, not waiting for a retry, not leased to a live run."""
    return qs.filter(status="pending").filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        Q(in_flight_until__isnull=True) | Q(in_flight_until__lte=now),
    )


@dataclass(frozen=True)
class DeliveryKind:
    """One kind of thing sent to the platform's webhook: rows of a WebhookDelivery model with a
    `status` (pending while due). `due(now)` gives the rows due, in order; `waiting()` the
    pending rows (counted when no webhook is configured); `payload(row)` the JSON body;
    `key(row)` the idempotency key (stable across retries); `case_id(row)` the case a failure
    is reported under. A 2xx answer whose JSON "status" confirms the delivery sets
    `confirmed_status` ("sent" for a kind that has no confirmed state)."""

    name: str
    model: type
    due: Callable[[datetime], QuerySet]
    payload: Callable[[object], dict]
    key: Callable[[object], str]
    case_id: Callable[[object], int | None]
    waiting: Callable[[], QuerySet]
    related: tuple = ()
    confirmed_status: str = "confirmed"
    order: int = 100


_KINDS: dict[str, DeliveryKind] = {}


def register_kind(kind: DeliveryKind) -> None:
    """Deliver `kind` too (once per name; an app registers its kinds in AppConfig.ready)."""
    _KINDS.setdefault(kind.name, kind)


def kinds() -> list[DeliveryKind]:
    return sorted(_KINDS.values(), key=lambda kind: kind.order)


def waiting_count() -> int:
    """Deliveries not yet sent (shown when no webhook is configured)."""
    return sum(kind.waiting().count() for kind in kinds())


# --- One run ------------------------------------------------------------------------------------


def deliver_due() -> DeliveryResult:
    """Send what is due (see the module's docstring); safe to run twice, and at once."""
    result = DeliveryResult()
    if not signing.configured():
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


def _claim(kind: DeliveryKind, limit: int) -> list:
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
        due(kind.model.objects.filter(pk__in=ids), now).update(in_flight_until=lease)
        rows = {
            row.pk: row
            for row in kind.model.objects.filter(pk__in=ids, in_flight_until=lease).select_related(
                *kind.related
            )
        }
    return [rows[pk] for pk in ids if pk in rows]


def _renew(kind: DeliveryKind, row) -> datetime | None:
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


def _send(kind: DeliveryKind, row, result: DeliveryResult) -> None:
    attempted_at = _renew(kind, row)
    if attempted_at is None:
        result.lease_lost += 1
        return
    body = signing.encode(kind.payload(row))
    headers = signing.signed_headers(
        settings.BAKKME_PLATFORM_WEBHOOK_SECRET, body, kind.key(row), attempted_at
    )
    answer = http.post(settings.BAKKME_PLATFORM_WEBHOOK_URL, body, headers)
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
            fields["next_attempt_at"] = min(now + http.retry_delay(row.attempts), deadline)
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


def requeue(row, now: datetime | None = None) -> bool:
    """A failed delivery goes back to pending for another BAKKME_WEBHOOK_GIVE_UP_HOURS and a run
    is queued once this commits. The apps' actions call this (with an actor, and an event of
    their own: cases.actions.retry_delivery, legal.freeze.retry_records_request)."""
    now = now or timezone.now()
    updated = (
        type(row)
        .objects.filter(pk=row.pk, status="failed")
        .update(status="pending", next_attempt_at=now, first_attempt_at=None, in_flight_until=None)
    )
    if updated:
        transaction.on_commit(queue_delivery, robust=True)
    return bool(updated)


def queue_delivery() -> None:
    """Queue a run now (after a decision or an intake committed), rather than at the next
    scheduled one."""
    from django_q.tasks import async_task  # noqa: PLC0415  (django-q2 needs the app registry)

    async_task("deliveries.tasks.deliver")
