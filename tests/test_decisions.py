import pytest
from django.core.exceptions import PermissionDenied

from bakkme_safety.policy import ActionType
from cases import actions
from cases.actions import DecisionInput, InvalidTransition
from cases.models import Case, CaseEvent, EnforcementAction

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

POLICY_ACTIONS = [
    ("csam_distribution", {}, ["remove_content", "permanent_ban", "ncmec_report",
                              "law_enforcement_referral"]),
    ("grooming", {}, ["remove_content", "permanent_ban", "law_enforcement_referral"]),
    ("grooming", {"enticement": True}, ["remove_content", "permanent_ban",
                                        "law_enforcement_referral", "ncmec_report"]),
    ("sexualizing_minors", {"severity": "low"}, ["remove_content", "warn"]),
    ("sexualizing_minors", {"severity": "high"}, ["remove_content", "permanent_ban"]),
    ("underage_user", {}, ["suspend_account", "delete_account_data"]),
    ("age_restricted_feature", {"restricted_feature": "live_streaming"}, ["restrict_feature"]),
    ("no_violation", {}, []),
]  # fmt: skip


@pytest.mark.parametrize(("violation", "extra", "expected"), POLICY_ACTIONS)
def test_a_decision_creates_exactly_the_policys_actions_pending(
    senior, integration, violation, extra, expected
):
    report = make_report(integration, category="grooming")
    case = Case.objects.get(pk=report.case_id)

    actions.decide_case(
        case, DecisionInput(violation=violation, rationale="placeholder", **extra), actor=senior
    )

    created = EnforcementAction.objects.filter(case=case)
    assert sorted(a.type for a in created) == sorted(expected)
    assert {a.status for a in created} <= {"pending"}
    assert {a.account_platform_id for a in created} <= {case.account_platform_id}
    case.refresh_from_db()
    assert case.state == "decided"


def test_the_actions_follow_the_policy_table_in_settings(settings, senior, integration):
    table = {**settings.BAKKME_VIOLATION_ACTIONS, "grooming": {"actions": ["warn"]}}
    settings.BAKKME_VIOLATION_ACTIONS = table
    case = make_report(integration).case
    actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    assert list(case.actions.values_list("type", flat=True)) == [ActionType.WARN]


def test_a_restrict_feature_action_names_the_feature(senior, integration):
    case = make_report(integration, category="underage_user").case
    actions.decide_case(
        case,
        DecisionInput("age_restricted_feature", "placeholder", restricted_feature="live_streaming"),
        actor=senior,
    )
    assert case.actions.get().restricted_feature == "live_streaming"


def test_a_reviewer_decides_only_the_case_they_hold(reviewer, integration):
    mine = make_report(integration).case
    other = make_report(integration).case
    claimed = actions.claim_next_case(reviewer)
    assert claimed.pk == mine.pk

    with pytest.raises(PermissionDenied):
        actions.decide_case(other, DecisionInput("grooming", "placeholder"), actor=reviewer)
    actions.decide_case(claimed, DecisionInput("grooming", "placeholder"), actor=reviewer)
    claimed.refresh_from_db()
    assert claimed.state == "decided"
    assert claimed.assignee is None
    assert not reviewer.has_perm(actions.ASSIGNEE_PERMISSION, claimed)


def test_an_auditor_cannot_decide(auditor, integration):
    case = make_report(integration).case
    with pytest.raises(PermissionDenied):
        actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=auditor)
    assert not EnforcementAction.objects.exists()


def test_a_closed_case_cannot_be_decided_and_nothing_is_stored(senior, integration):
    case = make_report(integration).case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)
    actions.close_case(case, actor=senior)
    with pytest.raises(InvalidTransition, match="closed case cannot be decided"):
        actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)
    assert case.decisions.count() == 1
    assert not case.actions.exists()


@pytest.mark.parametrize(
    ("start", "target"),
    [("new", "closed"), ("in_review", "closed"), ("escalated", "new"), ("closed", "decided")],
)
def test_the_state_machine_refuses_what_it_does_not_allow(senior, integration, start, target):
    case = make_report(integration).case
    Case.objects.filter(pk=case.pk).update(state=start)
    case.refresh_from_db()
    with pytest.raises(InvalidTransition):
        actions.transition(case, target, actor=senior)
    case.refresh_from_db()
    assert case.state == start


def test_history_records_the_acting_user(senior, reviewer, integration):
    case = make_report(integration).case
    claimed = actions.claim_next_case(reviewer)
    actions.escalate_case(claimed, actor=reviewer, to_role="senior_reviewer", reason="unsure")
    actions.decide_case(case, DecisionInput("grooming", "placeholder"), actor=senior)

    users = list(case.history.order_by("history_date", "history_id").values_list(
        "history_user__username", "state"
    ))  # fmt: skip
    assert users[0] == (None, "new")  # created by intake, no person
    assert ("rita", "in_review") in users
    assert ("rita", "escalated") in users
    assert users[-1] == ("sam", "decided")
    action = case.actions.first()
    assert action.history.get().history_user == senior
    assert case.decisions.get().history.get().history_user == senior


def test_escalating_to_legal_lets_legal_staff_see_the_case(reviewer, legal, integration):
    from evidence.access import may_access

    case = make_report(integration).case
    assert not Case.objects.visible_to(legal).filter(pk=case.pk).exists()
    assert not may_access(legal, case)
    actions.escalate_case(case, actor=reviewer, to_role="legal", reason="needs legal advice")
    assert Case.objects.visible_to(legal).filter(pk=case.pk).exists()
    assert may_access(legal, case)  # and its evidence: the escalation's reason grants it
    assert actions.claim_next_case(UserFactory(roles=["reviewer"])) is None


def test_a_new_report_on_a_decided_case_reopens_it_with_a_new_window(senior, integration):
    first = make_report(integration, reported_account={"platform_id": "u-1"})
    case = first.case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)

    again = make_report(integration, reported_account={"platform_id": "u-1"}, category="csam")
    case.refresh_from_db()
    assert again.case_id == case.pk
    assert case.state == "new"
    assert case.due_at == again.due_at
    assert case.events.filter(type=CaseEvent.Type.STATE_CHANGED, payload__to="new").exists()


def test_a_report_on_a_closed_subject_opens_a_new_case(senior, integration):
    case = make_report(integration, reported_account={"platform_id": "u-2"}).case
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)
    actions.close_case(case, actor=senior)
    later = make_report(integration, reported_account={"platform_id": "u-2"})
    assert later.case_id != case.pk


def test_the_timeline_merges_everything_in_time_order(senior, reviewer, integration):
    case = make_report(integration).case
    actions.claim_next_case(reviewer)
    actions.add_note(case, actor=reviewer, text="placeholder note")
    actions.escalate_case(case, actor=reviewer, to_role="senior_reviewer", reason="unsure")
    actions.decide_case(case, DecisionInput("underage_user", "placeholder"), actor=senior)

    types = [e.type for e in actions.timeline(case)]
    assert types[:2] == ["created", "report_added"]
    for expected in ["claimed", "note_added", "escalated", "decided", "action_created"]:
        assert expected in types
    assert types.index("note_added") < types.index("escalated") < types.index("decided")
    assert types.count("action_created") == 2
