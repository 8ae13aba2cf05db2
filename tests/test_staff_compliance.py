"""Staff compliance: CSAE training, background checks, leaving CSAE duties and exposure.

The clock is controlled (time-machine): every user and case is made at T0, then the clock moves.
Policy numbers come from the settings, never from this file.
"""

import csv
import io
import math
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cases import actions
from cases.models import Case, CaseEvent
from evidence import access, vault
from evidence.models import CustodyEvent
from evidence.queries import accessible_cases
from oversight import dashboard
from staff import actions as staff_actions
from staff import compliance, exposure
from staff.models import BackgroundCheck, ExposureInterval, StaffProfile

from .evidence_files import pattern_png
from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
DAY = timedelta(days=1)
QUEUE = reverse("admin:cases_case_changelist")
NEXT = reverse("admin:cases_case_next")
SHIFT = reverse("admin:staff_shift")
DUTIES = reverse("admin:staff_csae_duties")
MINE = reverse("admin:staff_my_compliance")
DASHBOARD = "/admin/dashboard/"


@pytest.fixture(autouse=True)
def clock():
    """Frozen at T0 before any other fixture of this module makes users or cases."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def at(day, hour=0, minute=0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def csae_expiry(settings):
    """The first day without access for someone trained on T0's day (the factory's default)."""
    return T0.date() + timedelta(days=settings.BAKKME_CSAE_TRAINING_VALID_DAYS)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def case_url(case):
    return reverse("admin:cases_case_change", args=[case.pk])


def evidence_url(name, *args):
    return reverse(f"admin:evidence_evidenceitem_{name}", args=args)


def queue_ids(client, **params) -> set[int]:
    response = client.get(QUEUE, params)
    assert response.status_code == 200
    return {c.pk for c in response.context["cl"].result_list}


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def cs_case(integration):
    return make_report(integration, category="grooming").case


@pytest.fixture
def other_case(integration):
    return make_report(integration, category="other").case


def released_events(case):
    return list(case.events.filter(type=CaseEvent.Type.RELEASED).order_by("at", "pk"))


# --- The factory's default, and the rule ---------------------------------------------------------


def test_staff_made_by_the_factory_qualify_and_compliant_false_does_not(reviewer, cs_case):
    assert compliance.may_handle_child_safety(reviewer)
    assert cs_case in Case.objects.visible_to(reviewer)
    newcomer = UserFactory(roles=["reviewer"], compliant=False)
    status = compliance.compliance_status(newcomer)
    assert not status.may_handle_child_safety
    assert compliance.REASON_NO_PROFILE in status.missing
    assert cs_case not in Case.objects.visible_to(newcomer)


def test_a_superuser_bypasses_the_rule(cs_case):
    root = UserFactory(is_superuser=True, compliant=False)
    assert compliance.may_handle_child_safety(root)
    assert cs_case in Case.objects.visible_to(root)


# --- CSAE training expiry ------------------------------------------------------------------------


def test_training_expiry_takes_access_on_the_next_request_and_returns_the_claimed_cases(
    settings, clock, reviewer, cs_case, other_case
):
    expires = csae_expiry(settings)
    clock.move_to(at(expires - DAY, 23, 50))  # the last day of a current training
    client = login(reviewer)
    assert client.post(NEXT).status_code == 302
    cs_case.refresh_from_db()
    assert cs_case.assignee == reviewer and cs_case.state == "in_review"
    assert queue_ids(client) == {cs_case.pk, other_case.pk}

    clock.move_to(at(expires, 0, 5))  # the claim is still running; the training is not
    response = client.get(QUEUE)
    assert response.status_code == 200
    assert "CSAE training expired" in messages_of(response)
    assert f"#{cs_case.pk}" in messages_of(response)
    cs_case.refresh_from_db()
    assert cs_case.assignee is None and cs_case.state == "new"
    (event,) = released_events(cs_case)
    assert event.actor == reviewer and event.payload["reason"] == compliance.REASON_CSAE_EXPIRED
    # Its exposure stopped when the claim ended.
    (interval,) = ExposureInterval.objects.filter(user=reviewer)
    assert interval.ended_at == at(expires, 0, 5)

    # The child-safety case has left the queue, its page, the search and "next case".
    assert {c.pk for c in response.context["cl"].result_list} == {other_case.pk}
    assert client.get(case_url(cs_case)).status_code == 404
    assert queue_ids(client, q=cs_case.account_platform_id) == set()
    assert queue_ids(client, q=other_case.account_platform_id) == {other_case.pk}
    client.post(NEXT)
    other_case.refresh_from_db()
    assert other_case.assignee == reviewer
    assert actions.claim_next_case(reviewer) is None  # the child-safety case is not offered
    # The message came once: nothing more to hand back.
    assert "CSAE training expired" not in messages_of(client.get(QUEUE))
    assert len(released_events(cs_case)) == 1
    # The staff bar says why.
    assert "Child-safety cases are closed to you: CSAE training expired" in (
        client.get(QUEUE).content.decode()
    )


def test_a_training_within_the_warning_days_warns_in_the_staff_bar(settings, clock, reviewer):
    expires = csae_expiry(settings)
    warning = f"Your CSAE training expires on {expires:%Y-%m-%d}."
    clock.move_to(at(expires - timedelta(days=settings.BAKKME_TRAINING_WARN_DAYS + 1), 12))
    assert warning not in login(reviewer).get(QUEUE).content.decode()
    clock.move_to(at(expires - timedelta(days=settings.BAKKME_TRAINING_WARN_DAYS), 12))
    page = login(reviewer).get(QUEUE).content.decode()
    assert warning in page and 'id="compliance-notices"' in page
    assert compliance.may_handle_child_safety(reviewer)  # a warning, still access
    mine = login(reviewer).get(MINE).content.decode()
    assert f"expires on {expires:%Y-%m-%d}: due soon" in mine


def test_the_general_training_is_annual_and_warns_without_closing_the_queue(
    settings, clock, reviewer, cs_case
):
    StaffProfile.objects.filter(user=reviewer).update(
        general_training_on=T0.date() - timedelta(days=settings.BAKKME_GENERAL_TRAINING_VALID_DAYS)
    )
    status = compliance.compliance_status(reviewer)
    assert status.general_training.state == "expired"
    assert status.may_handle_child_safety
    assert "Your general child-safety training expired on" in (
        login(reviewer).get(QUEUE).content.decode()
    )


# --- Background checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "check", [BackgroundCheck.NONE, BackgroundCheck.PENDING, BackgroundCheck.CLEARED]
)
def test_without_an_enhanced_background_check_no_child_safety_case_is_reachable(
    check, reviewer, cso, cs_case, other_case
):
    staff_actions.update_compliance_record(
        reviewer,
        actor=cso,
        csae_training_on=T0.date(),
        general_training_on=T0.date(),
        background_check=check,
        background_checked_on=None if check == BackgroundCheck.NONE else T0.date(),
    )
    assert compliance.REASON_BACKGROUND in compliance.compliance_status(reviewer).missing
    assert list(Case.objects.visible_to(reviewer)) == [other_case]
    client = login(reviewer)
    assert client.get(case_url(cs_case)).status_code == 404
    assert actions.claim_next_case(reviewer).pk == other_case.pk


def test_a_downgraded_check_closes_the_evidence_and_the_next_request_returns_the_case(
    clock, reviewer, cso, cs_case
):
    actions.claim_next_case(reviewer)
    item = vault.collect(io.BytesIO(pattern_png()), case=cs_case, original_name="p.png")
    client = login(reviewer)
    assert client.get(evidence_url("preview", item.pk)).status_code == 200

    # The CSO records the check as cleared, not enhanced, in the admin.
    profile = StaffProfile.objects.get(user=reviewer)
    change = reverse("admin:staff_staffprofile_change", args=[profile.pk])
    response = login(cso).post(
        change,
        {
            "csae_training_on": T0.date().isoformat(),
            "general_training_on": T0.date().isoformat(),
            "background_check": BackgroundCheck.CLEARED,
            "background_checked_on": T0.date().isoformat(),
        },
    )
    assert response.status_code == 302
    record = profile.history.order_by("-history_date", "-history_id").first()
    assert record.history_user == cso and record.background_check == BackgroundCheck.CLEARED

    cs_case.refresh_from_db()
    assert not access.may_access(reviewer, cs_case)
    assert cs_case.pk not in accessible_cases(reviewer).values_list("pk", flat=True)
    for name in ("case", "preview", "unblur", "unblurred", "download"):
        target = cs_case.pk if name == "case" else item.pk
        assert client.get(evidence_url(name, target)).status_code == 404, name
    cs_case.refresh_from_db()
    assert cs_case.assignee is None
    assert released_events(cs_case)[0].payload["reason"] == compliance.REASON_BACKGROUND


def test_the_cso_keeps_the_record_and_reviewers_only_read_their_own(clock, reviewer, cso, auditor):
    profile = StaffProfile.objects.get(user=reviewer)
    change = reverse("admin:staff_staffprofile_change", args=[profile.pk])
    future = (T0.date() + DAY).isoformat()
    refused = login(cso).post(
        change,
        {
            "csae_training_on": future,
            "general_training_on": "",
            "background_check": BackgroundCheck.ENHANCED_CLEARED,
            "background_checked_on": "",
        },
    )
    assert refused.status_code == 200
    assert set(refused.context["adminform"].form.errors) == {
        "csae_training_on",
        "background_checked_on",
    }
    listing = login(cso).get(reverse("admin:staff_staffprofile_changelist"))
    assert listing.status_code == 200 and "rita" in listing.content.decode()
    # Whether someone left CSAE duties is not a column of the record.
    assert "left CSAE" not in listing.content.decode()

    assert login(reviewer).get(reverse("admin:staff_staffprofile_changelist")).status_code == 403
    assert login(reviewer).get(change).status_code == 403
    assert login(auditor).get(change).status_code == 200  # reads
    assert login(auditor).post(change, {"background_check": "none"}).status_code == 403
    mine = login(reviewer).get(MINE)
    assert mine.status_code == 200
    assert "You may work on child-safety cases." in mine.content.decode()


def test_a_new_member_of_staff_gets_a_record_from_the_cso(cso, cs_case):
    newcomer = UserFactory(username="nina", roles=["reviewer"], compliant=False)
    response = login(cso).post(
        reverse("admin:staff_staffprofile_add"),
        {
            "user": newcomer.pk,
            "csae_training_on": T0.date().isoformat(),
            "general_training_on": T0.date().isoformat(),
            "background_check": BackgroundCheck.ENHANCED_CLEARED,
            "background_checked_on": T0.date().isoformat(),
        },
    )
    assert response.status_code == 302
    assert StaffProfile.objects.get(user=newcomer).history.first().history_user == cso
    assert cs_case in Case.objects.visible_to(newcomer)


# --- Leaving CSAE duties -------------------------------------------------------------------------


def test_leaving_csae_duties_releases_the_cases_hides_them_and_is_recorded(
    clock, reviewer, cso, cs_case, other_case
):
    client = login(reviewer)
    client.post(SHIFT, {"on_shift": "1"})
    client.post(NEXT)
    cs_case.refresh_from_db()
    assert cs_case.assignee == reviewer

    clock.shift(7 * M)
    response = client.post(DUTIES, {"csae_duties": "leave", "next": QUEUE}, follow=True)
    assert "You left CSAE duties" in messages_of(response)
    cs_case.refresh_from_db()
    assert cs_case.assignee is None and cs_case.state == "new"
    (event,) = released_events(cs_case)
    assert event.actor == reviewer and event.payload["reason"] == compliance.REASON_OPTED_OUT
    profile = StaffProfile.objects.get(user=reviewer)
    assert profile.csae_opt_out and profile.csae_opt_out_at == T0 + 7 * M
    record = profile.history.order_by("-history_date", "-history_id").first()
    assert record.history_user == reviewer
    assert record.history_change_reason == compliance.REASON_OPTED_OUT
    assert {c.pk for c in response.context["cl"].result_list} == {other_case.pk}
    assert client.get(case_url(cs_case)).status_code == 404
    assert "You left CSAE duties" in response.content.decode()  # the staff bar says so

    # Never a performance figure: not on the dashboard, not in any export.
    cso_client = login(cso)
    page = cso_client.get(DASHBOARD).content.decode().split('id="content-main"', 1)[1]
    for word in ("csae duties", "left csae", "opted", "opt-out", "opt_out"):
        assert word not in page.lower(), word
    for name in dashboard.TABLE_BUILDERS:
        export = cso_client.get(DASHBOARD, {"export": name}).content.decode().lower()
        assert "opt" not in export.splitlines()[0], name
        assert "csae duties" not in export and "left csae" not in export, name
    # On the dashboard's exposure table like anyone else on shift.
    exported = csv.reader(io.StringIO(cso_client.get(DASHBOARD, {"export": "exposure"}).text))
    assert [row[0] for row in list(exported)[1:]] == ["rita"]

    # Rejoining is as simple, and the queue opens again.
    client.post(DUTIES, {"csae_duties": "rejoin"})
    assert not StaffProfile.objects.get(user=reviewer).csae_opt_out
    assert client.get(case_url(cs_case)).status_code == 200


def test_leaving_needs_no_approval_and_works_at_any_time(clock, reviewer, cs_case):
    # Even at the exposure limit and without a shift: one POST.
    ExposureInterval.objects.create(
        user=reviewer,
        case=cs_case,
        source=ExposureInterval.Source.CLAIM,
        started_at=T0 - exposure.limit(),
        ended_at=T0,
    )
    clock.move_to(T0 + 10 * DAY)
    response = login(reviewer).post(DUTIES, {"csae_duties": "leave"})
    assert response.status_code == 302 and response["Location"] == MINE
    assert not compliance.may_handle_child_safety(reviewer)
    assert login(reviewer).get(DUTIES).status_code == 404  # a POST only


# --- Exposure ------------------------------------------------------------------------------------


def test_exposure_accumulates_per_shift_and_the_limit_stops_child_safety_cases(
    settings, clock, integration, reviewer, other_case
):
    limit = timedelta(minutes=settings.BAKKME_EXPOSURE_LIMIT_MINUTES)
    held = timedelta(minutes=settings.BAKKME_CLAIM_TIMEOUT_MINUTES) - 5 * M
    claims = math.ceil(limit / held)
    cs_cases = [make_report(integration, category="csam").case for _ in range(claims + 2)]
    client = login(reviewer)
    client.post(SHIFT, {"on_shift": "1"})

    spent = timedelta(0)
    for _ in range(claims):
        response = client.post(NEXT, follow=True)
        case = response.context["case"]
        assert case.is_child_safety
        assert "time for a break" not in messages_of(response)
        clock.shift(held)
        client.post(reverse("admin:cases_case_release", args=[case.pk]))
        spent += held
        clock.shift(5 * M)  # between cases: not exposure
        assert exposure.shift_exposure(reviewer) == spent
    assert spent >= limit

    # At the limit: "next case" gives other work, with the break notice.
    response = client.post(NEXT, follow=True)
    assert response.context["case"].pk == other_case.pk
    assert "time for a break" in messages_of(response)
    queue = client.get(QUEUE).content.decode()
    assert 'id="break-notice"' in queue
    response = client.post(NEXT, follow=True)  # child-safety cases wait, nothing else left
    assert "The queue is empty" in messages_of(response)
    assert Case.objects.filter(assignee=reviewer, is_child_safety=True).count() == 0
    # They still see the child-safety queue: only "next case" stops giving it.
    assert {c.pk for c in cs_cases} <= queue_ids(client)

    # A new shift starts the count again.
    clock.shift(20 * M)
    client.post(SHIFT, {"on_shift": "0"})
    clock.shift(8 * 60 * M)
    client = login(reviewer)  # a new day, a new login
    client.post(SHIFT, {"on_shift": "1"})
    assert exposure.shift_exposure(reviewer) == timedelta(0)
    response = client.post(NEXT, follow=True)
    assert response.context["case"].is_child_safety
    assert 'id="break-notice"' not in client.get(QUEUE).content.decode()


def test_a_claim_counts_until_it_ends_or_expires(settings, clock, reviewer, senior, integration):
    first = make_report(integration, category="grooming").case
    second = make_report(integration, category="sextortion").case
    make_report(integration, category="other")
    staff_actions.set_on_shift(reviewer, True)
    assert actions.claim_next_case(reviewer).pk == first.pk
    clock.shift(10 * M)
    actions.escalate_case(first, actor=reviewer, to_role="senior_reviewer", reason="placeholder")
    assert exposure.shift_exposure(reviewer) == 10 * M
    assert actions.claim_next_case(reviewer).pk == second.pk
    clock.shift(2 * 60 * M)  # left unattended: counts until the claim expired
    timeout = timedelta(minutes=settings.BAKKME_CLAIM_TIMEOUT_MINUTES)
    assert exposure.shift_exposure(reviewer) == 10 * M + timeout
    # The senior reviewer decides the escalated case: their claim, their exposure.
    assert actions.claim_next_case(senior).pk == first.pk
    clock.shift(3 * M)
    actions.decide_case(first, actions.DecisionInput("grooming", "placeholder"), actor=senior)
    assert exposure.shift_exposure(senior) == 3 * M


def test_previews_of_child_safety_evidence_count_and_overlaps_count_once(
    settings, clock, integration, cso, cs_case, other_case
):
    span = timedelta(minutes=settings.BAKKME_EXPOSURE_PREVIEW_MINUTES)
    cs_item = vault.collect(io.BytesIO(pattern_png()), case=cs_case, original_name="a.png")
    other_item = vault.collect(io.BytesIO(pattern_png()), case=other_case, original_name="b.png")
    client = login(cso)
    client.post(SHIFT, {"on_shift": "1"})
    assert client.get(evidence_url("preview", cs_item.pk)).status_code == 200
    clock.shift(span / 2)
    assert client.get(evidence_url("unblurred", cs_item.pk)).status_code == 200  # extends
    clock.shift(10 * span)
    client = login(cso)  # the session's idle limit may have passed
    assert client.get(evidence_url("preview", other_item.pk)).status_code == 200  # not CS
    assert client.get(evidence_url("preview", cs_item.pk)).status_code == 200  # a new stretch
    clock.shift(10 * span)
    assert exposure.shift_exposure(cso) == span / 2 + span + span
    assert ExposureInterval.objects.filter(user=cso).count() == 2
    assert cs_item.custody.filter(action=CustodyEvent.Action.PREVIEW).count() == 2

    # A claim and previews at the same time count once.
    claimed = actions.claim_next_case(cso)
    assert claimed.pk == cs_case.pk
    client.get(evidence_url("preview", cs_item.pk))
    clock.shift(span * 3)
    actions.release_claim(claimed, actor=cso)
    assert exposure.shift_exposure(cso) == span / 2 + span + span + span * 3


def test_my_compliance_shows_the_own_exposure(clock, reviewer, cs_case):
    staff_actions.set_on_shift(reviewer, True)
    actions.claim_next_case(reviewer)
    clock.shift(25 * M)
    page = login(reviewer).get(MINE).content.decode()
    assert f'<td id="my-exposure">{dashboard.format_duration(25 * M)}</td>' in page


# --- The dashboard --------------------------------------------------------------------------------


def union_seconds(spans, start, end) -> int:
    """The union's length counted second by second: independent of staff.exposure."""
    covered = set()
    for a, b in spans:
        a, b = max(a, start), min(b, end)
        first, last = int(a.timestamp()), int(b.timestamp())
        covered.update(range(first, last))
    return len(covered)


def test_the_dashboard_shows_the_exposure_of_each_person_on_shift(
    clock, integration, reviewer, senior, cso, auditor
):
    ray = UserFactory(username="ray", roles=["reviewer"])
    cases = [make_report(integration, category="csam").case for _ in range(3)]
    other = make_report(integration, category="other").case
    shift_starts = {reviewer: T0 - 3 * 60 * M, ray: T0 - 60 * M, senior: T0 - 30 * M}
    for person, since in shift_starts.items():
        staff_actions.set_on_shift(person, True, now=since)
    spans = {
        reviewer: [
            (T0 - 4 * 60 * M, T0 - 2 * 60 * M, cases[0]),  # begins before the shift
            (T0 - 2 * 60 * M - 30 * M, T0 - 60 * M, cases[1]),  # overlaps the first
            (T0 - 20 * M, T0 + 60 * M, cases[2]),  # runs past now
        ],
        ray: [(T0 - 50 * M, T0 - 45 * M, cases[0]), (T0 - 48 * M, T0 - 40 * M, cases[0])],
        senior: [],
        cso: [(T0 - 50 * M, T0 - 10 * M, cases[1])],  # not on shift: not listed
    }
    for person, rows in spans.items():
        for started, ended, case in rows:
            ExposureInterval.objects.create(
                user=person, case=case, source="claim", started_at=started, ended_at=ended
            )
    # A non-child-safety case never makes an interval.
    exposure.start_claim(ray, other, T0 - 30 * M, T0)
    expected = {
        person.username: union_seconds([(a, b) for a, b, _c in spans[person]], since, T0)
        for person, since in shift_starts.items()
    }
    assert expected == {"rita": 140 * 60, "ray": 10 * 60, "sam": 0}

    client = login(cso)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    section = html.split('id="table-exposure"', 1)[1].split("</section>", 1)[0]
    for name, seconds in expected.items():
        shown = dashboard.format_duration(timedelta(seconds=seconds))
        assert f"<td>{name}</td>" in section
        assert f'<td class="num">{shown}</td>' in section
    assert "chris" not in section

    rows = list(csv.reader(io.StringIO(client.get(DASHBOARD, {"export": "exposure"}).text)))
    assert rows[0] == ["username", "on_shift_since", "exposure_seconds", "at_limit"]
    assert {r[0]: int(r[2]) for r in rows[1:]} == expected
    assert [r[0] for r in rows[1:]] == ["rita", "ray", "sam"]  # highest first
    assert {r[0]: r[1] for r in rows[1:]} == {
        p.username: since.isoformat() for p, since in shift_starts.items()
    }
    assert login(auditor).get(DASHBOARD, {"export": "exposure"}).status_code == 200


def test_the_exposure_limit_is_a_setting(settings, clock, reviewer, cs_case, other_case):
    staff_actions.set_on_shift(reviewer, True)
    settings.BAKKME_EXPOSURE_LIMIT_MINUTES = 20
    assert actions.claim_next_case(reviewer).pk == cs_case.pk
    clock.shift(20 * M)
    assert exposure.at_limit(reviewer)
    assert "reached, time for a break" in login(reviewer).get(MINE).content.decode()
    actions.release_claim(Case.objects.get(pk=cs_case.pk), actor=reviewer)
    assert actions.claim_next_case(reviewer).pk == other_case.pk
    rows = dashboard.exposure_on_shift(dashboard.scope_for(reviewer), timezone.now())
    assert [(r["username"], r["at_limit"]) for r in rows] == [("rita", "yes")]


def test_senior_reviewers_who_left_csae_duties_are_not_the_ones_on_duty(db):
    from bakkme_safety.roles import Role
    from staff.actions import leave_csae_duties, on_duty, set_on_shift

    left, staying = UserFactory(roles=["senior_reviewer"]), UserFactory(roles=["senior_reviewer"])
    for person in (left, staying):
        set_on_shift(person, True)
    leave_csae_duties(left)
    assert on_duty(Role.SENIOR_REVIEWER) == [staying]
    leave_csae_duties(staying)  # nobody able: the warning still reaches the shift
    assert on_duty(Role.SENIOR_REVIEWER) == [left, staying]
