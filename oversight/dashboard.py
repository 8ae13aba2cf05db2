"""The Child Safety Officer's SLA dashboard: every figure it shows, computed in SQL.

Who sees it: `cases.view_sla_dashboard` (the CSO and auditors, bakkme_safety/roles.py). The
figures cover the cases the viewer may see (`Case.visible_to`, the one rule); both roles see the
whole queue, so for them no filter is added.

Definitions (the page shows the same, DEFINITIONS below). Times are UTC (TIME_ZONE).

Now, at the moment the page is asked for:
- Open: state new, in review or escalated.
- SLA state of an open case: *breached* when breached_at is set, or due_at <= now without a
  first action; *warning* when not breached, without a first action, and
  now >= sla_started_at + f * (due_at - sla_started_at), f the first of
  BAKKME_SLA_WARNING_FRACTIONS; *on track* otherwise (a clock stopped in time by a first action
  is on track). Each case's own window is used: a case's window is not always its priority's
  (a more urgent report can raise the priority without moving the deadline).
- Age: now - sla_started_at, the platform's received_at of the report that started the SLA
  clock. Buckets: < 1 h, < 4 h, < 12 h, < 24 h, 24 h or more.
- Oldest open case per priority: the open case of that priority with the earliest
  sla_started_at (ties: the lower case number).
- Unassigned P0/P1: open P0 and P1 cases with no assignee.
- Reviewers on shift: active staff whose profile is on shift; load = the open cases assigned to
  them.
- Child-safety exposure, per person on shift: the time since the start of their shift with
  child-safety cases open (staff.exposure: their claims, and BAKKME_EXPOSURE_PREVIEW_MINUTES per
  stretch of evidence previews), overlapping time counted once; limit reached at
  BAKKME_EXPOSURE_LIMIT_MINUTES. A wellbeing figure: whether someone left CSAE duties is never
  shown.

Over the period (`from` and `to` dates, both included; default the last 30 days to today):
- SLA compliance per priority and per day: the cases whose deadline (due_at) falls in the period
  and has passed (due_at <= now). Compliant: first_action_at is set and <= due_at.
  Compliance = compliant / due. The day is due_at's date. It is the case's current window: a
  reopened case counts with its new window.
- Time to first action: first_action_at - sla_started_at of the cases whose first action falls in
  the period; per priority, the median and the 90th percentile, continuous (linear interpolation
  between the two nearest values, as PostgreSQL's percentile_cont).
- Breaches: the SlaBreach rows whose deadline (breached_at) falls in the period. How late: the
  first action - the deadline; while no first action has come, now - the deadline. The first
  action is the case's first_action_at while the case is still in the breached window, else (the
  case was decided and reopened since) the first decision or escalation by a person at or after
  the deadline. Held by: the assignee when the breach was recorded, else "unassigned".
- Reports by source, by category and by day: Report.created_at in the period.
- Decisions by violation: Decision.created_at in the period.
- Enforcement actions by type and status: EnforcementAction.created_at in the period.

Every aggregate is a GROUP BY in SQL (counts with FILTER, percentile_cont on PostgreSQL); Python
only adds up the few grouped rows (days x priorities) into totals. The page runs a fixed number of
queries, whatever the data's size.
"""

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, models
from django.db.models import (
    Aggregate,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate
from django.db.models.lookups import GreaterThanOrEqual
from django.urls import reverse
from django.utils import timezone

from bakkme_safety.policy import ActionType, Category, Priority, Source, Violation
from bakkme_safety.roles import Role
from cases.models import (
    OPEN_STATES,
    Case,
    CaseEvent,
    CaseState,
    Decision,
    EnforcementAction,
    SlaBreach,
)
from core.formatting import format_duration
from reports.models import Report
from staff import exposure
from staff.models import ExposureInterval, StaffProfile

DEFAULT_DAYS = 30
MAX_DAYS = 366
# Bounds that keep every date arithmetic of a period valid (date.max + 1 day overflows).
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(9998, 12, 31)
# The page lists this many rows of the long tables; their CSV exports have every row.
PAGE_BREACHES = 50
PAGE_UNASSIGNED = 25

URGENT = (Priority.P0, Priority.P1)
SLA_STATES = (("on_track", "On track"), ("warning", "Warning"), ("breached", "Breached"))
# (key, label, upper bound of the age); the last bucket has none.
AGE_BUCKETS = (
    ("lt_1h", "< 1 h", timedelta(hours=1)),
    ("lt_4h", "< 4 h", timedelta(hours=4)),
    ("lt_12h", "< 12 h", timedelta(hours=12)),
    ("lt_24h", "< 24 h", timedelta(hours=24)),
    ("ge_24h", "24 h or more", None),
)
PRIORITY_COLOURS = {0: "#c62828", 1: "#b26a00", 2: "#1565c0", 3: "#607d8b"}


def definitions() -> list[tuple[str, str]]:
    """The definitions as the page shows them (the module docstring says the same)."""
    fraction = min(settings.BAKKME_SLA_WARNING_FRACTIONS)
    return [
        ("Open", "State new, in review or escalated."),
        (
            "SLA state (now)",
            "Breached: breached_at is set, or the deadline has passed without a first action. "
            f"Warning: no first action yet and {fraction:.0%} or more of the case's SLA window "
            "has gone. On track: every other open case (a first action in time stops the clock).",
        ),
        (
            "Age",
            "Now minus the SLA clock start (when the platform received the report that started "
            "the clock).",
        ),
        ("Unassigned", "Open cases with no assignee."),
        ("Load", "Open cases assigned to a member of staff who is on shift."),
        (
            "Child-safety exposure",
            "Time with child-safety cases open since the start of the person's shift: their "
            "claims, and evidence previews (each stretch of viewing counts "
            f"{settings.BAKKME_EXPOSURE_PREVIEW_MINUTES} minutes), overlaps counted once. At "
            f"{format_duration(exposure.limit())} next case gives them no more child-safety "
            "cases. A wellbeing figure, not a performance one.",
        ),
        (
            "Period",
            "From and to are dates (UTC), both included; by default the last "
            f"{DEFAULT_DAYS} days to today.",
        ),
        (
            "SLA compliance",
            "Cases whose deadline fell in the period and has passed; compliant when the first "
            "action came at or before the deadline. By the day of the deadline.",
        ),
        (
            "Time to first action",
            "First action minus SLA clock start, for cases whose first action fell in the "
            "period: median and 90th percentile (linear interpolation).",
        ),
        (
            "Breaches",
            "Recorded SLA breaches whose deadline fell in the period. How late: first action "
            "minus deadline, or now minus deadline while there is none. Held by: the assignee "
            "when the breach was recorded.",
        ),
        (
            "Reports, decisions, actions",
            "Counted by the day they were stored in the back office, within the period.",
        ),
    ]


# --- Indexes ------------------------------------------------------------------------------------
# The indexes these figures are written for (cases/models.py and reports/models.py Meta.indexes):
# Case case_open_sla (open cases by SLA state) and case_first_action (time to first action);
# Report report_created_source; Decision decision_created; EnforcementAction action_created.
# Compliance by deadline reads the cases whose due_at falls in the period without an index of its
# own: one on due_at drew the queue's priority filter off its index. Measured at 1,000,000 reports
# in 200,000 cases: page median 274 ms (bench/RESULTS.md).
# SlaBreach's breaches use slabreach_at (breached_at); the load per person case_assignee_state.

# --- The period ---------------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


@dataclass(frozen=True)
class Period:
    """Whole days, both ends included, in the current time zone (UTC)."""

    first_day: date
    last_day: date

    @classmethod
    def last_days(cls, today: date, days: int = DEFAULT_DAYS) -> "Period":
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start(self) -> datetime:
        return _day_start(self.first_day)

    @property
    def end(self) -> datetime:
        """The first instant after the period (exclusive bound)."""
        return _day_start(self.last_day + timedelta(days=1))

    @property
    def days(self) -> list[date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=i) for i in range(count)]


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_day(raw: str, name: str, errors: list[str]) -> date | None:
    try:
        if _DATE.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    errors.append(f"“{name}” is not a date (YYYY-MM-DD): {raw[:20]!r}.")
    return None


def parse_period(params, today: date) -> tuple[Period, list[str]]:
    """The period asked for in `from` and `to` (YYYY-MM-DD), or the default with the errors.

    A missing `to` is today; a missing `from` gives the DEFAULT_DAYS days up to `to`. A wrong
    date, one outside EARLIEST_DAY..LATEST_DAY, `to` before `from` or a period longer than
    MAX_DAYS gives an error and the default period.
    """
    default = Period.last_days(today)
    raw_from = (params.get("from") or "").strip()
    raw_to = (params.get("to") or "").strip()
    if not raw_from and not raw_to:
        return default, []
    errors: list[str] = []
    last = _parse_day(raw_to, "to", errors) if raw_to else today
    first = _parse_day(raw_from, "from", errors) if raw_from else None
    if errors:
        return default, errors
    if any(d is not None and not EARLIEST_DAY <= d <= LATEST_DAY for d in (first, last)):
        return default, [f"Dates must lie between {EARLIEST_DAY} and {LATEST_DAY}."]
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        return default, [f"“to” ({last}) is before “from” ({first})."]
    if (last - first).days + 1 > MAX_DAYS:
        return default, [f"The period is longer than {MAX_DAYS} days."]
    return Period(first, last), []


# --- Who sees what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The cases the viewer may see (Case.visible_to), applied to rows that belong to a case."""

    cases: QuerySet

    @property
    def restricted(self) -> bool:
        # visible_to returns the unfiltered queryset to those who see every case: then the
        # figures need no IN (...) over the cases table.
        return bool(self.cases.query.where)

    def of(self, qs: QuerySet, path: str = "case") -> QuerySet:
        if not self.restricted:
            return qs
        return qs.filter(**{f"{path}__in": self.cases.values("pk")})


def scope_for(user) -> Scope:
    return Scope(Case.objects.visible_to(user))


# --- SQL building blocks ------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaConditions:
    breached: Q
    warning: Q

    def state(self) -> models.Case:
        """The SLA state of a case row, as an SQL CASE expression."""
        return models.Case(
            models.When(self.breached, then=Value("breached")),
            models.When(self.warning, then=Value("warning")),
            default=Value("on_track"),
            output_field=models.CharField(),
        )


def sla_conditions(now: datetime) -> SlaConditions:
    """The SLA state rules of an open case at `now`, as SQL conditions (see the docstring).

    The warning point is each row's own sla_started_at + f * (due_at - sla_started_at), written
    as "elapsed >= f * window": interval arithmetic on PostgreSQL, Django's duration functions on
    SQLite.
    """
    fraction = min(settings.BAKKME_SLA_WARNING_FRACTIONS)
    elapsed = ExpressionWrapper(
        Value(now, output_field=DateTimeField()) - F("sla_started_at"),
        output_field=DurationField(),
    )
    warn_after = ExpressionWrapper(
        (F("due_at") - F("sla_started_at")) * Value(float(fraction)),
        output_field=DurationField(),
    )
    breached = Q(breached_at__isnull=False) | Q(first_action_at__isnull=True, due_at__lte=now)
    warning = Q(breached_at__isnull=True, first_action_at__isnull=True, due_at__gt=now) & Q(
        GreaterThanOrEqual(elapsed, warn_after)
    )
    return SlaConditions(breached=breached, warning=warning)


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont, an ordered-set aggregate (linear interpolation)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction: float, **extra):
        fraction = float(fraction)
        if not 0 <= fraction <= 1:
            raise ValueError("A percentile is a fraction between 0 and 1.")
        # A float literal from code, never user input: safe to place in the SQL text.
        super().__init__(expression, fraction=repr(fraction), **extra)


def percentile_cont(ordered: list[timedelta], fraction: float) -> timedelta | None:
    """percentile_cont in Python, over values already in order."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _count_where(condition) -> Count:
    """Cases meeting a condition, counted in a GROUP BY.

    COUNT(*) and COUNT(priority) (never null) count the same rows; unlike COUNT(id), they let
    PostgreSQL answer from a covering index without reading the table ("Indexes" above). Django
    refuses COUNT(*) with a filter, hence the column.
    """
    return Count("priority", filter=condition)


def _open(scope: Scope) -> QuerySet:
    return scope.cases.filter(state__in=OPEN_STATES)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- The figures: now ---------------------------------------------------------------------------


def open_now(scope: Scope, now: datetime) -> dict[int, dict]:
    """Per priority: open cases, by SLA state and by age bucket, and how many nobody holds.

    One GROUP BY priority with a filtered count per figure.
    """
    sla = sla_conditions(now)
    counts = {
        "open": Count("*"),
        "breached": _count_where(sla.breached),
        "warning": _count_where(sla.warning),
        "unassigned": _count_where(Q(assignee__isnull=True)),
    }
    younger_than = None
    for key, _label, bound in AGE_BUCKETS:
        # age < bound  <=>  sla_started_at > now - bound; age >= previous bound likewise.
        condition = Q()
        if bound is not None:
            condition &= Q(sla_started_at__gt=now - bound)
        if younger_than is not None:
            condition &= Q(sla_started_at__lte=now - younger_than)
        counts[key] = _count_where(condition) if condition else Count("*")
        younger_than = bound
    keys = ["open", "on_track", "warning", "breached", "unassigned"] + [b[0] for b in AGE_BUCKETS]
    figures = {p: dict.fromkeys(keys, 0) for p in Priority.values}
    rows = _open(scope).values("priority").annotate(**counts).order_by("priority")
    for row in rows:
        figure = figures[row["priority"]]
        figure.update({k: row[k] for k in counts})
        figure["on_track"] = row["open"] - row["breached"] - row["warning"]
    return figures


_CASE_ROW = ("pk", "priority", "state", "sla_started_at", "due_at", "assignee__username")


def oldest_open(scope: Scope, now: datetime) -> dict[int, dict | None]:
    """Per priority, the open case waiting longest (earliest SLA clock start).

    One LIMIT 1 query per priority (four), each a short walk of the case_open_sla index ("Indexes").
    """
    sla = sla_conditions(now)
    oldest = {}
    for priority in Priority.values:
        row = (
            _open(scope)
            .filter(priority=priority)
            .annotate(sla_state=sla.state())
            .order_by("sla_started_at", "pk")
            .values(*_CASE_ROW, "sla_state")
            .first()
        )
        if row is not None:
            row["age"] = now - row["sla_started_at"]
        oldest[priority] = row
    return oldest


def unassigned_urgent(scope: Scope, now: datetime, limit: int | None = PAGE_UNASSIGNED):
    """Open P0 and P1 cases nobody holds, most urgent first (the count is in open_now)."""
    sla = sla_conditions(now)
    qs = (
        _open(scope)
        .filter(priority__in=URGENT, assignee__isnull=True)
        .annotate(sla_state=sla.state())
        .order_by("priority", "due_at", "pk")
        .values(*_CASE_ROW, "sla_state")
    )
    rows = list(qs[:limit] if limit else qs)
    for row in rows:
        row["age"] = now - row["sla_started_at"]
    return rows


def on_shift_load(scope: Scope) -> list[dict]:
    """Staff on shift and their load (open cases assigned to them), heaviest load first."""
    # A count per person from the (assignee, state) index, not a join over every case.
    load = (
        _open(scope)
        .filter(assignee=OuterRef("pk"))
        .order_by()
        .values("assignee")
        .annotate(n=Count("*"))
        .values("n")
    )
    User = get_user_model()
    rows = list(
        User.objects.filter(is_active=True, is_staff=True, staff_profile__on_shift=True)
        .annotate(load=Coalesce(Subquery(load), 0))
        .order_by("-load", "username")
        .values("pk", "username", "staff_profile__on_shift_since", "load")
    )
    roles = defaultdict(list)
    labels = dict(Role.choices)
    memberships = (
        User.groups.through.objects.filter(user_id__in=[r["pk"] for r in rows])
        .order_by("group__name")
        .values_list("user_id", "group__name")
    )
    for user_id, group in memberships:
        roles[user_id].append(labels.get(group, group))
    for row in rows:
        row["roles"] = ", ".join(roles[row["pk"]])
        row["on_shift_since"] = row.pop("staff_profile__on_shift_since")
    return rows


def exposure_on_shift(scope: Scope, now: datetime) -> list[dict]:
    """Child-safety exposure this shift of each person on shift, highest first.

    Two queries: the people on shift, and their exposure intervals since the earliest shift
    start (of the cases the viewer may see); the union of each one's intervals is added up in
    Python (staff.exposure).
    """
    people = list(
        StaffProfile.objects.filter(on_shift=True, user__is_active=True, user__is_staff=True)
        .order_by("user__username")
        .values("user_id", "user__username", "on_shift_since")
    )
    starts = {p["user_id"]: exposure.shift_start(p["on_shift_since"], now) for p in people}
    spent = exposure.exposure_since(starts, now, scope.of(ExposureInterval.objects.all()))
    rows = [
        {
            "pk": p["user_id"],
            "username": p["user__username"],
            "on_shift_since": p["on_shift_since"],
            "exposure": spent[p["user_id"]],
            "at_limit": "yes" if spent[p["user_id"]] >= exposure.limit() else "no",
        }
        for p in people
    ]
    return sorted(rows, key=lambda r: -r["exposure"])


# --- The figures: over the period ---------------------------------------------------------------


def compliance(scope: Scope, period: Period, now: datetime) -> dict:
    """SLA compliance per priority and per day (of the deadline), over the period.

    Returns {"by_priority": {p: {due, compliant, rate}}, "by_day": {day: {p: {...}}}}. One
    GROUP BY (day, priority); the per-priority figures add up its rows.
    """
    rows = (
        scope.cases.filter(due_at__gte=period.start, due_at__lt=period.end, due_at__lte=now)
        .annotate(day=TruncDate("due_at"))
        .values("day", "priority")
        .annotate(
            due=Count("*"),
            compliant=_count_where(
                Q(first_action_at__isnull=False, first_action_at__lte=F("due_at"))
            ),
        )
        .order_by("day", "priority")
    )

    def empty():
        return {p: {"due": 0, "compliant": 0, "rate": None} for p in Priority.values}

    by_priority = empty()
    by_day = {day: empty() for day in period.days}
    for row in rows:
        cell = by_day[row["day"]][row["priority"]]
        cell.update(due=row["due"], compliant=row["compliant"])
        total = by_priority[row["priority"]]
        total["due"] += row["due"]
        total["compliant"] += row["compliant"]
    for cell in [*by_priority.values(), *(c for d in by_day.values() for c in d.values())]:
        cell["rate"] = _rate(cell["compliant"], cell["due"])
    return {"by_priority": by_priority, "by_day": by_day}


def time_to_first_action(scope: Scope, period: Period) -> dict[int, dict]:
    """Per priority: {count, median, p90} of first_action_at - sla_started_at, over the cases
    whose first action fell in the period.

    The one vendor branch of the dashboard: PostgreSQL computes the percentiles in SQL
    (percentile_cont); SQLite has no percentile aggregate, so the database returns the durations
    and Python interpolates them the same way.
    """
    qs = scope.cases.filter(first_action_at__gte=period.start, first_action_at__lt=period.end)
    duration = ExpressionWrapper(
        F("first_action_at") - F("sla_started_at"), output_field=DurationField()
    )
    figures = {p: {"count": 0, "median": None, "p90": None} for p in Priority.values}
    if connections[qs.db].vendor == "postgresql":
        rows = (
            qs.values("priority")
            .annotate(
                count=Count("*"),
                median=PercentileCont(duration, 0.5, output_field=DurationField()),
                p90=PercentileCont(duration, 0.9, output_field=DurationField()),
            )
            .order_by("priority")
        )
        for row in rows:
            figures[row["priority"]].update(
                count=row["count"], median=row["median"], p90=row["p90"]
            )
        return figures
    # SQLite: the embedded default, for small installations.
    durations = defaultdict(list)
    for priority, value in qs.annotate(duration=duration).values_list("priority", "duration"):
        durations[priority].append(value)
    for priority, values in durations.items():
        values.sort()
        figures[priority].update(
            count=len(values),
            median=percentile_cont(values, 0.5),
            p90=percentile_cont(values, 0.9),
        )
    return figures


def _breaches_in(scope: Scope, period: Period) -> QuerySet:
    return scope.of(
        SlaBreach.objects.filter(breached_at__gte=period.start, breached_at__lt=period.end)
    )


def breaches(scope: Scope, period: Period, now: datetime, limit: int | None = PAGE_BREACHES):
    """The breaches whose deadline fell in the period, latest first, with how late and who
    held the case (see the docstring for the first action of a reopened case)."""
    person_acted = (
        CaseEvent.objects.filter(
            case=OuterRef("case_id"),
            type__in=[CaseEvent.Type.DECIDED, CaseEvent.Type.ESCALATED],
            at__gte=OuterRef("breached_at"),
        )
        .exclude(actor__isnull=True, actor_name="system")
        .order_by("at", "pk")
        .values("at")[:1]
    )
    answered_at = models.Case(
        # Still the breached window: the case's own clock says when it was answered.
        models.When(case__breached_at=F("breached_at"), then=F("case__first_action_at")),
        default=Subquery(person_acted),
        output_field=DateTimeField(),
    )
    qs = (
        _breaches_in(scope, period)
        .annotate(answered_at=answered_at)
        .order_by("-breached_at", "-pk")
        .values(
            "pk",
            "case_id",
            "priority",
            "sla_started_at",
            "breached_at",
            "detected_at",
            "answered_at",
            "held_by__username",
        )
    )
    rows = []
    for row in qs[:limit] if limit else qs.iterator(chunk_size=2000):
        row["late"] = (row["answered_at"] or now) - row["breached_at"]
        row["held_by"] = row.pop("held_by__username") or "unassigned"
        rows.append(row)
    return rows


def breaches_by_day(scope: Scope, period: Period) -> dict[date, dict[int, int]]:
    """Breaches per day of the deadline and priority (one GROUP BY)."""
    by_day = {day: dict.fromkeys(Priority.values, 0) for day in period.days}
    rows = (
        _breaches_in(scope, period)
        .annotate(day=TruncDate("breached_at"))
        .values("day", "priority")
        .annotate(n=Count("*"))
        .order_by()
    )
    for row in rows:
        by_day[row["day"]][row["priority"]] = row["n"]
    return by_day


def reports_received(scope: Scope, period: Period) -> dict:
    """Reports stored in the period: {"by_source", "by_category", "by_day", "total"}.

    One GROUP BY (day, source, category) over the period's reports: a single pass over the
    largest table; the three breakdowns add up its (at most days x 7 x 12) rows.
    """
    rows = (
        scope.of(Report.objects.filter(created_at__gte=period.start, created_at__lt=period.end))
        .annotate(day=TruncDate("created_at"))
        .values("day", "source", "category")
        .annotate(n=Count("*"))
        .order_by()
    )
    by_source = dict.fromkeys(Source.values, 0)
    by_category = dict.fromkeys(Category.values, 0)
    by_day = dict.fromkeys(period.days, 0)
    for row in rows:
        by_source[row["source"]] = by_source.get(row["source"], 0) + row["n"]
        by_category[row["category"]] = by_category.get(row["category"], 0) + row["n"]
        by_day[row["day"]] += row["n"]
    return {
        "by_source": by_source,
        "by_category": by_category,
        "by_day": by_day,
        "total": sum(by_day.values()),
    }


def decisions_by_violation(scope: Scope, period: Period) -> dict[str, int]:
    rows = (
        scope.of(Decision.objects.filter(created_at__gte=period.start, created_at__lt=period.end))
        .values("violation")
        .annotate(n=Count("*"))
        .order_by()
    )
    figures = dict.fromkeys(Violation.values, 0)
    figures.update({row["violation"]: row["n"] for row in rows})
    return figures


def actions_by_type_and_status(scope: Scope, period: Period) -> dict[str, dict[str, int]]:
    rows = (
        scope.of(
            EnforcementAction.objects.filter(
                created_at__gte=period.start, created_at__lt=period.end
            )
        )
        .values("type", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    figures = {t: dict.fromkeys(EnforcementAction.Status.values, 0) for t in ActionType.values}
    for row in rows:
        figures.setdefault(row["type"], dict.fromkeys(EnforcementAction.Status.values, 0))
        figures[row["type"]][row["status"]] = row["n"]
    return figures


# --- Tables: what the page shows and each CSV export holds ---------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    # text, int, rate, duration, datetime, date or case (a case number linking to the case)
    kind: str = "text"

    @property
    def csv_key(self) -> str:
        return f"{self.key}_seconds" if self.kind == "duration" else self.key

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "rate", "duration")


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict]
    note: str = ""
    chart: dict | None = None  # drawn by the page's script from the same figures

    def csv_header(self) -> list[str]:
        return [c.csv_key for c in self.columns]

    def csv_rows(self) -> Iterator[list]:
        for row in self.rows:
            yield [_csv_value(row.get(c.key), c.kind) for c in self.columns]

    def cells(self) -> list[list[dict]]:
        """The rows as the page shows them: text, an optional link, alignment."""
        return [
            [
                {
                    "text": _display(row.get(c.key), c.kind),
                    "href": _case_url(row.get(c.key)) if c.kind == "case" else "",
                    "numeric": c.numeric,
                }
                for c in self.columns
            ]
            for row in self.rows
        ]


def _case_url(case_id) -> str:
    return reverse("admin:cases_case_change", args=[case_id]) if case_id else ""


def _display(value, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "duration":
        return format_duration(value)
    if kind == "datetime":
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if kind == "date":
        return value.isoformat()
    if kind == "case":
        return f"#{value}"
    return str(value)


def _csv_value(value, kind: str):
    if value is None:
        return ""
    if kind == "rate":
        return f"{value:.4f}"
    if kind == "duration":
        return f"{value.total_seconds():.0f}"
    if kind in ("datetime", "date"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # never a spreadsheet formula
    return value


def _priority_label(priority: int) -> str:
    return Priority(priority).label


@dataclass
class Context:
    scope: Scope
    period: Period
    now: datetime
    full: bool = False  # an export: every row, not the page's first ones


def _now_tables(ctx: Context) -> list[Table]:
    figures = open_now(ctx.scope, ctx.now)
    total = {k: sum(f[k] for f in figures.values()) for k in next(iter(figures.values()))}
    state_rows = [{"priority": _priority_label(p), **f} for p, f in figures.items()]
    state_rows.append({"priority": "All", **total})
    by_state = Table(
        "open_by_sla_state",
        "Open cases by priority and SLA state",
        [
            Column("priority", "Priority"),
            Column("open", "Open", "int"),
            Column("on_track", "On track", "int"),
            Column("warning", "Warning", "int"),
            Column("breached", "Breached", "int"),
            Column("unassigned", "Unassigned", "int"),
        ],
        state_rows,
    )
    ages = Table(
        "age_buckets",
        "Open cases by age",
        [
            Column("priority", "Priority"),
            *(Column(key, label, "int") for key, label, _b in AGE_BUCKETS),
            Column("open", "Open", "int"),
        ],
        state_rows,
    )
    return [by_state, ages]


def _case_columns() -> list[Column]:
    return [
        Column("pk", "Case", "case"),
        Column("priority_label", "Priority"),
        Column("age", "Age", "duration"),
        Column("sla_started_at", "SLA clock start", "datetime"),
        Column("due_at", "Deadline", "datetime"),
        Column("sla_state_label", "SLA state"),
        Column("state_label", "State"),
    ]


def _labelled(row: dict | None, priority: int) -> dict:
    """A case row with the labels the page and the CSV show."""
    row = dict(row or {})
    row["priority_label"] = _priority_label(priority)
    if row.get("state"):
        row["state_label"] = CaseState(row["state"]).label
        row["sla_state_label"] = dict(SLA_STATES)[row["sla_state"]]
    return row


def _oldest_tables(ctx: Context) -> list[Table]:
    rows = [_labelled(row, p) for p, row in oldest_open(ctx.scope, ctx.now).items()]
    return [
        Table(
            "oldest_open",
            "Oldest open case per priority",
            [*_case_columns(), Column("assignee__username", "Assignee")],
            rows,
        )
    ]


def _unassigned_tables(ctx: Context) -> list[Table]:
    limit = None if ctx.full else PAGE_UNASSIGNED
    rows = [_labelled(row, row["priority"]) for row in unassigned_urgent(ctx.scope, ctx.now, limit)]
    note = ""
    if limit and len(rows) == limit:
        note = f"The {limit} most urgent; the counts are in the first table, the CSV lists all."
    return [
        Table("unassigned_p0_p1", "Unassigned P0 and P1 cases", _case_columns(), rows, note=note)
    ]


def _on_shift_tables(ctx: Context) -> list[Table]:
    return [
        Table(
            "on_shift",
            "Staff on shift and their load",
            [
                Column("username", "Username"),
                Column("roles", "Roles"),
                Column("on_shift_since", "On shift since", "datetime"),
                Column("load", "Open cases assigned", "int"),
            ],
            on_shift_load(ctx.scope),
        )
    ]


def _exposure_tables(ctx: Context) -> list[Table]:
    return [
        Table(
            "exposure",
            "Child-safety exposure this shift",
            [
                Column("username", "Username"),
                Column("on_shift_since", "On shift since", "datetime"),
                Column("exposure", "Exposure", "duration"),
                Column("at_limit", "Limit reached"),
            ],
            exposure_on_shift(ctx.scope, ctx.now),
            note=f"Limit: {format_duration(exposure.limit())} a shift.",
        )
    ]


def _priority_series(days: list[date], values: Callable[[date, int], object]) -> list[dict]:
    return [
        {
            "label": _priority_label(p),
            "colour": PRIORITY_COLOURS[p],
            "data": [values(day, p) for day in days],
        }
        for p in Priority.values
    ]


def _compliance_tables(ctx: Context) -> list[Table]:
    figures = compliance(ctx.scope, ctx.period, ctx.now)
    by_priority = figures["by_priority"]
    due = sum(f["due"] for f in by_priority.values())
    compliant = sum(f["compliant"] for f in by_priority.values())
    rows = [
        {"priority": _priority_label(p), **f, "missed": f["due"] - f["compliant"]}
        for p, f in by_priority.items()
    ]
    rows.append(
        {
            "priority": "All",
            "due": due,
            "compliant": compliant,
            "missed": due - compliant,
            "rate": _rate(compliant, due),
        }
    )
    per_priority = Table(
        "compliance",
        "SLA compliance per priority",
        [
            Column("priority", "Priority"),
            Column("due", "Deadlines passed", "int"),
            Column("compliant", "Met", "int"),
            Column("missed", "Missed", "int"),
            Column("rate", "Compliance", "rate"),
        ],
        rows,
    )
    day_columns = [Column("day", "Day", "date")]
    for p in Priority.values:
        label = _priority_label(p)
        day_columns += [
            Column(f"p{p}_due", f"{label} due", "int"),
            Column(f"p{p}_rate", f"{label} compliance", "rate"),
        ]
    day_rows = []
    for day, cells in figures["by_day"].items():
        row = {"day": day}
        for p, cell in cells.items():
            row[f"p{p}_due"] = cell["due"]
            row[f"p{p}_rate"] = cell["rate"]
        day_rows.append(row)
    by_day = Table(
        "compliance_by_day",
        "SLA compliance per day",
        day_columns,
        day_rows,
        chart={
            "type": "line",
            "percent": True,
            "labels": [d.isoformat() for d in ctx.period.days],
            "datasets": _priority_series(
                ctx.period.days,
                lambda day, p: _round(figures["by_day"][day][p]["rate"]),
            ),
        },
    )
    return [per_priority, by_day]


def _round(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def _time_to_first_action_tables(ctx: Context) -> list[Table]:
    rows = [
        {"priority": _priority_label(p), **f}
        for p, f in time_to_first_action(ctx.scope, ctx.period).items()
    ]
    return [
        Table(
            "time_to_first_action",
            "Time to first action",
            [
                Column("priority", "Priority"),
                Column("count", "Cases", "int"),
                Column("median", "Median", "duration"),
                Column("p90", "90th percentile", "duration"),
            ],
            rows,
        )
    ]


def _breach_tables(ctx: Context) -> list[Table]:
    per_day = breaches_by_day(ctx.scope, ctx.period)
    total = sum(sum(v.values()) for v in per_day.values())
    limit = None if ctx.full else PAGE_BREACHES
    rows = breaches(ctx.scope, ctx.period, ctx.now, limit)
    for row in rows:
        row["priority_label"] = _priority_label(row["priority"])
    note = f"{total} in the period."
    if limit and total > limit:
        note = f"The latest {limit} of {total}; the CSV has all."
    listing = Table(
        "breaches",
        "SLA breaches",
        [
            Column("case_id", "Case", "case"),
            Column("priority_label", "Priority"),
            Column("breached_at", "Deadline", "datetime"),
            Column("answered_at", "First action", "datetime"),
            Column("late", "How late", "duration"),
            Column("held_by", "Held by"),
            Column("detected_at", "Recorded", "datetime"),
        ],
        rows,
        note=note,
    )
    day_rows = [
        {"day": day, **{f"p{p}": n for p, n in counts.items()}, "total": sum(counts.values())}
        for day, counts in per_day.items()
    ]
    by_day = Table(
        "breaches_by_day",
        "SLA breaches per day",
        [
            Column("day", "Day", "date"),
            *(Column(f"p{p}", _priority_label(p), "int") for p in Priority.values),
            Column("total", "All", "int"),
        ],
        day_rows,
        chart={
            "type": "bar",
            "stacked": True,
            "labels": [d.isoformat() for d in ctx.period.days],
            "datasets": _priority_series(ctx.period.days, lambda day, p: per_day[day][p]),
        },
    )
    return [listing, by_day]


def _count_table(name, title, label, choices, counts: dict, kind_label="Count") -> Table:
    labels = dict(choices)
    rows = [{"code": code, "label": labels.get(code, code), "n": n} for code, n in counts.items()]
    rows.append({"code": "", "label": "All", "n": sum(counts.values())})
    return Table(
        name,
        title,
        [Column("label", label), Column("code", "Code"), Column("n", kind_label, "int")],
        rows,
    )


def _report_tables(ctx: Context) -> list[Table]:
    figures = reports_received(ctx.scope, ctx.period)
    by_day = Table(
        "reports_by_day",
        "Reports per day",
        [Column("day", "Day", "date"), Column("n", "Reports", "int")],
        [{"day": day, "n": n} for day, n in figures["by_day"].items()],
        chart={
            "type": "bar",
            "labels": [d.isoformat() for d in ctx.period.days],
            "datasets": [
                {"label": "Reports", "colour": "#417690", "data": list(figures["by_day"].values())}
            ],
        },
    )
    return [
        _count_table(
            "reports_by_source",
            "Reports by source",
            "Source",
            Source.choices,
            figures["by_source"],
            "Reports",
        ),
        _count_table(
            "reports_by_category",
            "Reports by category",
            "Category",
            Category.choices,
            figures["by_category"],
            "Reports",
        ),
        by_day,
    ]


def _decision_tables(ctx: Context) -> list[Table]:
    return [
        _count_table(
            "decisions",
            "Decisions by violation",
            "Violation",
            Violation.choices,
            decisions_by_violation(ctx.scope, ctx.period),
            "Decisions",
        )
    ]


def _action_tables(ctx: Context) -> list[Table]:
    figures = actions_by_type_and_status(ctx.scope, ctx.period)
    labels = dict(ActionType.choices)
    statuses = EnforcementAction.Status
    rows = [
        {"label": labels.get(t, t), "code": t, **counts, "total": sum(counts.values())}
        for t, counts in figures.items()
    ]
    rows.append(
        {
            "label": "All",
            "code": "",
            **{s: sum(c[s] for c in figures.values()) for s in statuses.values},
            "total": sum(sum(c.values()) for c in figures.values()),
        }
    )
    return [
        Table(
            "actions",
            "Enforcement actions by type and status",
            [
                Column("label", "Action"),
                Column("code", "Code"),
                *(Column(value, label, "int") for value, label in statuses.choices),
                Column("total", "All", "int"),
            ],
            rows,
        )
    ]


@dataclass
class Section:
    title: str
    builders: list[Callable[[Context], list[Table]]]
    tables: list[Table] = field(default_factory=list)


def _sections() -> list[Section]:
    return [
        Section(
            "Now",
            [_now_tables, _oldest_tables, _unassigned_tables, _on_shift_tables, _exposure_tables],
        ),
        Section(
            "Over the period",
            [
                _compliance_tables,
                _time_to_first_action_tables,
                _breach_tables,
                _report_tables,
                _decision_tables,
                _action_tables,
            ],
        ),
    ]


# The table names each builder makes, for the CSV export of one table.
TABLE_BUILDERS: dict[str, Callable[[Context], list[Table]]] = {
    "open_by_sla_state": _now_tables,
    "age_buckets": _now_tables,
    "oldest_open": _oldest_tables,
    "unassigned_p0_p1": _unassigned_tables,
    "on_shift": _on_shift_tables,
    "exposure": _exposure_tables,
    "compliance": _compliance_tables,
    "compliance_by_day": _compliance_tables,
    "time_to_first_action": _time_to_first_action_tables,
    "breaches": _breach_tables,
    "breaches_by_day": _breach_tables,
    "reports_by_source": _report_tables,
    "reports_by_category": _report_tables,
    "reports_by_day": _report_tables,
    "decisions": _decision_tables,
    "actions": _action_tables,
}


def dashboard(user, period: Period, now: datetime) -> list[Section]:
    """Every table of the page, by section."""
    ctx = Context(scope_for(user), period, now)
    sections = _sections()
    for section in sections:
        for build in section.builders:
            section.tables += build(ctx)
    return sections


def export_table(name: str, user, period: Period, now: datetime) -> Table | None:
    """One table with every row, for its CSV export; None for an unknown name."""
    build = TABLE_BUILDERS.get(name)
    if build is None:
        return None
    ctx = Context(scope_for(user), period, now, full=True)
    return next(t for t in build(ctx) if t.name == name)


def charts(sections: Iterable[Section]) -> list[dict]:
    """The chart specifications of the page's tables (drawn by static/oversight/dashboard/...)."""
    return [
        {"name": t.name, "title": t.title, **t.chart} for s in sections for t in s.tables if t.chart
    ]
