import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bakkme_safety.policy import Priority
from cases import actions
from cases.models import Case, CaseEvent
from reports.actions import create_integration
from reports.models import Report

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db


def test_next_case_gives_the_most_urgent_first_then_the_earliest_due(reviewer, integration):
    now = timezone.now()
    other = make_report(integration, category="other")
    late_p1 = make_report(
        integration, category="grooming", received_at=(now - timedelta(minutes=5)).isoformat()
    )
    early_p1 = make_report(
        integration, category="csam", received_at=(now - timedelta(hours=3)).isoformat()
    )
    p0 = make_report(integration, category="imminent_danger")

    order = [actions.claim_next_case(reviewer).pk for _ in range(4)]
    assert order == [p0.case_id, early_p1.case_id, late_p1.case_id, other.case_id]
    assert actions.claim_next_case(reviewer) is None


def test_a_claimed_case_is_in_review_held_by_the_reviewer_and_on_the_timeline(
    reviewer, integration
):
    report = make_report(integration)
    case = actions.claim_next_case(reviewer)
    assert case.pk == report.case_id
    assert case.state == "in_review"
    assert case.assignee == reviewer
    assert reviewer.has_perm(actions.ASSIGNEE_PERMISSION, case)
    assert case.events.filter(type=CaseEvent.Type.CLAIMED, actor=reviewer).exists()


def test_two_reviewers_never_get_the_same_case(reviewer, integration):
    make_report(integration)
    make_report(integration)
    second = UserFactory(roles=["reviewer"])
    a = actions.claim_next_case(reviewer)
    b = actions.claim_next_case(second)
    assert a.pk != b.pk


def test_an_unattended_claim_expires_and_the_case_goes_to_the_next_reviewer(
    settings, reviewer, integration
):
    make_report(integration)
    case = actions.claim_next_case(reviewer)
    other = UserFactory(roles=["reviewer"])
    assert actions.claim_next_case(other) is None

    later = timezone.now() + timedelta(minutes=settings.BAKKME_CLAIM_TIMEOUT_MINUTES + 1)
    taken = actions.claim_next_case(other, now=later)
    assert taken.pk == case.pk
    assert taken.assignee == other
    assert not reviewer.has_perm(actions.ASSIGNEE_PERMISSION, Case.objects.get(pk=case.pk))


def test_a_released_case_goes_back_to_the_queue(reviewer, integration):
    make_report(integration)
    case = actions.claim_next_case(reviewer)
    actions.release_claim(case, actor=reviewer)
    case.refresh_from_db()
    assert case.state == "new" and case.assignee is None
    assert actions.claim_next_case(UserFactory(roles=["reviewer"])).pk == case.pk


def test_escalated_cases_go_to_that_roles_queue_only(reviewer, senior, integration):
    make_report(integration, category="csam")
    case = actions.claim_next_case(reviewer)
    actions.escalate_case(
        case, actor=reviewer, to_role="senior_reviewer", reason="needs a second look"
    )

    assert actions.claim_next_case(UserFactory(roles=["reviewer"])) is None
    assert actions.claim_next_case(senior).pk == case.pk


def test_someone_without_the_queue_permission_cannot_claim(auditor, integration):
    make_report(integration)
    with pytest.raises(actions.PermissionDenied):
        actions.claim_next_case(auditor)


def test_a_reviewer_without_the_child_safety_permission_never_gets_child_safety_cases(integration):
    make_report(integration, category="csam")
    plain = make_report(integration, category="other")
    moderator = UserFactory()
    from django.contrib.auth.models import Permission

    moderator.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_case", "claim_case"], content_type__app_label="cases"
        )
    )
    assert actions.claim_next_case(moderator).pk == plain.case_id
    assert actions.claim_next_case(moderator) is None


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_next_case_calls_get_different_cases():
    """Row locks with SKIP LOCKED on PostgreSQL; serialised writers on SQLite."""
    integration = create_integration("concurrent")[0]
    for _ in range(2):
        make_report(integration)
    reviewers = [UserFactory(roles=["reviewer"]) for _ in range(2)]
    barrier = threading.Barrier(2)
    got, errors = {}, []

    def claim(user):
        try:
            barrier.wait()
            case = actions.claim_next_case(user)
            got[user.pk] = case.pk if case else None
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(got.values())) == 2 and None not in got.values()
    assert set(Case.objects.values_list("assignee", flat=True)) == {u.pk for u in reviewers}


def test_the_queue_is_ordered_by_priority_then_due(integration):
    for category in ["other", "csam", "imminent_danger", "underage_user"]:
        make_report(integration, category=category)
    priorities = list(
        Case.objects.order_by("priority", "due_at").values_list("priority", flat=True)
    )
    assert priorities == [Priority.P0, Priority.P1, Priority.P2, Priority.P3]
    assert Report.objects.count() == 4
