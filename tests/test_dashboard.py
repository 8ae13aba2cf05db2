"""The CSO's SLA dashboard: its figures equal figures computed here from the raw rows.

The data set is built through the real intake (make_report), then each row's times are set with
QuerySet.update(); the clock is frozen at NOW. Every expected figure is computed in this file
from the rows, in plain Python, independently of oversight/dashboard.py.
"""

import csv
import io
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.views import serve
from django.db import connection
from django.templatetags.static import static
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bakkme_safety import policy
from cases.models import Case, CaseEvent, Decision, EnforcementAction, SlaBreach
from oversight import dashboard
from reports.models import Report
from staff.models import StaffProfile

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
URL = "/admin/dashboard/"
OPEN = ("new", "in_review", "escalated")
H = timedelta(hours=1)
M = timedelta(minutes=1)
CATEGORY = {0: "imminent_danger", 1: "grooming", 2: "underage_user", 3: "other"}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def day_at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def make_case(integration, priority, *, started, due=None, source="in_app", **fields) -> Case:
    """A case through the intake, then its SLA times (and anything else) set on the row."""
    report = make_report(
        integration,
        category=CATEGORY[priority],
        source=source,
        received_at=(NOW - 5 * M).isoformat(),
    )
    due = due or started + policy.sla_window(priority)
    Case.objects.filter(pk=report.case_id).update(
        sla_started_at=started, due_at=due, **{"state": "new", **fields}
    )
    return Case.objects.get(pk=report.case_id)


@pytest.fixture
def data(clock, integration, reviewer, senior, cso):
    """Open cases in every SLA state and age bucket, and a month of closed work."""
    c = {}
    # --- Open P0: on track, warning, the exact warning point (warning), breached.
    c["a"] = make_case(integration, 0, started=NOW - 10 * M)
    c["b"] = make_case(integration, 0, started=NOW - 40 * M, assignee=reviewer)
    c["c"] = make_case(integration, 0, started=NOW - 2 * H, breached_at=NOW - H, state="escalated")
    c["d"] = make_case(integration, 0, started=NOW - 30 * M)
    # --- Open P1.
    c["e"] = make_case(integration, 1, started=NOW - 13 * H, assignee=reviewer)
    c["f"] = make_case(integration, 1, started=NOW - 3 * H, source="email")
    # Past its deadline, not yet seen by the sweep: breached, though breached_at is empty.
    c["g"] = make_case(integration, 1, started=NOW - 30 * H)
    # Clock stopped by a first action: on track however old.
    c["h"] = make_case(
        integration,
        1,
        started=NOW - 20 * H,
        first_action_at=NOW - 19 * H,
        state="escalated",
        assignee=senior,
    )
    # A 6-hour window on a P1 case (a more urgent report set the deadline): warning at 3 h.
    c["i"] = make_case(integration, 1, started=NOW - 5 * H, due=NOW + H, source="automated")
    # Exactly one hour old: the "< 4 h" bucket.
    c["j"] = make_case(integration, 1, started=NOW - H, assignee=reviewer, state="in_review")
    # --- Open P2, P3.
    c["k"] = make_case(
        integration, 2, started=NOW - 50 * H, breached_at=NOW - 2 * H, assignee=senior
    )
    c["l"] = make_case(integration, 2, started=NOW - H, assignee=reviewer, state="in_review")
    c["m"] = make_case(integration, 3, started=NOW - 40 * H, assignee=senior)

    # --- Decided and closed work over the month (default period: 2026-10-22 .. 2026-11-20).
    done = {"state": "decided"}
    c["n"] = make_case(
        integration, 1, started=day_at(9, 12), first_action_at=day_at(10, 10), **done
    )
    c["o"] = make_case(
        integration,
        1,
        started=day_at(9, 15),
        first_action_at=day_at(10, 18),
        breached_at=day_at(10, 15),
        **done,
    )
    c["p"] = make_case(
        integration, 0, started=day_at(5, 8), first_action_at=day_at(5, 8, 20), state="closed"
    )
    c["q"] = make_case(
        integration,
        0,
        started=day_at(5, 10),
        first_action_at=day_at(5, 11, 45),
        breached_at=day_at(5, 11),
        **done,
    )
    # Deadline the day before the period; first action in it.
    c["r"] = make_case(
        integration,
        2,
        started=day_at(19, 23, month=10),
        first_action_at=day_at(22, 1, month=10),
        breached_at=day_at(21, 23, month=10),
        **done,
    )
    # Deadline on the period's first instant; first action before the period.
    c["s"] = make_case(
        integration,
        3,
        started=day_at(19, 0, month=10),
        first_action_at=day_at(21, 0, month=10),
        **done,
    )
    c["u"] = make_case(
        integration, 1, started=day_at(15), first_action_at=day_at(15, 6), assignee=senior, **done
    )
    c["v"] = make_case(integration, 1, started=day_at(1), first_action_at=day_at(1, 12, 30), **done)
    # Reopened: breached in an earlier window, decided, now open again with a fresh window.
    c["t"] = make_case(integration, 1, started=NOW - 2 * H)

    # --- Breach records (the sweep writes these; g's is not written yet).
    def breach(case, held_by=None):
        return SlaBreach.objects.create(
            case=case,
            priority=case.priority,
            sla_started_at=case.sla_started_at,
            breached_at=case.breached_at,
            detected_at=case.breached_at + M,
            held_by=held_by,
        )

    breach(c["c"])
    breach(c["k"], held_by=senior)
    breach(c["o"], held_by=reviewer)
    breach(c["q"])
    breach(c["r"], held_by=reviewer)  # deadline before the period
    SlaBreach.objects.create(
        case=c["t"],
        priority=1,
        sla_started_at=day_at(11, 6),
        breached_at=day_at(12, 6),
        detected_at=day_at(12, 6, 1),
        held_by=reviewer,
    )
    # The old window's first action is the first decision by a person after the deadline; the
    # sweep's own escalation (actor "system") does not count.
    CaseEvent.objects.create(
        case=c["t"], type="escalated", actor=None, actor_name="system", at=day_at(12, 6, 1)
    )
    CaseEvent.objects.create(
        case=c["t"], type="decided", actor=senior, actor_name=senior.username, at=day_at(12, 9, 30)
    )

    # --- Reports: spread over days, one on each side of the period's edges.
    report_days = {
        "a": day_at(20, 11),
        "b": day_at(20, 11, 30),
        "c": day_at(20, 10),
        "e": day_at(19, 23),
        "f": day_at(20, 9),
        "g": day_at(19, 6),
        "i": day_at(20, 7),
        "n": day_at(9, 12),
        "o": day_at(9, 15),
        "p": day_at(5, 8),
        "q": day_at(5, 10),
        "r": day_at(21, 23, 59, month=10),  # just before the period
        "s": day_at(22, 0, 0, month=10),  # the period's first instant
        "v": day_at(1),
    }
    for key, at in report_days.items():
        Report.objects.filter(case=c[key]).update(created_at=at)

    # --- Decisions and enforcement actions.
    def decision(case, violation, at):
        d = Decision.objects.create(
            case=case, violation=violation, rationale="test", decided_by=senior
        )
        Decision.objects.filter(pk=d.pk).update(created_at=at)
        return d

    def action(case, type_, status, at):
        a = EnforcementAction.objects.create(case=case, type=type_, status=status)
        EnforcementAction.objects.filter(pk=a.pk).update(created_at=at)

    decision(c["n"], "grooming", day_at(10, 10))
    decision(c["o"], "grooming", day_at(10, 18))
    decision(c["q"], "csam_distribution", day_at(5, 11, 45))
    decision(c["p"], "no_violation", day_at(5, 8, 20))
    decision(c["r"], "underage_user", day_at(22, 1, month=10))
    decision(c["s"], "no_violation", day_at(21, month=10))  # before the period
    action(c["n"], "remove_content", "done", day_at(10, 10))
    action(c["n"], "permanent_ban", "sent", day_at(10, 10))
    action(c["o"], "remove_content", "failed", day_at(10, 18))
    action(c["q"], "ncmec_report", "pending", day_at(5, 11, 45))
    action(c["q"], "remove_content", "done", day_at(5, 11, 45))
    action(c["r"], "suspend_account", "done", day_at(21, month=10))  # before the period

    # --- Shifts: the reviewer and the senior are on shift, the CSO is not.
    for user, on in ((reviewer, True), (senior, True), (cso, False)):
        StaffProfile.objects.update_or_create(
            user=user, defaults={"on_shift": on, "on_shift_since": NOW - 3 * H if on else None}
        )
    return c


# --- Expected figures, from the raw rows ---------------------------------------------------------


def fraction(settings):
    return min(settings.BAKKME_SLA_WARNING_FRACTIONS)


def sla_state(c: dict, now, f) -> str:
    if c["breached_at"] is not None or (c["first_action_at"] is None and c["due_at"] <= now):
        return "breached"
    warning_at = c["sla_started_at"] + (c["due_at"] - c["sla_started_at"]) * f
    if c["first_action_at"] is None and now >= warning_at:
        return "warning"
    return "on_track"


def age_bucket(age: timedelta) -> str:
    for key, hours in (("lt_1h", 1), ("lt_4h", 4), ("lt_12h", 12), ("lt_24h", 24)):
        if age < timedelta(hours=hours):
            return key
    return "ge_24h"


def open_rows():
    return list(Case.objects.filter(state__in=OPEN).values())


def expected_open(now, f) -> dict:
    figures = {
        p: Counter(dict.fromkeys(("open", "on_track", "warning", "breached", "unassigned"), 0))
        for p in range(4)
    }
    for c in open_rows():
        fig = figures[c["priority"]]
        fig["open"] += 1
        fig[sla_state(c, now, f)] += 1
        fig[age_bucket(now - c["sla_started_at"])] += 1
        fig["unassigned"] += c["assignee_id"] is None
    buckets = ("lt_1h", "lt_4h", "lt_12h", "lt_24h", "ge_24h")
    return {p: {**dict.fromkeys(buckets, 0), **fig} for p, fig in figures.items()}


def percentile(values: list[timedelta], q: float) -> timedelta | None:
    """Linear interpolation (the 'inclusive' method of the statistics module)."""
    if not values:
        return None
    seconds = [v.total_seconds() for v in values]
    if len(seconds) == 1:
        return values[0]
    if q == 0.5:
        return timedelta(seconds=statistics.median(seconds))
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return timedelta(seconds=cuts[round(q * 100) - 1])


def close(a: timedelta | None, b: timedelta | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < timedelta(milliseconds=1)


def in_period(at, start, end) -> bool:
    return start <= at < end


def period_bounds(first: date, last: date):
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return start, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


DEFAULT_FIRST = TODAY - timedelta(days=29)


def expected_breaches(start, end, now):
    rows = []
    for b in SlaBreach.objects.filter().select_related("case", "held_by"):
        if not in_period(b.breached_at, start, end):
            continue
        if b.case.breached_at == b.breached_at:
            answered = b.case.first_action_at
        else:
            answered = min(
                (
                    e.at
                    for e in CaseEvent.objects.filter(
                        case=b.case, type__in=["decided", "escalated"]
                    )
                    if e.at >= b.breached_at
                    and not (e.actor_id is None and e.actor_name == "system")
                ),
                default=None,
            )
        rows.append(
            {
                "case_id": b.case_id,
                "priority": b.priority,
                "breached_at": b.breached_at,
                "answered_at": answered,
                "late": (answered or now) - b.breached_at,
                "held_by": b.held_by.username if b.held_by else "unassigned",
            }
        )
    rows.sort(key=lambda r: r["breached_at"], reverse=True)
    return rows


# --- The figures ---------------------------------------------------------------------------------


def scope(user):
    return dashboard.scope_for(user)


def test_open_cases_by_priority_sla_state_and_age_equal_the_raw_rows(settings, data, cso):
    f = fraction(settings)
    figures = dashboard.open_now(scope(cso), NOW)
    assert figures == expected_open(NOW, f)
    # The data set was built for these (a sanity check of the expectation itself).
    assert {k: figures[0][k] for k in ("on_track", "warning", "breached")} == {
        "on_track": 1,
        "warning": 2,  # b, and d exactly at the warning point
        "breached": 1,
    }
    assert (figures[1]["warning"], figures[1]["breached"]) == (2, 1)  # e, i (own window); g
    assert figures[1]["lt_4h"] == 3  # f, j (exactly 1 h), t


def test_oldest_open_case_per_priority(data, cso):
    oldest = dashboard.oldest_open(scope(cso), NOW)
    expected = {}
    for p in range(4):
        rows = sorted(
            (c for c in open_rows() if c["priority"] == p),
            key=lambda c: (c["sla_started_at"], c["id"]),
        )
        expected[p] = rows[0]["id"] if rows else None
    assert {p: (row or {}).get("pk") for p, row in oldest.items()} == expected
    assert oldest[1]["pk"] == data["g"].pk and oldest[1]["age"] == 30 * H
    assert oldest[1]["sla_state"] == "breached"


def test_unassigned_p0_p1(settings, data, cso):
    rows = dashboard.unassigned_urgent(scope(cso), NOW)
    expected = sorted(
        (c for c in open_rows() if c["priority"] in (0, 1) and c["assignee_id"] is None),
        key=lambda c: (c["priority"], c["due_at"], c["id"]),
    )
    assert [r["pk"] for r in rows] == [c["id"] for c in expected]
    f = fraction(settings)
    assert [r["sla_state"] for r in rows] == [sla_state(c, NOW, f) for c in expected]
    assert {data[k].pk for k in "acdfgit"} == {r["pk"] for r in rows}


def test_staff_on_shift_and_their_load(data, cso, reviewer, senior):
    rows = dashboard.on_shift_load(scope(cso))
    load = Counter(c["assignee_id"] for c in open_rows() if c["assignee_id"])
    on_shift = StaffProfile.objects.filter(on_shift=True).values_list("user_id", flat=True)
    assert {r["pk"]: r["load"] for r in rows} == {u: load[u] for u in on_shift}
    assert [(r["username"], r["load"]) for r in rows] == [("rita", 4), ("sam", 3)]
    assert rows[0]["roles"] == "Reviewer"


def test_compliance_per_priority_and_day(data, cso):
    period = dashboard.Period.last_days(TODAY)
    start, end = period_bounds(DEFAULT_FIRST, TODAY)
    figures = dashboard.compliance(scope(cso), period, NOW)
    due = Counter()
    met = Counter()
    by_day = defaultdict(Counter)
    for c in Case.objects.values():
        if in_period(c["due_at"], start, end) and c["due_at"] <= NOW:
            ok = c["first_action_at"] is not None and c["first_action_at"] <= c["due_at"]
            due[c["priority"]] += 1
            met[c["priority"]] += ok
            by_day[c["due_at"].date()][(c["priority"], "due")] += 1
            by_day[c["due_at"].date()][(c["priority"], "met")] += ok
    for p in range(4):
        got = figures["by_priority"][p]
        assert (got["due"], got["compliant"]) == (due[p], met[p])
        assert got["rate"] == (met[p] / due[p] if due[p] else None)
    for day in period.days:
        for p in range(4):
            cell = figures["by_day"][day][p]
            assert (cell["due"], cell["compliant"]) == (
                by_day[day][(p, "due")],
                by_day[day][(p, "met")],
            )
    # By construction: P0 p met, q and c missed; P1 n met, o and g missed; s at the first instant.
    assert figures["by_priority"][0]["due"] == 3 and figures["by_priority"][0]["compliant"] == 1
    assert figures["by_priority"][3] == {"due": 1, "compliant": 1, "rate": 1.0}
    assert figures["by_day"][date(2026, 11, 10)][1]["due"] == 2


def test_compliance_over_a_chosen_period(data, cso):
    period = dashboard.Period(date(2026, 11, 5), date(2026, 11, 9))
    figures = dashboard.compliance(scope(cso), period, NOW)["by_priority"]
    assert {p: (f["due"], f["compliant"]) for p, f in figures.items()} == {
        0: (2, 1),  # p met, q missed
        1: (0, 0),  # n and o fall due on the 10th
        2: (0, 0),
        3: (0, 0),
    }


def test_time_to_first_action_median_and_p90(data, cso):
    period = dashboard.Period.last_days(TODAY)
    start, end = period_bounds(DEFAULT_FIRST, TODAY)
    durations = defaultdict(list)
    for c in Case.objects.filter(first_action_at__isnull=False).values():
        if in_period(c["first_action_at"], start, end):
            durations[c["priority"]].append(c["first_action_at"] - c["sla_started_at"])
    figures = dashboard.time_to_first_action(scope(cso), period)
    for p in range(4):
        values = sorted(durations[p])
        got = figures[p]
        assert got["count"] == len(values)
        assert close(got["median"], percentile(values, 0.5)), (p, got, values)
        assert close(got["p90"], percentile(values, 0.9)), (p, got, values)
    # P1: 1 h (h), 6 h (u), 12.5 h (v), 22 h (n), 27 h (o).
    assert figures[1]["median"] == timedelta(hours=12, minutes=30)
    assert close(figures[1]["p90"], timedelta(hours=25))
    assert figures[3] == {"count": 0, "median": None, "p90": None}


def test_breaches_with_how_late_and_who_held_them(data, cso):
    period = dashboard.Period.last_days(TODAY)
    start, end = period_bounds(DEFAULT_FIRST, TODAY)
    rows = dashboard.breaches(scope(cso), period, NOW)
    keys = ("case_id", "priority", "breached_at", "answered_at", "late", "held_by")
    assert [{k: r[k] for k in keys} for r in rows] == expected_breaches(start, end, NOW)
    late = {r["case_id"]: (r["late"], r["held_by"]) for r in rows}
    assert late == {
        data["c"].pk: (H, "unassigned"),  # still waiting: now - deadline
        data["k"].pk: (2 * H, "sam"),
        data["o"].pk: (3 * H, "rita"),
        data["q"].pk: (45 * M, "unassigned"),
        data["t"].pk: (3 * H + 30 * M, "rita"),  # reopened since: the person's decision
    }
    per_day = dashboard.breaches_by_day(scope(cso), period)
    assert sum(sum(v.values()) for v in per_day.values()) == len(rows)
    assert per_day[date(2026, 11, 20)] == {0: 1, 1: 0, 2: 1, 3: 0}


def test_reports_decisions_and_actions_over_the_period(data, cso):
    period = dashboard.Period.last_days(TODAY)
    start, end = period_bounds(DEFAULT_FIRST, TODAY)
    reports = [r for r in Report.objects.values() if in_period(r["created_at"], start, end)]
    figures = dashboard.reports_received(scope(cso), period)
    assert {k: v for k, v in figures["by_source"].items() if v} == Counter(
        r["source"] for r in reports
    )
    assert {k: v for k, v in figures["by_category"].items() if v} == Counter(
        r["category"] for r in reports
    )
    assert {k: v for k, v in figures["by_day"].items() if v} == Counter(
        r["created_at"].date() for r in reports
    )
    assert figures["total"] == len(reports)
    assert figures["by_day"][date(2026, 10, 22)] == 1  # s, at the first instant; r is out

    decisions = [d for d in Decision.objects.values() if in_period(d["created_at"], start, end)]
    got = dashboard.decisions_by_violation(scope(cso), period)
    assert {k: v for k, v in got.items() if v} == Counter(d["violation"] for d in decisions)
    assert got["grooming"] == 2 and got["no_violation"] == 1

    actions = [
        a for a in EnforcementAction.objects.values() if in_period(a["created_at"], start, end)
    ]
    got = dashboard.actions_by_type_and_status(scope(cso), period)
    flat = {(t, s): n for t, by_status in got.items() for s, n in by_status.items() if n}
    assert flat == Counter((a["type"], a["status"]) for a in actions)
    assert got["suspend_account"]["done"] == 0  # before the period


def test_a_viewer_who_may_not_see_child_safety_cases_gets_figures_without_them(data):
    # Not a role today; the dashboard follows Case.visible_to all the same.
    viewer = UserFactory(username="moderation-lead")
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_sla_dashboard"),
        Permission.objects.get(codename="view_case"),
    )
    figures = dashboard.open_now(scope(viewer), NOW)
    assert [f["open"] for f in figures.values()] == [0, 0, 0, 1]  # m, the only P3
    period = dashboard.Period.last_days(TODAY)
    assert dashboard.breaches(scope(viewer), period, NOW) == []
    assert dashboard.reports_received(scope(viewer), period)["by_category"]["grooming"] == 0


# --- The page ----------------------------------------------------------------------------------


class TableReader(HTMLParser):
    """The text of each dashboard table's body rows, by table name."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current = None
        self.in_body = False
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and (attrs.get("id") or "").startswith("table-"):
            self.current = attrs["id"].removeprefix("table-")
            self.tables[self.current] = []
        elif tag == "tbody" and self.current:
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.tables[self.current].append([])
        elif tag == "td" and self.in_body:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.tables[self.current][-1].append(self.cell.strip())
            self.cell = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "section":
            self.current = None

    def handle_data(self, text):
        if self.cell is not None:
            self.cell += text


def page_tables(response) -> dict[str, list[list[str]]]:
    reader = TableReader()
    reader.feed(response.content.decode())
    return reader.tables


def test_the_page_shows_the_same_figures(settings, client, data, cso):
    client.force_login(cso)
    response = client.get(URL)
    assert response.status_code == 200
    tables = page_tables(response)
    expected = expected_open(NOW, fraction(settings))
    rows = {row[0]: row for row in tables["open_by_sla_state"]}
    for p in range(4):
        fig = expected[p]
        assert rows[f"P{p}"][1:] == [
            str(fig[k]) for k in ("open", "on_track", "warning", "breached", "unassigned")
        ]
    assert rows["All"][1] == str(len(open_rows()))
    breaches = tables["breaches"]
    assert [r[0] for r in breaches] == [
        f"#{b['case_id']}" for b in expected_breaches(*period_bounds(DEFAULT_FIRST, TODAY), NOW)
    ]
    assert f'href="/admin/cases/case/{data["t"].pk}/change/"' in response.content.decode()
    ttfa = {row[0]: row for row in tables["time_to_first_action"]}
    assert ttfa["P1"] == ["P1", "5", "12 h 30 m", "1 d 1 h"]
    assert {row[0]: row[1] for row in tables["on_shift"]} == {
        "rita": "Reviewer",
        "sam": "Senior reviewer",
    }
    # The definitions are on the page, and every table has its export link.
    assert "How the figures are defined" in response.content.decode()
    for name in tables:
        assert f"?export={name}&amp;from=2026-10-22&amp;to=2026-11-20" in response.content.decode()
    assert set(tables) == set(dashboard.TABLE_BUILDERS)


def test_the_page_runs_a_fixed_number_of_queries(client, data, integration, cso):
    client.force_login(cso)
    client.get(URL)  # warm the content-type and permission caches
    with CaptureQueriesContext(connection) as before:
        assert client.get(URL).status_code == 200
    for i in range(5):
        make_case(integration, i % 4, started=NOW - i * H)
    with CaptureQueriesContext(connection) as after:
        assert client.get(URL).status_code == 200
    assert len(before) == len(after) <= 25


@pytest.mark.parametrize("fixture", ["reviewer", "senior", "legal"])
def test_other_roles_get_403(client, clock, fixture, request):
    client.force_login(request.getfixturevalue(fixture))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"export": "breaches"}).status_code == 403


@pytest.mark.parametrize("roles", [[], ["admin"]])
def test_staff_without_a_dashboard_role_get_403(client, clock, roles):
    client.force_login(UserFactory(roles=roles))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"export": "breaches"}).status_code == 403


@pytest.mark.parametrize("role", ["cso", "auditor"])
def test_the_cso_and_auditors_see_it(client, clock, role, request):
    client.force_login(request.getfixturevalue(role))
    response = client.get(URL)
    assert response.status_code == 200
    assert response.context["period"] == dashboard.Period(DEFAULT_FIRST, TODAY)


def test_anonymous_and_non_staff_are_sent_to_the_admin_login(client, clock):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.force_login(UserFactory(username="outsider", is_staff=False))
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_every_table_exports_as_csv(client, data, cso):
    client.force_login(cso)
    period = {"from": "2026-10-22", "to": "2026-11-20"}
    response = client.get(URL, {"export": "breaches", **period})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        'attachment; filename="sla-breaches-2026-10-22-2026-11-20.csv"'
    )
    header, *rows = read_csv(response)
    assert header == [
        "case_id",
        "priority_label",
        "breached_at",
        "answered_at",
        "late_seconds",
        "held_by",
        "detected_at",
    ]
    expected = expected_breaches(*period_bounds(DEFAULT_FIRST, TODAY), NOW)
    assert [(int(r[0]), r[1], int(r[4]), r[5]) for r in rows] == [
        (b["case_id"], f"P{b['priority']}", int(b["late"].total_seconds()), b["held_by"])
        for b in expected
    ]
    assert rows[0][2] == expected[0]["breached_at"].isoformat()

    header, *rows = read_csv(client.get(URL, {"export": "compliance", **period}))
    assert header == ["priority", "due", "compliant", "missed", "rate"]
    assert rows[0] == ["P0", "3", "1", "2", "0.3333"]

    for name in dashboard.TABLE_BUILDERS:
        response = client.get(URL, {"export": name, **period})
        assert response.status_code == 200, name
        assert len(read_csv(response)[0]) > 1
    assert client.get(URL, {"export": "nonsense"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "is not a date"),
        ({"from": "yesterday", "to": "2026-11-20"}, "is not a date"),
        ({"to": "2026-02-30"}, "is not a date"),
        ({"from": "x" * 5000}, "is not a date"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "is before"),
        ({"from": "2020-01-01", "to": "2026-11-20"}, "longer than"),
        ({"from": "9999-12-01", "to": "9999-12-31"}, "must lie between"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "must lie between"),
        ({"to": "0001-01-02"}, "must lie between"),
    ],
)
def test_a_bad_period_shows_an_error_and_the_default_period(client, clock, cso, params, message):
    client.force_login(cso)
    response = client.get(URL, params)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'id="period-errors"' in response.content.decode()
    assert response.context["period"] == dashboard.Period(DEFAULT_FIRST, TODAY)
    assert client.get(URL, {**params, "export": "compliance"}).status_code == 200


def test_a_chosen_period_is_used(client, clock, cso):
    client.force_login(cso)
    response = client.get(URL, {"from": "2026-11-01", "to": "2026-11-07"})
    assert response.context["errors"] == []
    assert response.context["period"] == dashboard.Period(date(2026, 11, 1), date(2026, 11, 7))
    assert len(page_tables(response)["reports_by_day"]) == 7


def test_the_chart_library_is_served_from_the_project_and_no_script_is_inline(client, clock, cso):
    found = finders.find("vendor/chartjs/chart.umd.min.js")
    assert found and finders.find("vendor/chartjs/LICENSE.md")
    with open(found, encoding="utf-8") as library:
        assert "Chart.js v4" in library.read(200)
    assert finders.find("oversight/dashboard/sla_dashboard.js")
    served = serve(RequestFactory().get("/"), "vendor/chartjs/chart.umd.min.js", insecure=True)
    assert served.status_code == 200

    client.force_login(cso)
    html = client.get(URL).content.decode()
    scripts = re.findall(r"<script\b([^>]*)>", html)
    srcs = [m.group(1) for s in scripts if (m := re.search(r'src="([^"]*)"', s))]
    assert static("vendor/chartjs/chart.umd.min.js") in srcs
    assert not [s for s in srcs if re.match(r"(https?:)?//", s)]
    # Every script is a file of ours or data (json_script): none inline, ready for a CSP.
    assert all("src=" in s or 'type="application/json"' in s for s in scripts)
    assert 'id="sla-dashboard-charts"' in html
    assert not re.search(r"\sstyle=", html.split('id="content-main"', 1)[1])


def test_the_dashboard_is_linked_in_the_header_for_those_who_may_see_it(client, cso, reviewer):
    client.force_login(cso)
    assert 'id="sla-dashboard-link"' in client.get("/admin/").content.decode()
    client.force_login(reviewer)
    assert 'id="sla-dashboard-link"' not in client.get("/admin/").content.decode()
