import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases import actions
from cases.models import Case, Decision, EnforcementAction

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin:cases_case_changelist")


def case_url(case):
    return reverse("admin:cases_case_change", args=[case.pk])


@pytest.fixture
def moderator(db):
    """General-queue staff without the child-safety permission."""
    group, _ = Group.objects.get_or_create(name="general-moderators")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="cases", codename__in=["view_case", "claim_case"]
        )
    )
    return UserFactory(username="mo", roles=["general-moderators"])


def login(client, user):
    client.force_login(user)
    return client


def test_the_queue_lists_open_cases_most_urgent_first(client, reviewer, integration):
    other = make_report(integration, category="other").case
    danger = make_report(integration, category="imminent_danger").case
    grooming = make_report(integration, category="grooming").case
    response = login(client, reviewer).get(QUEUE)
    assert response.status_code == 200
    listed = [c.pk for c in response.context["cl"].result_list]
    assert listed == [danger.pk, grooming.pk, other.pk]
    assert b"Next case" in response.content
    assert b"sla-green" in response.content


def test_a_reviewer_without_the_child_safety_permission_never_sees_child_safety_cases(
    client, moderator, integration
):
    plain = make_report(integration, category="other", reported_account={"platform_id": "u-p"})
    secret = make_report(integration, category="grooming", reported_account={"platform_id": "u-cs"})
    login(client, moderator)

    listed = [c.pk for c in client.get(QUEUE).context["cl"].result_list]
    assert listed == [plain.case_id]
    assert client.get(case_url(secret.case)).status_code == 404
    assert client.get(QUEUE, {"q": "u-cs"}).context["cl"].result_list.count() == 0
    assert list(client.get(QUEUE, {"q": "u-p"}).context["cl"].result_list) == [plain.case]
    by_content = client.get(QUEUE, {"q": secret.content_platform_id}).context["cl"]
    assert by_content.result_list.count() == 0
    assert client.post(reverse("admin:cases_case_decide", args=[secret.case_id])).status_code == 404


def test_search_finds_a_case_by_account_username_or_content_id(client, reviewer, integration):
    report = make_report(
        integration,
        reported_account={"platform_id": "u-77", "username": "PlaceholderName"},
        content={"platform_id": "m-77", "type": "message", "text": "placeholder"},
    )
    make_report(
        integration,
        reported_account={"platform_id": "u-77"},
        content={"platform_id": "m-78", "type": "message", "text": "placeholder"},
    )  # a later report on the same account
    make_report(integration)  # another case that must not match
    login(client, reviewer)
    for term in ["u-77", "placeholdername", "PLACEHOLDERNAME", "m-77", "m-78", " u-77 "]:
        changelist = client.get(QUEUE, {"q": term}).context["cl"]
        assert list(changelist.result_list) == [report.case]
        assert changelist.result_count == 1  # "1 case", not an estimate of the whole queue
    assert not client.get(QUEUE, {"q": "u-7"}).context["cl"].result_list.exists()


def test_the_assignee_filter_offers_the_people_holding_a_case(client, reviewer, integration):
    idle = UserFactory(username="idle", roles=["reviewer"])
    make_report(integration)
    actions.claim_next_case(reviewer)
    response = login(client, idle).get(QUEUE)
    (assignee_filter,) = [f for f in response.context["cl"].filter_specs if f.title == "assignee"]
    assert [label for _, label in assignee_filter.lookup_choices] == ["rita"]


def test_the_queue_runs_the_same_few_queries_at_any_size(client, reviewer, integration):
    login(client, reviewer)
    for _ in range(3):
        make_report(integration)
    client.get(QUEUE)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as small:
        assert client.get(QUEUE).status_code == 200
    for _ in range(40):
        make_report(integration)
    Case.objects.filter(pk__in=Case.objects.values("pk")[:10]).update(assignee=reviewer)
    with CaptureQueriesContext(connection) as large:
        assert client.get(QUEUE).status_code == 200
    assert len(large) == len(small)
    assert len(large) <= 15
    # No count of the whole table (show_full_result_count is off): only the filtered page's.
    assert not any(
        q["sql"] == 'SELECT COUNT(*) AS "__count" FROM "cases_case"' for q in large.captured_queries
    )


def test_next_case_opens_the_most_urgent_case_for_the_reviewer(client, reviewer, integration):
    make_report(integration, category="other")
    urgent = make_report(integration, category="imminent_danger").case
    login(client, reviewer)
    assert client.get(reverse("admin:cases_case_next")).status_code == 405
    response = client.post(reverse("admin:cases_case_next"))
    assert response.status_code == 302
    assert response["Location"] == case_url(urgent)
    urgent.refresh_from_db()
    assert urgent.assignee == reviewer and urgent.state == "in_review"


def test_next_case_on_an_empty_queue_says_so(client, reviewer):
    response = login(client, reviewer).post(reverse("admin:cases_case_next"), follow=True)
    assert b"The queue is empty" in response.content


def test_the_case_page_shows_reports_account_and_timeline(client, reviewer, integration):
    report = make_report(
        integration, reported_account={"platform_id": "u-5", "username": "placeholder5"}
    )
    response = login(client, reviewer).get(case_url(report.case))
    assert response.status_code == 200
    body = response.content.decode()
    assert "placeholder5" in body and "u-5" in body
    assert "Report added" in body and "Case created" in body
    assert "reporter-contact-7" not in body  # the reporter's contact is for those who need it


def test_the_reporters_contact_is_shown_to_senior_reviewers(client, senior, integration):
    report = make_report(integration)
    body = login(client, senior).get(case_url(report.case)).content.decode()
    assert "reporter-contact-7" in body


def test_deciding_shows_the_actions_first_then_creates_them_on_confirmation(
    client, reviewer, integration
):
    make_report(integration, category="csam")
    login(client, reviewer)
    case = Case.objects.get(pk=actions.claim_next_case(reviewer).pk)
    url = reverse("admin:cases_case_decide", args=[case.pk])
    form = {"violation": "csam_distribution", "rationale": "placeholder rationale"}

    confirm = client.post(url, form)
    assert confirm.status_code == 200
    body = confirm.content.decode()
    for label in ["Remove content", "Permanent ban", "NCMEC", "Law-enforcement referral"]:
        assert label.lower() in body.lower()
    assert not Decision.objects.exists()

    done = client.post(url, {**form, "confirm": "yes"})
    assert done.status_code == 302
    case.refresh_from_db()
    assert case.state == "decided"
    assert EnforcementAction.objects.filter(case=case).count() == 4


def test_an_incomplete_decision_is_shown_back_with_the_field_error(client, senior, integration):
    case = make_report(integration).case
    response = login(client, senior).post(
        reverse("admin:cases_case_decide", args=[case.pk]),
        {"violation": "sexualizing_minors", "rationale": "placeholder", "confirm": "yes"},
    )
    assert response.status_code == 200
    assert "Say how severe it is" in response.content.decode()
    assert not Decision.objects.exists()


def test_a_reviewer_who_does_not_hold_the_case_is_told_to_claim_it(client, reviewer, integration):
    case = make_report(integration).case
    login(client, reviewer)
    assert "Claim this case" in client.get(case_url(case)).content.decode()
    response = client.post(
        reverse("admin:cases_case_decide", args=[case.pk]),
        {"violation": "grooming", "rationale": "placeholder", "confirm": "yes"},
        follow=True,
    )
    assert "Claim the case first" in response.content.decode()
    assert not Decision.objects.exists()


def test_escalating_to_legal_from_the_case_page(client, reviewer, legal, integration):
    case = make_report(integration).case
    login(client, reviewer)
    response = client.post(
        reverse("admin:cases_case_escalate", args=[case.pk]),
        {"to_role": "legal", "reason": "needs legal advice"},
    )
    assert response.status_code == 302
    login(client, legal)
    assert client.get(case_url(case)).status_code == 200
    assert [c.pk for c in client.get(QUEUE).context["cl"].result_list] == [case.pk]


def test_an_escalation_without_a_reason_is_refused_with_the_field_error(
    client, reviewer, integration
):
    case = make_report(integration).case
    response = login(client, reviewer).post(
        reverse("admin:cases_case_escalate", args=[case.pk]), {"to_role": "legal", "reason": ""}
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    case.refresh_from_db()
    assert case.state == "new" and not case.escalated_to


def test_notes_are_added_and_shown(client, reviewer, integration):
    case = make_report(integration).case
    login(client, reviewer)
    client.post(reverse("admin:cases_case_note", args=[case.pk]), {"text": "placeholder note"})
    assert "placeholder note" in client.get(case_url(case)).content.decode()


def test_an_auditor_reads_cases_but_gets_no_forms(client, auditor, integration):
    case = make_report(integration).case
    body = login(client, auditor).get(case_url(case)).content.decode()
    assert "Review the actions" not in body and "Escalate</button>" not in body
    assert "Next case" not in login(client, auditor).get(QUEUE).content.decode()


def test_legal_sees_only_cases_granted_to_them(client, legal, integration):
    make_report(integration)
    response = login(client, legal).get(QUEUE)
    assert response.status_code in (200, 403)
    if response.status_code == 200:
        assert response.context["cl"].result_list.count() == 0


def test_the_case_history_names_the_reviewer(client, reviewer, integration):
    case = make_report(integration).case
    login(client, reviewer)
    client.post(reverse("admin:cases_case_next"))
    response = client.get(reverse("admin:cases_case_history", args=[case.pk]))
    assert response.status_code == 200
    assert "rita" in response.content.decode()


def test_a_staff_member_without_a_role_cannot_open_the_queue(client):
    response = login(client, UserFactory()).get(QUEUE)
    assert response.status_code == 403
