"""A legal freeze (Child Safety Standards §6.4: preserve, never tell the subject).

freeze_account() is one action on a case, in one transaction:

1. an enforcement action `freeze_account` for the platform: the account becomes inaccessible,
   nothing is deleted, the subject is not told (delivered like every action, deliveries/outbox.py);
2. a request for the account's records over a period (IP addresses, device identifiers,
   communication logs): a PreservationRequest, delivered to the platform's webhook as its own
   kind, "account_records_request" (RECORDS_REQUESTS, registered in LegalConfig.ready);
3. a legal hold on the account (evidence.holds, authority "legal_freeze").

The platform answers over POST /api/v1/records/ (legal.records). lift_freeze() sends
`unfreeze_account`; the hold and the records stay until legal releases the hold.

What reaches the platform names what to do and what to send back, and nothing of why: no
reason, no category, no case text, no word of NCMEC, law enforcement or preservation. The
reason is in the case's timeline and on the request, never in a payload.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from bakkme_safety.policy import ActionType
from cases.actions import create_action, record_event
from cases.models import Case, CaseEvent, EnforcementAction
from deliveries.outbox import DeliveryKind, due, queue_delivery, requeue
from evidence import holds
from evidence.models import LegalHold

from .models import PreservationRequest

FREEZE_PERMISSION = "legal.freeze_account"
RecordType = PreservationRequest.RecordType
NO_SUCH_CASE = "No such case."


# --- Who may, and what is frozen -----------------------------------------------------------------


def may_freeze(user, case: Case) -> bool:
    """Legal staff and the CSO, on the cases visible to them."""
    return (
        user.has_perm(FREEZE_PERMISSION)
        and Case.objects.visible_to(user).filter(pk=case.pk).exists()
    )


def _check_may(user, case: Case) -> None:
    if not Case.objects.visible_to(user).filter(pk=case.pk).exists():
        raise PermissionDenied(NO_SUCH_CASE)
    if not user.has_perm(FREEZE_PERMISSION):
        raise PermissionDenied("You may not freeze accounts.")


def active_freeze(case: Case) -> PreservationRequest | None:
    """The case's freeze that was not lifted (there is at most one)."""
    return PreservationRequest.objects.filter(case=case, lifted_at__isnull=True).first()


def answering_integration(case: Case):
    """The platform integration that sent the case's first report: it answers the request."""
    report = case.reports.select_related("integration").order_by("received_at", "pk").first()
    return report.integration if report is not None else None


def default_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The period the form proposes: the last BAKKME_LEGAL_FREEZE_DEFAULT_DAYS days."""
    now = now or timezone.now()
    return now - timedelta(days=settings.BAKKME_LEGAL_FREEZE_DEFAULT_DAYS), now


def _errors(case: Case, since, until, reason: str, record_types: list[str]) -> dict:
    errors = {}
    now = timezone.now()
    earliest = now - timedelta(days=settings.BAKKME_API_MAX_PAST_DAYS)
    if since is None:
        errors["since"] = "Give the start of the period."
    elif since < earliest:
        errors["since"] = f"The period cannot start before {earliest:%Y-%m-%d} UTC."
    if until is None:
        errors["until"] = "Give the end of the period."
    elif until > now:
        errors["until"] = "The period ends in the future: the platform has no records of it yet."
    elif since is not None and since >= until:
        errors["until"] = "The period must end after it starts."
    if not reason.strip():
        errors["reason"] = "Give the reason for the freeze (it stays in the back office)."
    unknown = sorted(set(record_types) - set(RecordType.values))
    if not record_types or unknown:
        errors["record_types"] = "Choose the records to ask for."
    if not case.account_platform_id:
        errors["case"] = "This case names no platform account: there is nothing to freeze."
    elif answering_integration(case) is None:
        errors["case"] = "No platform integration sent this case: nobody could answer."
    return errors


# --- Freezing and lifting ------------------------------------------------------------------------


def freeze_account(
    case: Case,
    *,
    actor,
    since: datetime,
    until: datetime,
    reason: str,
    record_types: list[str] | None = None,
) -> PreservationRequest:
    """Freeze the case's account, ask the platform for its records over [since, until] and hold
    it (Child Safety Standards §6.4), all in one transaction: nothing of it stays when a part
    fails. One freeze of a case at a time. The subject is not told: the platform gets the
    action and the request, never the reason (the case's timeline has it)."""
    _check_may(actor, case)
    record_types = list(record_types) if record_types else list(RecordType.values)
    errors = _errors(case, since, until, reason, record_types)
    if errors:
        raise ValidationError(errors)
    reason = reason.strip()
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        if active_freeze(case) is not None:
            raise ValidationError(
                {"case": "The account of this case is frozen already: lift that freeze first."}
            )
        action = create_action(case, ActionType.FREEZE_ACCOUNT, actor=actor, content_platform_id="")
        request = PreservationRequest(
            case=case,
            account_platform_id=case.account_platform_id,
            record_types=[t for t in RecordType.values if t in record_types],
            since=since,
            until=until,
            reason=reason,
            integration=answering_integration(case),
            freeze_action=action,
            requested_by=actor,
        )
        request._history_user = actor
        request.save()
        request.hold = holds.place(
            by=actor,
            reason=f"Legal freeze #{request.pk}: {reason}",
            authority=LegalHold.Authority.LEGAL_FREEZE,
            authority_reference=f"legal freeze #{request.pk}",
            case=case,
            account_platform_id=case.account_platform_id,
        )
        request.save(update_fields=["hold"])
        record_event(
            case,
            CaseEvent.Type.ACCOUNT_FROZEN,
            actor,
            freeze=request.pk,
            action=action.pk,
            hold=request.hold.pk,
            account=case.account_platform_id,
            since=since.isoformat(),
            until=until.isoformat(),
            records=request.record_types,
            reason=reason,
        )
        transaction.on_commit(queue_delivery, robust=True)
    return request


def _cancel_unsent(action: EnforcementAction | None, now: datetime) -> bool:
    """Cancel a freeze action that was never attempted and is not being sent now (then the
    platform never froze the account and there is nothing to lift). Conditional: a run that
    claims it meanwhile is not overtaken."""
    if action is None:
        return False
    return bool(
        EnforcementAction.objects.filter(
            pk=action.pk, status=EnforcementAction.Status.PENDING, attempts=0
        )
        .filter(Q(in_flight_until__isnull=True) | Q(in_flight_until__lte=now))
        .update(status=EnforcementAction.Status.CANCELLED)
    )


def retry_records_request(request: PreservationRequest, *, actor) -> bool:
    """Send a failed records request to the platform again, with who did it on the case's
    timeline. False when it was not failed."""
    if not actor.has_perm(FREEZE_PERMISSION):
        raise PermissionDenied("You may not send legal freeze requests.")
    with transaction.atomic():
        if not requeue(request):
            return False
        record_event(request.case, CaseEvent.Type.DELIVERY_RETRIED, actor,
                     records_request=request.pk)  # fmt: skip
    return True


def lift_freeze(case: Case, *, actor, reason: str) -> PreservationRequest:
    """Lift the case's freeze, with a reason (in the case's timeline, never in the payload):
    `unfreeze_account` goes to the platform, unless the freeze never reached it (then it is
    cancelled) or another case's freeze of the same account still stands (the account stays
    frozen for it). The hold and the records stay: a hold is released on its own, with its own
    reason."""
    _check_may(actor, case)
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for lifting the freeze."})
    reason = reason.strip()
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        request = (
            PreservationRequest.objects.select_for_update()
            .filter(case=case, lifted_at__isnull=True)
            .first()
        )
        if request is None:
            raise ValidationError({"case": "The account of this case is not frozen."})
        now = timezone.now()
        unfreeze = None
        if _cancel_unsent(request.freeze_action, now):
            note = "The freeze had not reached the platform: it was cancelled."
        elif (
            PreservationRequest.objects.filter(
                account_platform_id=request.account_platform_id, lifted_at__isnull=True
            )
            .exclude(pk=request.pk)
            .exists()
        ):
            note = "The account stays frozen: another case's freeze of it stands."
        else:
            unfreeze = create_action(
                case,
                ActionType.UNFREEZE_ACCOUNT,
                actor=actor,
                account_platform_id=request.account_platform_id,
                content_platform_id="",
            )
            note = ""
        request.lifted_at = now
        request.lifted_by = actor
        request.lift_reason = reason
        request.unfreeze_action = unfreeze
        request._history_user = actor
        request.save()
        record_event(
            case,
            CaseEvent.Type.FREEZE_LIFTED,
            actor,
            freeze=request.pk,
            action=unfreeze.pk if unfreeze else None,
            reason=reason,
            **({"text": note} if note else {}),
        )
        transaction.on_commit(queue_delivery, robust=True)
    return request


# --- The request, as the platform's webhook gets it ----------------------------------------------


def records_request_key(request: PreservationRequest) -> str:
    return f"bakkme-records-{request.pk}"


def records_request_payload(request: PreservationRequest) -> dict:
    """What the platform gets: which account's records, which kinds, which period, and where to
    answer. Nothing that says why (no reason, category, case or word of its purpose)."""
    return {
        "type": "account_records_request",
        "request": {
            "id": request.pk,
            "account_platform_id": request.account_platform_id,
            "record_types": list(request.record_types),
            "since": request.since.isoformat(),
            "until": request.until.isoformat(),
            "answer_path": reverse("api:records"),
            "created_at": request.requested_at.isoformat(),
        },
        "idempotency_key": records_request_key(request),
    }


def due_records_requests(now: datetime):
    return due(PreservationRequest.objects.all(), now).order_by("requested_at", "pk")


RECORDS_REQUESTS = DeliveryKind(
    name="account_records_request",
    model=PreservationRequest,
    due=due_records_requests,
    payload=records_request_payload,
    key=records_request_key,
    case_id=lambda request: request.case_id,
    waiting=lambda: PreservationRequest.objects.filter(status=PreservationRequest.Status.PENDING),
    # The platform's "done" means it received the request; the records are the answer.
    confirmed_status=PreservationRequest.Status.SENT,
    order=10,
)
