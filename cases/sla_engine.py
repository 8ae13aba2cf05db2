"""The SLA engine: warnings, breaches, escalation and the P0 emergency protocol.

One sweep answers three questions from partial indexes over the open cases whose clock runs:
which P0 cases have not started the emergency protocol, which deadlines have passed, which
warning points have passed. Each is set-based: one locking SELECT, a few UPDATEs and bulk
INSERTs, however many cases are concerned.

Exactly once: the rows are locked FOR UPDATE SKIP LOCKED, and each step's condition is a column
the same transaction changes (emergency_notified_at, breached_at, sla_warnings_sent). A second
sweep running at the same time skips the locked rows; one running after it no longer matches
them. On SQLite, writers are serialised (IMMEDIATE transactions) to the same effect.

After downtime, the first sweep records every missed breach with breached_at = due_at, the true
time, and skips the warnings of windows that have already run out: one catch-up pass is right,
so the schedule needs no replay (Q_CLUSTER catch_up is off).

The sweep is the system acting: its changes are CaseEvents on the timeline (actor "system")
rather than simple-history rows, which record what people change.
"""

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bakkme_safety.roles import Role
from staff import services as staff
from staff.models import Notification

from .models import (
    OPEN_STATES,
    Case,
    CaseEvent,
    CaseState,
    EmergencyChecklistItem,
    SlaBreach,
)
from .sla import warning_times

CHUNK = 2000  # ids per UPDATE ... WHERE id IN (...), within SQLite's variable limit


@dataclass
class SweepResult:
    warned: int = 0
    breached: int = 0
    escalated: int = 0
    notified: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def running_clocks():
    """Open cases whose SLA clock runs: no first action yet, not breached."""
    return Case.objects.filter(
        state__in=OPEN_STATES, first_action_at__isnull=True, breached_at__isnull=True
    )


def _chunks(ids):
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _locked(qs, *fields):
    return list(qs.select_for_update(skip_locked=True, of=("self",)).order_by("pk").values(*fields))


def _system_event(case_id, type_, at, **payload) -> CaseEvent:
    return CaseEvent(
        case_id=case_id, type=type_, actor=None, actor_name="system", at=at, payload=payload
    )


def sweep(now: datetime | None = None) -> SweepResult:
    """Run the whole SLA sweep once; safe to run twice, at once, or hours late."""
    now = now or timezone.now()
    result = SweepResult()
    start_emergencies(now, result)
    mark_breaches(now, result)
    send_warnings(now, result)
    return result


def start_emergencies(now: datetime, result: SweepResult | None = None) -> list[int]:
    """P0: notify the CSO and the on-call senior reviewer at once and open the checklist."""
    result = result or SweepResult()
    with transaction.atomic():
        rows = _locked(
            Case.objects.filter(
                priority=0, emergency_notified_at__isnull=True, state__in=OPEN_STATES
            ),
            "pk",
        )
        ids = [r["pk"] for r in rows]
        if not ids:
            return []
        for chunk in _chunks(ids):
            Case.objects.filter(pk__in=chunk).update(emergency_notified_at=now)
        EmergencyChecklistItem.objects.bulk_create(
            [
                EmergencyChecklistItem(case_id=pk, item=item, label=label, position=i)
                for pk in ids
                for i, (item, label) in enumerate(settings.BAKKME_EMERGENCY_CHECKLIST)
            ],
            ignore_conflicts=True,
        )
        CaseEvent.objects.bulk_create(
            [_system_event(pk, CaseEvent.Type.EMERGENCY, now) for pk in ids]
        )
        recipients = dict.fromkeys(_cso_and_senior_on_duty(), ids)
        result.notified += len(staff.notify(Notification.Kind.EMERGENCY, recipients, now))
    return ids


def mark_breaches(now: datetime, result: SweepResult) -> None:
    """Deadlines passed without a first action: breached at the deadline, escalated, told."""
    with transaction.atomic():
        rows = _locked(
            running_clocks().filter(due_at__lte=now),
            "pk",
            "priority",
            "sla_started_at",
            "due_at",
            "assignee_id",
            "escalated_to",
            "state",
        )
        if not rows:
            return
        # Not yet with a senior, the CSO or legal: it goes to the senior reviewers' queue.
        escalate = [r for r in rows if not r["escalated_to"]]
        keep = [r for r in rows if r["escalated_to"]]
        for chunk in _chunks(r["pk"] for r in escalate):
            Case.objects.filter(pk__in=chunk).update(
                breached_at=F("due_at"),
                escalated_to=Role.SENIOR_REVIEWER,
                state=CaseState.ESCALATED,
                updated_at=now,
            )
        for chunk in _chunks(r["pk"] for r in keep):
            Case.objects.filter(pk__in=chunk).update(breached_at=F("due_at"), updated_at=now)
        SlaBreach.objects.bulk_create(
            [
                SlaBreach(
                    case_id=r["pk"],
                    priority=r["priority"],
                    sla_started_at=r["sla_started_at"],
                    breached_at=r["due_at"],
                    detected_at=now,
                    held_by_id=r["assignee_id"],
                )
                for r in rows
            ]
        )
        events = [
            _system_event(
                r["pk"], CaseEvent.Type.SLA_BREACHED, r["due_at"], detected_at=now.isoformat()
            )
            for r in rows
        ]
        events += [
            _system_event(
                r["pk"],
                CaseEvent.Type.ESCALATED,
                now,
                to=Role.SENIOR_REVIEWER.value,
                reason="SLA breached",
                **{"from": r["state"]},
            )
            for r in escalate
        ]
        CaseEvent.objects.bulk_create(events)
        ids = [r["pk"] for r in rows]
        recipients = dict.fromkeys(_cso_and_senior_on_duty(), ids)
        result.breached += len(rows)
        result.escalated += len(escalate)
        result.notified += len(staff.notify(Notification.Kind.SLA_BREACH, recipients, now))


def send_warnings(now: datetime, result: SweepResult) -> None:
    """Warning points passed: tell the reviewer holding the case, else the seniors on duty.

    Several points passed at once (after downtime) give one warning, for the latest.
    """
    with transaction.atomic():
        rows = _locked(
            running_clocks().filter(sla_next_warning_at__lte=now, due_at__gt=now),
            "pk",
            "sla_started_at",
            "due_at",
            "sla_warnings_sent",
            "assignee_id",
            "claim_expires_at",
        )
        if not rows:
            return
        updates, events = [], []
        to_assignee = defaultdict(list)
        unassigned = []
        for r in rows:
            times = warning_times(r["sla_started_at"], r["due_at"])
            reached = sum(1 for t in times if t <= now)
            updates.append(
                Case(
                    pk=r["pk"],
                    sla_warnings_sent=reached,
                    sla_next_warning_at=times[reached] if reached < len(times) else None,
                )
            )
            fraction = sorted(settings.BAKKME_SLA_WARNING_FRACTIONS)[reached - 1]
            events.append(
                _system_event(
                    r["pk"],
                    CaseEvent.Type.SLA_WARNING,
                    times[reached - 1],
                    fraction=fraction,
                    due_at=r["due_at"].isoformat(),
                )
            )
            if r["assignee_id"] and r["claim_expires_at"] and r["claim_expires_at"] > now:
                to_assignee[r["assignee_id"]].append(r["pk"])
            else:
                unassigned.append(r["pk"])
        Case.objects.bulk_update(
            updates, ["sla_warnings_sent", "sla_next_warning_at"], batch_size=500
        )
        CaseEvent.objects.bulk_create(events)
        recipients = defaultdict(list)
        users = {u.pk: u for u in staff.active_staff(to_assignee)}
        for user_id, ids in to_assignee.items():
            if user_id in users:
                recipients[users[user_id]] += ids
            else:
                unassigned += ids
        if unassigned:
            for user in staff.on_duty(Role.SENIOR_REVIEWER):
                recipients[user] += unassigned
        result.warned += len(rows)
        result.notified += len(staff.notify(Notification.Kind.SLA_WARNING, recipients, now))


def _cso_and_senior_on_duty() -> list:
    people = {u.pk: u for u in staff.staff_in_role(Role.CHILD_SAFETY_OFFICER)}
    people.update({u.pk: u for u in staff.on_duty(Role.SENIOR_REVIEWER)})
    return list(people.values())


def queue_emergency(cases) -> None:
    """A P0 case arrived: start the emergency protocol now, and sweep at its own warning and due
    times rather than up to a sweep interval later. Called after the intake has committed."""
    from django_q.models import Schedule
    from django_q.tasks import async_task, schedule

    async_task("cases.tasks.emergency_protocol")
    now = timezone.now()
    for case in cases:
        for at in [*warning_times(case.sla_started_at, case.due_at), case.due_at]:
            if at > now:
                schedule(
                    "cases.tasks.sla_sweep",
                    schedule_type=Schedule.ONCE,
                    next_run=at,
                    name=f"sla-p0-case-{case.pk}-{at:%Y%m%d%H%M%S}",
                )
