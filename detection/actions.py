"""The detection app's state changes: reviewing a detection (README "Detection")."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bakkme_safety import policy
from cases.actions import InvalidTransition, lock_case, record_event, undo_automatic_actions
from cases.models import Case, CaseEvent

from . import banevasion
from .models import Detection, DetectionMethod, HashEntry

Outcome = Detection.Outcome
REVIEW_PERMISSION = "detection.review_detection"


def _content_id(detection: Detection) -> str:
    item = detection.item
    if item is not None and item.report_id:
        return item.report.content_platform_id or detection.case.content_platform_id
    return detection.case.content_platform_id


def review_detection(detection: Detection, *, actor, confirmed: bool) -> Detection:
    """A senior reviewer (or the CSO) confirms or overturns a pending detection, on a case they
    may see (a reviewer whose CSAE training expired may not: Child Safety Standards §9.2).

    Overturning a hash detection counts a false positive against its bank entry and undoes the
    automatic actions on that content (cases.actions.apply_csam_hash_match) unless another hash
    detection on the same content still stands. Overturning a ban-evasion detection undoes its
    automatic termination; confirming one lists the evading account's identifiers in turn.
    """
    if not actor.has_perm(REVIEW_PERMISSION):
        raise PermissionDenied("You may not review detections.")
    with transaction.atomic():
        case = lock_case(detection.case)
        if not Case.objects.visible_to(actor).filter(pk=case.pk).exists():
            # Outside the person's cases (e.g. their CSAE training expired): as if missing.
            raise PermissionDenied("No such detection.")
        detection = (
            Detection.objects.select_for_update(of=("self",))
            .select_related("item__report", "case")
            .get(pk=detection.pk)
        )
        if detection.outcome != Outcome.PENDING:
            raise InvalidTransition(
                f"This detection was {detection.get_outcome_display().lower()}."
            )
        detection.outcome = Outcome.CONFIRMED if confirmed else Outcome.OVERTURNED
        detection.reviewed_by = actor
        detection.reviewed_at = timezone.now()
        detection.save(update_fields=["outcome", "reviewed_by", "reviewed_at"])
        record_event(
            case,
            CaseEvent.Type.DETECTION_REVIEWED,
            actor,
            detection=detection.pk,
            method=detection.method,
            outcome=detection.outcome,
        )
        if confirmed:
            if detection.method == DetectionMethod.BAN_EVASION:
                banevasion.list_banned_account(case)  # the evading account is banned in turn
            return detection
        if detection.method == DetectionMethod.BAN_EVASION:
            automatic = case.actions.filter(pk=detection.matched.get("action"))
            undo_automatic_actions(case, automatic, actor=actor, content_id="",
                                   detection=detection.pk)  # fmt: skip
            return detection
        if detection.method != DetectionMethod.HASH:
            return detection
        entry_id = detection.matched.get("entry")
        if entry_id:
            HashEntry.objects.filter(pk=entry_id).update(false_positives=F("false_positives") + 1)
        content_id = _content_id(detection)
        others = (
            Detection.objects.filter(case=case, method=DetectionMethod.HASH)
            .exclude(pk=detection.pk)
            .exclude(outcome=Outcome.OVERTURNED)
            .select_related("item__report", "case")
        )
        if any(_content_id(other) == content_id for other in others):
            return detection
        automatic = case.actions.filter(
            decision__isnull=True,
            type__in=policy.csam_match_actions(),
            content_platform_id=content_id,
        )
        undo_automatic_actions(case, automatic, actor=actor, content_id=content_id,
                               detection=detection.pk)  # fmt: skip
    return detection
