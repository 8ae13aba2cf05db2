"""Who may reach a case's evidence: the one rule every evidence view, API and task calls.

A person needs the evidence permission (evidence.view_evidenceitem), must see the case at all
(Case.objects.visible_to), and must hold one of: the case's assignment while assigned, a grant
of cases.view_case_evidence on that case (legal staff, with a reason), or that permission for
every case (the CSO). Everyone else is answered 404, so existence is not disclosed.
"""

from django.db import transaction
from django.http import Http404
from guardian.shortcuts import assign_perm, remove_perm

from cases.actions import ASSIGNEE_PERMISSION, record_event
from cases.models import OPEN_STATES, Case, CaseEvent

EVIDENCE_PERMISSION = "evidence.view_evidenceitem"
CASE_EVIDENCE_PERMISSION = "cases.view_case_evidence"


def may_access(user, case: Case) -> bool:
    if not (user.is_authenticated and user.has_perm(EVIDENCE_PERMISSION)):
        return False
    if not Case.objects.visible_to(user).filter(pk=case.pk).exists():
        return False
    if user.has_perm(CASE_EVIDENCE_PERMISSION):  # every case: the CSO
        return True
    if user.has_perm(CASE_EVIDENCE_PERMISSION, case):  # granted this case
        return True
    return (
        case.assignee_id == user.pk
        and case.state in OPEN_STATES
        and user.has_perm(ASSIGNEE_PERMISSION, case)
    )


def case_or_404(user, case_id) -> Case:
    case = Case.objects.filter(pk=case_id).first()
    if case is None or not may_access(user, case):
        raise Http404("No such case.")
    return case


def item_or_404(user, item_id):
    from .models import EvidenceItem

    item = EvidenceItem.objects.select_related("case").filter(pk=item_id).first()
    if item is None or not may_access(user, item.case):
        raise Http404("No such evidence item.")
    return item


def grant(case: Case, user, *, by, reason: str) -> None:
    """Give one member of legal staff the case and its evidence, with a reason on the timeline."""
    if not reason.strip():
        raise ValueError("A grant of evidence access needs a reason.")
    with transaction.atomic():
        assign_perm("cases.view_case", user, case)
        assign_perm(CASE_EVIDENCE_PERMISSION, user, case)
        record_event(case, CaseEvent.Type.EVIDENCE_ACCESS_GRANTED, by, to=user.get_username(),
                     reason=reason)  # fmt: skip


def revoke(case: Case, user, *, by, reason: str = "") -> None:
    with transaction.atomic():
        remove_perm(CASE_EVIDENCE_PERMISSION, user, case)
        remove_perm("cases.view_case", user, case)
        record_event(case, CaseEvent.Type.EVIDENCE_ACCESS_REVOKED, by, to=user.get_username(),
                     reason=reason)  # fmt: skip
