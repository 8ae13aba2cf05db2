"""Issue 14, the hand-off and the legal desk: every NCMEC and law-enforcement duty reaches legal
staff at once (Child Safety Standards §6.3, §6.4), sits on their desk with its deadline, warns
and escalates once each, and is done when the work is."""

import hashlib
import io
from datetime import date, timedelta

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from cases import actions
from cases.actions import DecisionInput
from cases.models import Case, CaseEvent
from detection.models import HashBank, HashEntry
from evidence import packages, vault
from evidence.samples import pattern_png
from legal import actions as legal_actions
from legal import duties
from legal.models import CyberTiplineReport, LawEnforcementReferral, LawEnforcementRequest
from legal.models import LegalDuty as Duty
from staff.actions import set_on_shift
from staff.models import Notification

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db
Kind = Duty.Kind


@pytest.fixture
def ncmec(settings):
    from . import ncmec_server

    server = ncmec_server.FakeNcmec().start()
    settings.BAKKME_CYBERTIP_URL = server.url
    settings.BAKKME_CYBERTIP_USERNAME = ncmec_server.USERNAME
    settings.BAKKME_CYBERTIP_PASSWORD = ncmec_server.PASSWORD
    settings.BAKKME_CYBERTIP_REPORTER_EMAIL = "safety@bakkme.example"
    yield server
    server.stop()


@pytest.fixture
def lawyers(db):
    return [UserFactory(username=f"lawyer{n}", roles=["legal"]) for n in range(2)]


def handoffs(user):
    return Notification.objects.filter(recipient=user, kind=Notification.Kind.LEGAL_HANDOFF)


def decide_csam(case, senior):
    return actions.decide_case(
        case, DecisionInput("csam_distribution", "placeholder rationale"), actor=senior
    )


# --- The hand-off -------------------------------------------------------------------------------


def test_a_csam_decision_hands_the_case_to_legal_at_once(client, integration, senior, lawyers):
    on_shift, off_shift = lawyers
    set_on_shift(on_shift, True)
    case = make_report(integration, category="csam", surface="image").case
    before = timezone.now()
    decide_csam(case, senior)

    report = CyberTiplineReport.objects.get(case=case)
    assert report.status == CyberTiplineReport.Status.DRAFT
    owed = {duty.kind: duty for duty in Duty.objects.filter(case=case)}
    assert set(owed) == {Kind.CYBERTIP_REPORT, Kind.LE_REFERRAL}
    assert owed[Kind.CYBERTIP_REPORT].cybertip_report == report
    hours = settings.BAKKME_LEGAL_CYBERTIP_HOURS
    assert before + timedelta(hours=hours) <= owed[Kind.CYBERTIP_REPORT].due_at
    assert "Distributing CSAM" in owed[Kind.CYBERTIP_REPORT].reason
    # The legal staff on shift hear of it, once; who is off shift does not.
    assert handoffs(on_shift).count() == 1 and not handoffs(off_shift).exists()
    assert case.events.filter(type=CaseEvent.Type.LEGAL_HANDOFF).count() == 1

    # Legal staff now see the case, its draft, its enforcement actions and their desk.
    client.force_login(off_shift)
    assert client.get(reverse("admin:cases_case_change", args=[case.pk])).status_code == 200
    draft = reverse("admin:legal_cybertiplinereport_draft", args=[case.pk])
    assert client.get(draft).status_code == 200
    listing = client.get(reverse("admin:cases_enforcementaction_changelist"))
    assert len(listing.context["cl"].result_list) == 4
    desk = client.get(reverse("admin:legal_legalduty_changelist"))
    assert {d.kind for d in desk.context["cl"].result_list} == set(owed)
    assert f"CyberTipline report of case #{case.pk}" in desk.content.decode()


def test_nobody_on_shift_means_every_legal_member_hears(integration, senior, lawyers):
    decide_csam(make_report(integration, category="csam").case, senior)
    assert [handoffs(person).count() for person in lawyers] == [1, 1]


def test_a_csam_hash_match_hands_off_once(integration, lawyers):
    data = pattern_png(seed=41)
    bank = HashBank.objects.create(name="ncmec-test", source="ncmec", is_csam=True)
    HashEntry.objects.create(
        bank=bank, signal_type="sha256", value=hashlib.sha256(data).hexdigest()
    )
    report = make_report(integration, category="other", surface="image")
    for _ in range(2):  # the same file twice: one hand-off
        vault.collect(io.BytesIO(data), case=report.case, report=report)
    case = report.case
    assert CyberTiplineReport.objects.filter(case=case, status="draft").count() == 1
    duty = Duty.objects.get(case=case)
    assert duty.kind == Kind.CYBERTIP_REPORT and "Automated CSAM hash match" in duty.reason
    assert [handoffs(person).count() for person in lawyers] == [1, 1]
    assert Case.objects.visible_to(lawyers[0]).filter(pk=case.pk).exists()


def test_a_decision_with_only_a_referral_opens_no_cybertip_duty(integration, senior, lawyers):
    case = make_report(integration, category="grooming").case
    actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    assert list(Duty.objects.filter(case=case).values_list("kind", flat=True)) == [Kind.LE_REFERRAL]
    assert not CyberTiplineReport.objects.filter(case=case).exists()


def test_a_p0_referral_is_an_emergency_due_within_the_hour(integration, senior, lawyers):
    case = make_report(integration, category="imminent_danger").case
    assert case.priority == 0
    actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    duty = Duty.objects.get(case=case, kind=Kind.LE_REFERRAL)
    assert duty.emergency and "Emergency" in duty.title
    window = duty.due_at - duty.started_at
    assert window == timedelta(hours=settings.BAKKME_LEGAL_EMERGENCY_REFERRAL_HOURS)


def test_a_no_violation_decision_hands_nothing_off(integration, senior, lawyers):
    case = make_report(integration, category="grooming").case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)
    assert not Duty.objects.exists() and not handoffs(lawyers[0]).exists()
    assert not Case.objects.visible_to(lawyers[0]).filter(pk=case.pk).exists()


def test_a_decided_case_can_still_be_handed_to_legal(client, integration, senior, lawyers):
    case = make_report(integration, category="grooming").case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)
    client.force_login(senior)
    page = client.get(reverse("admin:cases_case_change", args=[case.pk])).content.decode()
    assert "Hand to legal" in page
    response = client.post(
        reverse("admin:cases_case_escalate", args=[case.pk]),
        {"to_role": "legal", "reason": "placeholder: a request from the police"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == "decided"
    assert Case.objects.visible_to(lawyers[0]).filter(pk=case.pk).exists()
    with pytest.raises(actions.InvalidTransition):
        actions.escalate_case(case, actor=senior, to_role="senior_reviewer", reason="x")


# --- The desk ------------------------------------------------------------------------------------


def test_legal_staff_land_on_their_desk_and_see_only_their_cases(
    client, integration, senior, lawyers
):
    seen = make_report(integration, category="csam").case
    decide_csam(seen, senior)
    other = UserFactory(username="lou", roles=["legal"])
    hidden = make_report(integration, category="grooming").case
    duties.open_duty(kind=Kind.LE_REFERRAL, title="hidden", started_at=timezone.now(), hours=1,
                     case=hidden)  # fmt: skip
    client.force_login(other)
    assert client.get(reverse("admin:index"))["Location"] == reverse(
        "admin:legal_legalduty_changelist"
    )
    assert client.get(reverse("admin:index") + "?sections=all").status_code == 200
    desk = client.get(reverse("admin:legal_legalduty_changelist"))
    assert {d.case_id for d in desk.context["cl"].result_list} == {seen.pk}
    hidden_duty = Duty.objects.get(case=hidden)
    url = reverse("admin:legal_legalduty_change", args=[hidden_duty.pk])
    assert client.get(url).status_code == 404


def test_filing_and_referring_mark_the_duties_done(integration, senior, lawyers):
    lawyer = lawyers[0]
    case = make_report(integration, category="csam").case
    decide_csam(case, senior)
    referral = LawEnforcementReferral(
        case=case, agency="Placeholder Police", country="US", contact="desk", sent="placeholder"
    )
    legal_actions.save_referral(referral, lawyer)
    done = Duty.objects.get(case=case, kind=Kind.LE_REFERRAL)
    assert done.done_at is not None and done.done_by == lawyer
    report = CyberTiplineReport.objects.get(case=case)
    report.status, report.report_id = CyberTiplineReport.Status.FINISHED, "70001"
    report.save()
    assert duties.complete_cybertip(report, actor=lawyer) == 1
    assert not Duty.objects.filter(case=case, done_at__isnull=True).exists()


def test_a_finished_filing_takes_the_cybertip_duty_off_the_desk(
    integration, senior, lawyers, ncmec
):
    case = make_report(integration, category="csam", surface="image").case
    decide_csam(case, senior)
    duty = Duty.objects.get(case=case, kind=Kind.CYBERTIP_REPORT)
    report = legal_actions.file_report(case, lawyers[0])
    assert report.status == CyberTiplineReport.Status.FINISHED
    duty.refresh_from_db()
    assert duty.done_at is not None and duty.done_by == lawyers[0]
    assert report.report_id in duty.done_note


def test_a_package_sits_on_the_desk_until_its_requester_downloads_it(
    integration, cso, django_capture_on_commit_callbacks
):
    report = make_report(integration, category="grooming")
    vault.collect(io.BytesIO(pattern_png(seed=42)), case=report.case, report=report)
    with django_capture_on_commit_callbacks(execute=True):
        package = packages.request_package(report.case, cso, "placeholder", "Placeholder Police")
    duty = Duty.objects.get(package=package)
    assert duty.kind == Kind.PACKAGE and duty.done_at is None
    package.refresh_from_db()
    b"".join(packages.open_download(package, cso))
    duty.refresh_from_db()
    assert duty.done_at is not None and duty.done_by == cso


# --- Law-enforcement requests ----------------------------------------------------------------


def test_a_request_is_due_by_its_type_and_done_when_answered(integration, lawyers, cso):
    lawyer = lawyers[0]
    case = make_report(integration, category="grooming").case
    actions.grant_to_legal(case, actor=cso, reason="placeholder")
    request = LawEnforcementRequest(
        agency="Placeholder Police", process_type="emergency_disclosure", received_on=date.today()
    )
    legal_actions.save_request(request, lawyer, cases=[case])
    hours = settings.BAKKME_LE_REQUEST_RESPONSE_HOURS["emergency_disclosure"]
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert request.due_at == midnight + timedelta(hours=hours)
    duty = Duty.objects.get(le_request=request)
    assert duty.emergency and duty.case == case and duty.due_at == request.due_at
    request.responded_on = date.today()
    legal_actions.save_request(request, lawyer)
    duty.refresh_from_db()
    assert duty.done_at is not None


def test_a_request_naming_a_case_legal_cannot_see_stays_off_their_desk(integration, lawyers, cso):
    hidden = make_report(integration, category="grooming").case
    request = LawEnforcementRequest(
        agency="Placeholder Police", process_type="subpoena", received_on=date.today()
    )
    legal_actions.save_request(request, cso, cases=[hidden])
    assert Duty.objects.filter(le_request=request).exists()
    assert not duties.visible_duties(lawyers[0]).exists()
    assert duties.visible_duties(cso).count() == 1


def test_the_regulators_request_types_have_their_own_deadlines(lawyers):
    for kind in ("ofcom_request", "ec_request", "ftc_request", "national_regulator_request"):
        request = LawEnforcementRequest(agency="Regulator", process_type=kind,
                                        received_on=date.today())  # fmt: skip
        legal_actions.save_request(request, lawyers[0])
        hours = settings.BAKKME_LE_REQUEST_RESPONSE_HOURS[kind]
        assert request.due_at - request.due_at.replace(hour=0) <= timedelta(hours=hours)
        assert Duty.objects.get(le_request=request).case is None


# --- The sweep: warned and escalated once each ------------------------------------------------


def test_deadlines_warn_then_breach_once_each_and_tell_the_cso(integration, senior, lawyers, cso):
    case = make_report(integration, category="csam").case
    decide_csam(case, senior)
    duty = Duty.objects.get(case=case, kind=Kind.CYBERTIP_REPORT)
    window = duty.due_at - duty.started_at

    def count(kind, who):
        return Notification.objects.filter(recipient=who, kind=kind).count()

    warning, breach = Notification.Kind.LEGAL_DUTY_WARNING, Notification.Kind.LEGAL_DUTY_BREACH
    with time_machine.travel(duty.started_at + window * 0.6, tick=False):
        assert duties.sweep().warned == 2  # both duties passed their first warning point
        assert duties.sweep().warned == 0  # a second sweep sends nothing more
    assert count(warning, lawyers[0]) == 1 and count(warning, cso) == 0
    # After downtime: one sweep long after the deadline records the breach at the deadline.
    with time_machine.travel(duty.due_at + timedelta(days=3), tick=False):
        first = duties.sweep()
        assert first.breached == 2 and first.warned == 0
        assert duties.sweep().breached == 0
    duty.refresh_from_db()
    assert duty.breached_at == duty.due_at
    assert count(breach, cso) == 1 and count(breach, lawyers[1]) == 1


def test_a_done_duty_is_never_warned(integration, senior, lawyers):
    case = make_report(integration, category="csam").case
    decide_csam(case, senior)
    duties.complete(Duty.objects.filter(case=case), actor=lawyers[0])
    duty = Duty.objects.filter(case=case).first()
    with time_machine.travel(duty.due_at + timedelta(hours=1), tick=False):
        assert duties.sweep().as_dict() == {"warned": 0, "breached": 0, "notified": 0}


def test_the_sweep_runs_as_a_schedule():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="legal-duties")
    assert schedule.func == "legal.tasks.legal_duty_sweep"
    assert schedule.minutes == settings.BAKKME_LEGAL_SWEEP_MINUTES
