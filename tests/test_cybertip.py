"""CyberTipline filing: the XML against NCMEC's XSD, and the whole filing against a local server
that speaks the reporting API (tests/ncmec_server.py). Placeholder data only."""

import io
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cases import actions as case_actions
from cases.actions import DecisionInput
from evidence import vault
from evidence.models import CustodyEvent, EvidenceKind, LegalHold
from evidence.samples import pattern_png
from legal import actions, cybertip_xml
from legal.cybertip_client import CyberTiplineClient, NcmecRejected, NcmecUnavailable
from legal.models import CyberTiplineReport

from . import ncmec_server
from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db
Status = CyberTiplineReport.Status


@pytest.fixture
def ncmec(settings):
    server = ncmec_server.FakeNcmec().start()
    settings.BAKKME_CYBERTIP_URL = server.url
    settings.BAKKME_CYBERTIP_USERNAME = ncmec_server.USERNAME
    settings.BAKKME_CYBERTIP_PASSWORD = ncmec_server.PASSWORD
    settings.BAKKME_CYBERTIP_BACKOFF_SECONDS = 0.001
    settings.BAKKME_CYBERTIP_BACKOFF_MAX_SECONDS = 0.01
    settings.BAKKME_CYBERTIP_TIMEOUT_SECONDS = 5
    settings.BAKKME_CYBERTIP_REPORTER_EMAIL = "safety@bakkme.example"
    settings.BAKKME_CYBERTIP_REPORTER_PHONE = "+1 555 0100"
    yield server
    server.stop()


@pytest.fixture
def filer(db):
    """Legal staff granted the case (the tests grant each case)."""
    return UserFactory(username="lena", roles=["legal"])


def case_with_evidence(integration, cso, filer, *, category="grooming", big=False, **overrides):
    report = make_report(integration, category=category, **overrides)
    case = report.case
    vault.collect(io.BytesIO(pattern_png(seed=1)), case=case, report=report, original_name="a.png")
    blob = (b"placeholder log line\n" * (200_000 if big else 50))[: (4_000_000 if big else 1000)]
    vault.collect(io.BytesIO(blob), case=case, report=report, kind=EvidenceKind.COMMUNICATION_LOG)
    from evidence import access

    access.grant(case, filer, by=cso, reason="placeholder reason")
    return case


def decide(case, violation, senior, **extra):
    case_actions.decide_case(case, DecisionInput(violation, "placeholder", **extra), actor=senior)
    case.refresh_from_db()
    return case


# --- The XML -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "violation",
    [
        "csam_distribution",
        "csam_possession",
        "solicitation_of_minor",
        "ai_generated_csae",
        "grooming",
        "exploitation_facilitation",
    ],
)
def test_the_report_of_each_reportable_violation_validates(
    violation, integration, senior, settings
):
    report = make_report(integration, category="grooming", surface="post")
    case = decide(report.case, violation, senior, enticement=violation == "grooming")
    xml, problems = actions.draft(case)
    assert problems == [], problems
    assert settings.BAKKME_CYBERTIP_INCIDENT_TYPES[violation] in xml
    assert f"<espIdentifier>{case.account_platform_id}</espIdentifier>" in xml
    # The decision's permanent ban is told to NCMEC as a disabled account.
    assert "<accountPermanentlyDisabled" in xml
    assert "<webPageIncident" in xml and report.content_url in xml
    assert ("csamSolicitation" in xml) == (violation == "solicitation_of_minor")


def test_file_details_carry_the_hash_and_generative_ai(integration, senior):
    report = make_report(integration, category="ai_generated_csae", surface="image")
    item = vault.collect(io.BytesIO(pattern_png(seed=2)), case=report.case, report=report)
    case = decide(report.case, "ai_generated_csae", senior)
    xml = cybertip_xml.build_file_details(case, item, report_id="123", file_id="f-1")
    assert cybertip_xml.validate(xml) == []
    assert "<generativeAi>true</generativeAi>" in xml
    assert f'<originalFileHash hashType="MD5">{item.md5}</originalFileHash>' in xml
    assert "<publiclyAvailable>true</publiclyAvailable>" in xml


@pytest.mark.parametrize(
    "category", ["csam", "grooming", "sextortion", "exploitation_trafficking", "imminent_danger"]
)
def test_an_undecided_case_gives_a_valid_draft_from_its_categories(category, integration):
    report = make_report(integration, category=category, surface="chat")
    xml, problems = actions.draft(report.case)
    assert problems == [], problems
    assert "<chatImIncident>" in xml
    # P0 (imminent danger) asks NCMEC to escalate.
    assert ("<escalateToHighPriority>" in xml) == (report.case.priority == 0)


def test_an_invalid_draft_is_refused_field_by_field_and_nothing_is_sent(
    integration, cso, filer, ncmec
):
    # An under-13 user is no CyberTipline incident: the draft has no valid incidentType.
    case = case_with_evidence(integration, cso, filer, category="underage_user")
    _, problems = actions.draft(case)
    assert problems and problems[0].path == "/report/incidentSummary/incidentType"
    assert "incidentType" in problems[0].message
    with pytest.raises(actions.InvalidDraft) as raised:
        actions.file_report(case, filer)
    assert [p.path for p in raised.value.problems] == [p.path for p in problems]
    assert ncmec.calls == []
    assert not CyberTiplineReport.objects.filter(case=case).exists()


def test_a_document_is_checked_again_before_it_is_sent(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer)
    report = actions.request_filing(case, filer, queue=False)
    report.xml = report.xml.replace("<incidentDateTime>", "<incidentDateTime>not a date")
    with pytest.raises(cybertip_xml.InvalidDocument) as raised:
        actions._submit(report, filer, CyberTiplineClient())
    assert raised.value.problems[0].path == "/report/incidentSummary/incidentDateTime"
    assert ncmec.calls == []


# --- The filing ----------------------------------------------------------------------------------


def test_the_whole_filing(ncmec, integration, cso, filer, settings):
    case = case_with_evidence(integration, cso, filer)
    items = list(case.evidence.order_by("pk"))
    report = actions.file_report(case, filer)

    report.refresh_from_db()
    assert report.status == Status.FINISHED and report.report_id in ncmec.reports
    assert ncmec.calls == ["/submit", "/upload", "/upload", "/fileinfo", "/fileinfo", "/finish"]
    files = list(report.files.order_by("item_id"))
    assert [f.item_id for f in files] == [i.pk for i in items]
    for file, item in zip(files, items, strict=True):
        assert file.file_id and file.fileinfo_sent
        assert file.ncmec_md5 == file.md5 == item.md5
        assert ncmec.reports[report.report_id]["files"][file.file_id] == item.md5
    assert ncmec.reports[report.report_id]["state"] == "finished"

    # The 1-year preservation hold, placed by the system under the report id.
    hold = LegalHold.objects.get(authority="ncmec_report", case=case)
    assert report.hold == hold and hold.authority_reference == report.report_id
    assert hold.placed_by is None
    expected = timezone.now() + timedelta(days=settings.BAKKME_NCMEC_HOLD_DAYS)
    assert abs(hold.expires_at - expected) < timedelta(minutes=5)
    # The transfer to NCMEC is a custody event of each item.
    for item in items:
        event = CustodyEvent.objects.get(item=item, action=CustodyEvent.Action.TRANSFER)
        assert event.actor == filer and report.report_id in event.purpose
        assert event.detail["recipient"] == "NCMEC"

    # Filing again changes nothing and sends nothing.
    assert actions.file_report(case, filer).pk == report.pk
    assert ncmec.count("/submit") == 1 and len(ncmec.calls) == 6


def test_a_crash_between_upload_and_finish_resumes_without_a_second_report(
    ncmec, integration, cso, filer, monkeypatch
):
    case = case_with_evidence(integration, cso, filer)

    def crash(report, step):
        if step == "uploaded":
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(actions, "_checkpoint", crash)
    with pytest.raises(RuntimeError):
        actions.file_report(case, filer)
    report = actions.current_report(case)
    assert report.report_id and report.status == Status.UPLOADING
    assert report.files.exclude(file_id="").count() == 1

    monkeypatch.setattr(actions, "_checkpoint", lambda report, step: None)
    again = actions.file_report(case, filer)
    assert again.pk == report.pk and again.report_id == report.report_id
    assert again.status == Status.FINISHED
    assert ncmec.count("/submit") == 1
    assert ncmec.count("/upload") == 2  # each file once
    assert len(ncmec.reports) == 1
    assert CyberTiplineReport.objects.filter(case=case).count() == 1


def test_an_interrupted_submission_is_not_sent_again(ncmec, integration, cso, filer, monkeypatch):
    case = case_with_evidence(integration, cso, filer)

    def crash(client, xml):  # marked "submitting", then the process died before the answer
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(CyberTiplineClient, "submit", crash)
    with pytest.raises(RuntimeError):
        actions.file_report(case, filer)
    monkeypatch.undo()
    report = actions.current_report(case)
    assert report.status == Status.SUBMITTING
    with pytest.raises(actions.FilingError, match="interrupted"):
        actions.file_report(case, filer)
    assert ncmec.calls == []
    # Retracted (no report id: nothing to tell NCMEC), the case can be filed afresh.
    actions.retract(report, filer, reason="placeholder")
    assert actions.file_report(case, filer).status == Status.FINISHED
    assert ncmec.count("/submit") == 1


def test_a_4000_series_error_goes_back_to_legal_and_is_not_retried(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer)
    ncmec.fault("/submit", ("code", 4100, "Validation failed: placeholder field"))
    with pytest.raises(actions.FilingError, match="4100"):
        actions.file_report(case, filer)
    assert ncmec.calls == ["/submit"]
    report = actions.current_report(case)
    assert report.status == Status.FAILED_NEEDS_REVIEW and not report.report_id
    assert "Validation failed: placeholder field" in report.ncmec_message
    assert not LegalHold.objects.filter(case=case, authority="ncmec_report").exists()
    # Legal staff file it again once fixed: a fresh submission.
    assert actions.file_report(case, filer).status == Status.FINISHED


def test_5xx_and_1000_series_are_retried_with_backoff(ncmec, settings):
    settings.BAKKME_CYBERTIP_BACKOFF_SECONDS = 0.5
    settings.BAKKME_CYBERTIP_BACKOFF_MAX_SECONDS = 1.5
    ncmec.fault("/retract", ("http", 503), ("code", 1000, "Server error"), ("http", 502))
    ncmec.reports["7"] = {"files": {}, "described": set(), "state": "open"}
    waits = []
    answer = CyberTiplineClient(sleep=waits.append).retract("7")
    assert answer.code == 0
    assert ncmec.count("/retract") == 4
    assert waits == [0.5, 1.0, 1.5]  # doubling, capped


def test_retries_give_up_after_the_last_attempt(ncmec, integration, cso, filer, settings):
    settings.BAKKME_CYBERTIP_ATTEMPTS = 3
    case = case_with_evidence(integration, cso, filer)
    ncmec.fault("/submit", ("http", 500), ("code", 1100, "Save failed"), ("http", 503))
    with pytest.raises(actions.FilingError, match="HTTP 503"):
        actions.file_report(case, filer)
    assert ncmec.count("/submit") == 3
    assert actions.current_report(case).status == Status.FAILED_NEEDS_REVIEW


def test_a_connection_dropped_in_the_middle_of_an_upload_is_retried(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer, big=True)
    ncmec.fault("/upload", ("drop",))
    report = actions.file_report(case, filer)
    assert report.status == Status.FINISHED
    assert ncmec.count("/upload") == 3  # the dropped one, then each file once
    stored = ncmec.reports[report.report_id]["files"]
    assert sorted(stored.values()) == sorted(case.evidence.values_list("md5", flat=True))


def test_ncmec_md5_must_match_ours(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer)
    ncmec.fault("/upload", ("hash", "0" * 32))
    with pytest.raises(actions.FilingError, match="MD5 mismatch"):
        actions.file_report(case, filer)
    report = actions.current_report(case)
    assert report.status == Status.FAILED_NEEDS_REVIEW
    assert report.files.exclude(file_id="").count() == 0
    assert ncmec.count("/finish") == 0


def test_wrong_credentials_are_not_retried(ncmec, settings):
    settings.BAKKME_CYBERTIP_PASSWORD = "wrong"
    with pytest.raises(NcmecRejected) as raised:
        CyberTiplineClient().finish("1")
    assert raised.value.code == 2000 and ncmec.count("/finish") == 1


def test_an_unreachable_server_is_a_network_error(settings):
    settings.BAKKME_CYBERTIP_ATTEMPTS = 2
    settings.BAKKME_CYBERTIP_BACKOFF_SECONDS = 0.001
    with pytest.raises(NcmecUnavailable, match="network error"):
        CyberTiplineClient(base_url="http://127.0.0.1:9/ispws", timeout=1).finish("1")


def test_retracting_an_unfinished_filing(ncmec, integration, cso, filer, monkeypatch):
    case = case_with_evidence(integration, cso, filer)

    def crash(report, step):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(actions, "_checkpoint", crash)
    with pytest.raises(RuntimeError):
        actions.file_report(case, filer)
    report = actions.retract(actions.current_report(case), filer, reason="placeholder")
    assert report.status == Status.RETRACTED and report.retracted_at
    assert ncmec.reports[report.report_id]["state"] == "retracted"
    with pytest.raises(Exception, match="already retracted"):
        actions.retract(report, filer)


def test_only_staff_who_see_the_case_may_file(ncmec, integration, cso, filer, legal, reviewer):
    case = case_with_evidence(integration, cso, filer)
    for person in (legal, reviewer):  # legal not granted the case; a reviewer cannot file
        with pytest.raises(actions.PermissionDenied):
            actions.file_report(case, person)
    assert ncmec.calls == []


# --- Commands and admin --------------------------------------------------------------------------


def test_cybertip_xml_prints_the_report(integration, senior):
    report = make_report(integration, category="csam", surface="post")
    out = StringIO()
    call_command("cybertip_xml", report.case.pk, stdout=out)
    assert cybertip_xml.validate(out.getvalue().encode()) == []
    assert "Child Pornography" in out.getvalue()


def test_cybertip_file_prints_the_report_id(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer)
    out = StringIO()
    call_command("cybertip_file", case.pk, "--user", filer.username, "--wait", stdout=out)
    report = actions.current_report(case)
    assert out.getvalue().strip() == report.report_id and report.status == Status.FINISHED


def test_cybertip_file_lists_the_validation_errors(ncmec, integration, cso, filer):
    case = case_with_evidence(integration, cso, filer, category="underage_user")
    with pytest.raises(CommandError, match="/report/incidentSummary/incidentType"):
        call_command("cybertip_file", case.pk, "--user", filer.username)
    assert ncmec.calls == []


def test_legal_reviews_the_draft_and_files_it_in_the_admin(
    ncmec, integration, cso, filer, client, django_capture_on_commit_callbacks
):
    case = case_with_evidence(integration, cso, filer)
    client.force_login(filer, otp_verified=True)
    page = client.get(f"/admin/legal/cybertiplinereport/case/{case.pk}/")
    assert page.status_code == 200 and b"The report validates." in page.content
    assert b"&lt;incidentType&gt;" in page.content
    refused = client.post(f"/admin/legal/cybertiplinereport/case/{case.pk}/file/", {})
    assert refused.status_code == 200 and ncmec.calls == []
    with django_capture_on_commit_callbacks(execute=True):  # the filing task runs
        done = client.post(
            f"/admin/legal/cybertiplinereport/case/{case.pk}/file/", {"confirm": "on"}
        )
    report = actions.current_report(case)
    assert done.status_code == 302 and report.status == Status.FINISHED
    page = client.get(f"/admin/legal/cybertiplinereport/{report.pk}/change/")
    assert page.status_code == 200 and report.report_id.encode() in page.content


def test_the_admin_shows_an_invalid_draft_field_by_field(integration, cso, filer, client):
    case = case_with_evidence(integration, cso, filer, category="underage_user")
    client.force_login(filer, otp_verified=True)
    page = client.get(f"/admin/legal/cybertiplinereport/case/{case.pk}/")
    assert b"does not validate" in page.content
    assert b"/report/incidentSummary/incidentType" in page.content


def test_filing_and_referring_complete_the_actions_the_decision_prescribed(
    ncmec, integration, cso, filer, senior
):
    from legal.models import LawEnforcementReferral

    case = decide(case_with_evidence(integration, cso, filer), "csam_distribution", senior)
    pending = dict(case.actions.values_list("type", "status"))
    assert pending["ncmec_report"] == pending["law_enforcement_referral"] == "pending"
    actions.file_report(case, filer)
    referral = LawEnforcementReferral(
        case=case, agency="Placeholder Police", country="US", contact="desk", sent="summary"
    )
    actions.save_referral(referral, filer)
    done = dict(case.actions.values_list("type", "status"))
    assert done["ncmec_report"] == done["law_enforcement_referral"] == "done"
    assert done["remove_content"] == "pending"  # the platform's to carry out (webhooks)
    ncmec_action = case.actions.get(type="ncmec_report")
    assert ncmec_action.history.first().history_user == filer
