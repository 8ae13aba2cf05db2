"""The SLA engine: warnings, breaches, escalation and the P0 emergency protocol.

One sweep answers three questions from partial indexes over the open cases whose clock runs:
which P0 cases have not started the emergency protocol, which deadlines have passed, which
warning points have passed. Each is set-based: a few UPDATEs and INSERT ... SELECTs, however
many cases are concerned; no Python object per breached case.

Exactly once: each step's condition is a column the same statement or transaction changes
(emergency_notified_at, breached_at, sla_warnings_sent). Breaches are marked by one UPDATE whose
WHERE is the condition: a concurrent sweep's UPDATE waits for the row locks, re-checks and skips
them. Emergencies and warnings lock their rows FOR UPDATE SKIP LOCKED first. On SQLite, writers
are serialised (IMMEDIATE transactions) to the same effect.

After downtime, the first sweep records every missed breach with breached_at = due_at, the true
time, and skips the warnings of windows that have already run out: one catch-up pass is right,
so the schedule needs no replay (Q_CLUSTER catch_up is off).

The sweep is the system acting: its changes are CaseEvents on the timeline (actor "system")
rather than simple-history rows, which record what people change.
"""

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bakkme_safety.roles import Role
from core.bulk import update_rows
from staff import actions as staff
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


def _breach_returning_ids(now: datetime, which: str, also_set: str) -> list[int]:
    """Mark the running clocks past their deadline as breached at that deadline, in one
    UPDATE ... RETURNING id (PostgreSQL, and SQLite since 3.35).

    A concurrent sweep's UPDATE waits for these row locks, then re-checks the condition
    (breached_at IS NULL) and leaves them: each case is breached once.
    """
    table = Case._meta.db_table
    states = ", ".join(f"'{s}'" for s in OPEN_STATES)
    sql = (
        f"UPDATE {table} SET breached_at = due_at, updated_at = %s"
        + (f", {also_set}" if also_set else "")
        + f" WHERE state IN ({states}) AND first_action_at IS NULL AND breached_at IS NULL"
        f" AND due_at <= %s AND {which} RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now])
        return sorted(row[0] for row in cursor.fetchall())


def _insert_from_cases(model, columns: str, select: str, params: list, case_ids: list) -> None:
    """INSERT INTO <model> (columns) SELECT <select> FROM cases_case WHERE id IN (case_ids).

    Plain SQL that PostgreSQL and SQLite both run; `select` may hold %s placeholders, filled
    from `params`.
    """
    placeholders = ", ".join(["%s"] * len(case_ids))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({columns}) "
        f"SELECT {select} FROM {Case._meta.db_table} WHERE id IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *case_ids])


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
        # Not yet with a senior, the CSO or legal: it goes to the senior reviewers' queue.
        escalate = _breach_returning_ids(
            now,
            "escalated_to = ''",
            f"state = '{CaseState.ESCALATED}', escalated_to = '{Role.SENIOR_REVIEWER}'",
        )
        keep = _breach_returning_ids(now, "escalated_to <> ''", "")
        rows = escalate + keep
        if not rows:
            return
        # The breach records and timeline events are copied from the rows in the database
        # (INSERT ... SELECT): no Python object per case, however many broke at once.
        for chunk in _chunks(rows):
            _insert_from_cases(
                SlaBreach,
                "case_id, priority, sla_started_at, breached_at, detected_at, held_by_id",
                "id, priority, sla_started_at, due_at, %s, assignee_id",
                [now],
                chunk,
            )
            _insert_from_cases(
                CaseEvent,
                "case_id, type, actor_id, actor_name, payload, at",
                "id, %s, NULL, 'system', %s, due_at",
                [CaseEvent.Type.SLA_BREACHED, json.dumps({"detected_at": now.isoformat()})],
                chunk,
            )
        payload = {"to": Role.SENIOR_REVIEWER.value, "reason": "SLA breached"}
        for chunk in _chunks(escalate):
            _insert_from_cases(
                CaseEvent,
                "case_id, type, actor_id, actor_name, payload, at",
                "id, %s, NULL, 'system', %s, %s",
                [CaseEvent.Type.ESCALATED, json.dumps(payload), now],
                chunk,
            )
        recipients = dict.fromkeys(_cso_and_senior_on_duty(), rows)
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
        update_rows(updates, ["sla_warnings_sent", "sla_next_warning_at"])
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
    times rather than up to a sweep interval later. Called after the intake has committed.

    Idempotent: a further report on an open P0 case finds its schedules already there and adds
    only the missing ones (a window restarted by a more urgent report has new times).
    """
    from django_q.models import Schedule
    from django_q.tasks import async_task

    async_task("cases.tasks.emergency_protocol")
    now = timezone.now()
    wanted = {
        f"sla-p0-case-{case.pk}-{at:%Y%m%d%H%M%S}": at
        for case in cases
        for at in [*warning_times(case.sla_started_at, case.due_at), case.due_at]
        if at > now
    }
    existing = set(Schedule.objects.filter(name__in=wanted).values_list("name", flat=True))
    Schedule.objects.bulk_create(
        [
            Schedule(
                func="cases.tasks.sla_sweep",
                schedule_type=Schedule.ONCE,
                next_run=at,
                name=name,
            )
            for name, at in wanted.items()
            if name not in existing
        ]
    )
