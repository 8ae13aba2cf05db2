import json
import smtplib
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.db import connection
from django_q.models import Schedule

from bakkme_safety import policy
from cases import actions, sla_engine, tasks
from cases.actions import DecisionInput
from cases.models import Case, CaseEvent, EmergencyChecklistItem, SlaBreach
from staff.actions import deliver_emails, set_on_shift
from staff.models import Notification

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class FailingEmailBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise smtplib.SMTPConnectError(421, "mail server down")


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def sweep():
    return sla_engine.sweep().as_dict()


def window(category):
    return policy.sla_window(policy.priority_for(category, "message", "in_app"))


def fractions(settings):
    return sorted(settings.BAKKME_SLA_WARNING_FRACTIONS)


@pytest.mark.parametrize("category", ["imminent_danger", "grooming", "underage_user", "other"])
def test_warnings_then_breach_at_the_right_times_for_each_priority(
    settings, clock, integration, senior, cso, category
):
    case = make_report(integration, category=category, received_at=T0.isoformat()).case
    span = window(category)
    first, second = fractions(settings)

    clock.move_to(T0 + span * first - timedelta(seconds=1))
    assert sweep()["warned"] == 0
    clock.move_to(T0 + span * first)
    assert sweep()["warned"] == 1
    assert sweep()["warned"] == 0  # a repeated sweep sends nothing twice
    clock.move_to(T0 + span * second)
    assert sweep()["warned"] == 1
    clock.move_to(T0 + span - timedelta(seconds=1))
    assert sweep() == {**sweep(), "warned": 0, "breached": 0, "escalated": 0}
    clock.move_to(T0 + span)
    result = sweep()
    assert (result["breached"], result["escalated"]) == (1, 1)
    assert sweep()["breached"] == 0

    case.refresh_from_db()
    assert case.breached_at == case.due_at == T0 + span
    assert case.state == "escalated" and case.escalated_to == "senior_reviewer"
    warnings = case.events.filter(type=CaseEvent.Type.SLA_WARNING)
    assert [e.at for e in warnings] == [T0 + span * first, T0 + span * second]
    assert SlaBreach.objects.get(case=case).breached_at == T0 + span
    breach_notes = Notification.objects.filter(kind="sla_breach", case=case)
    assert {n.recipient for n in breach_notes} == {senior, cso}


def test_a_first_action_stops_the_clock(clock, integration, reviewer):
    case = make_report(integration, received_at=T0.isoformat()).case
    actions.claim_next_case(reviewer)
    clock.move_to(T0 + timedelta(hours=1))
    actions.escalate_case(case, actor=reviewer, to_role="senior_reviewer", reason="unsure")
    case.refresh_from_db()
    assert case.first_action_at == T0 + timedelta(hours=1)

    clock.move_to(T0 + timedelta(days=5))
    assert sweep() == {"warned": 0, "breached": 0, "escalated": 0, "notified": 0}
    case.refresh_from_db()
    assert case.breached_at is None


def test_a_case_reopened_by_a_new_report_gets_a_new_window(clock, integration, senior):
    account = {"platform_id": "u-reopen"}
    case = make_report(integration, reported_account=account, received_at=T0.isoformat()).case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)

    later = T0 + timedelta(days=3)
    clock.move_to(later)
    make_report(integration, reported_account=account, received_at=later.isoformat())
    case.refresh_from_db()
    assert case.state == "new"
    assert case.sla_started_at == later
    assert case.due_at == later + window("grooming")
    assert case.first_action_at is None and case.breached_at is None
    clock.move_to(later + window("grooming"))
    assert sweep()["breached"] == 1


def test_after_a_six_hour_outage_one_sweep_records_the_true_breach_times(
    settings, clock, integration, senior, cso
):
    p0 = [
        make_report(
            integration,
            category="imminent_danger",
            received_at=(T0 - timedelta(minutes=m)).isoformat(),
        ).case
        for m in (0, 20, 50)
    ]
    p1 = make_report(integration, received_at=(T0 - timedelta(hours=14)).isoformat()).case
    clock.move_to(T0 + timedelta(hours=6))

    result = sweep()
    assert result["breached"] == 3
    for case in p0:
        case.refresh_from_db()
        assert case.breached_at == case.due_at == case.sla_started_at + timedelta(hours=1)
        assert not case.events.filter(type=CaseEvent.Type.SLA_WARNING).exists()
    # The P1 case passed both warning points during the outage: one warning, for the latest.
    p1.refresh_from_db()
    assert result["warned"] == 1
    assert p1.sla_warnings_sent == 2
    (warning,) = p1.events.filter(type=CaseEvent.Type.SLA_WARNING)
    assert warning.at == p1.sla_started_at + window("grooming") * fractions(settings)[1]
    # Each person hears once per kind, however many cases broke meanwhile.
    breach_notes = Notification.objects.filter(kind="sla_breach")
    assert breach_notes.count() == 2
    assert sorted(breach_notes.first().case_ids) == sorted(c.pk for c in p0)
    assert sweep() == {"warned": 0, "breached": 0, "escalated": 0, "notified": 0}


def test_a_p0_case_starts_the_emergency_protocol_within_one_sweep(clock, integration, senior, cso):
    off_shift = UserFactory(roles=["senior_reviewer"])
    set_on_shift(senior, True)
    case = make_report(integration, category="imminent_danger").case

    result = sweep()
    emergency = Notification.objects.filter(kind="emergency", case=case)
    assert {n.recipient for n in emergency} == {cso, senior}
    assert off_shift not in {n.recipient for n in emergency}
    assert result["notified"] == 2
    items = list(case.checklist.values_list("item", flat=True))
    assert items == ["contact_law_enforcement", "remove_content", "preserve_evidence"]
    assert sweep()["notified"] == 0
    assert Notification.objects.filter(kind="emergency").count() == 2


def test_a_p0_report_notifies_at_once_and_books_its_own_sweeps(
    django_capture_on_commit_callbacks, clock, integration, cso
):
    with django_capture_on_commit_callbacks(execute=True):
        case = make_report(integration, category="imminent_danger", received_at=T0.isoformat()).case
    assert Notification.objects.filter(kind="emergency", case=case, recipient=cso).exists()
    case.refresh_from_db()
    assert case.emergency_notified_at == T0
    runs = sorted(
        Schedule.objects.filter(name__startswith=f"sla-p0-case-{case.pk}-").values_list(
            "next_run", flat=True
        )
    )
    assert runs == [T0 + timedelta(minutes=30), T0 + timedelta(minutes=48), T0 + timedelta(hours=1)]


def test_warnings_go_to_the_reviewer_holding_the_case_else_to_seniors_on_shift(
    settings, clock, integration, reviewer, senior
):
    settings.BAKKME_CLAIM_TIMEOUT_MINUTES = 24 * 60
    other_senior = UserFactory(roles=["senior_reviewer"])
    set_on_shift(senior, True)
    held = make_report(integration, category="csam", received_at=T0.isoformat()).case
    actions.claim_next_case(reviewer)
    unheld = make_report(integration, received_at=T0.isoformat()).case

    clock.move_to(T0 + timedelta(hours=12))
    assert sweep()["warned"] == 2
    assert list(Notification.objects.filter(recipient=reviewer).values_list("case", flat=True)) == [
        held.pk
    ]
    assert list(Notification.objects.filter(recipient=senior).values_list("case", flat=True)) == [
        unheld.pk
    ]
    assert not Notification.objects.filter(recipient=other_senior).exists()


def test_with_nobody_on_shift_every_senior_reviewer_is_told(clock, integration, senior):
    second = UserFactory(roles=["senior_reviewer"])
    make_report(integration, received_at=T0.isoformat())
    clock.move_to(T0 + timedelta(hours=12))
    sweep()
    assert {n.recipient for n in Notification.objects.all()} == {senior, second}


def test_a_failing_mail_server_does_not_stop_the_sweep_and_is_retried(
    settings, clock, integration, senior
):
    settings.EMAIL_BACKEND = "tests.test_sla_engine.FailingEmailBackend"
    senior.email = "sam@bakkme.example"
    senior.save()
    case = make_report(integration, received_at=T0.isoformat()).case
    clock.move_to(T0 + timedelta(hours=24))

    result = tasks.sla_sweep()
    assert result["breached"] == 1
    case.refresh_from_db()
    assert case.breached_at is not None
    note = Notification.objects.get(recipient=senior)
    assert note.email_status == "pending" and note.email_attempts == 1
    assert "mail server down" in note.email_error
    assert note.email_next_attempt_at > T0 + timedelta(hours=24)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert deliver_emails()["sent"] == 0  # not before the retry time
    clock.move_to(note.email_next_attempt_at)
    assert deliver_emails()["sent"] == 1
    note.refresh_from_db()
    assert note.email_status == "sent"
    assert mail.outbox[0].to == ["sam@bakkme.example"]
    assert f"#{case.pk}" in mail.outbox[0].subject


def test_sla_sweep_command_prints_one_json_line(clock, integration, senior):
    make_report(integration, received_at=T0.isoformat())
    clock.move_to(T0 + timedelta(days=1))
    out = StringIO()
    call_command("sla_sweep", stdout=out)
    assert json.loads(out.getvalue()) == {"warned": 0, "breached": 1, "escalated": 1, "notified": 1}


def test_a_breached_case_is_on_the_senior_reviewers_queue(clock, integration, reviewer, senior):
    case = make_report(integration, received_at=T0.isoformat()).case
    clock.move_to(T0 + timedelta(days=1))
    sweep()
    assert actions.claim_next_case(reviewer) is None
    assert actions.claim_next_case(senior).pk == case.pk


def test_the_sweep_is_scheduled_every_minute():
    schedule = Schedule.objects.get(name="sla-sweep")
    assert schedule.func == "cases.tasks.sla_sweep"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_breach_each_case_once(integration):
    senior = UserFactory(roles=["senior_reviewer"])
    start = datetime.now(UTC) - timedelta(days=2)
    with time_machine.travel(start, tick=False):
        cases = [make_report(integration, received_at=start.isoformat()).case for _ in range(30)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(sla_engine.sweep().as_dict())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r["breached"] for r in results) == 30
    assert SlaBreach.objects.count() == 30
    assert CaseEvent.objects.filter(type=CaseEvent.Type.SLA_BREACHED).count() == 30
    assert Case.objects.filter(pk__in=[c.pk for c in cases], breached_at__isnull=True).count() == 0
    assert Notification.objects.filter(recipient=senior).count() == sum(
        1 for r in results if r["breached"]
    )
    assert EmergencyChecklistItem.objects.count() == 0
