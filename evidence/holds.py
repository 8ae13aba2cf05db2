"""Legal holds: nothing under an active hold is deleted.

A hold names a case (all its evidence), an account (the evidence of every case about that
platform account) or chosen items; it has a reason, an authority (an NCMEC report, a
law-enforcement request, litigation), who placed it, and an expiry or none (indefinite).
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from cases.actions import record_event
from cases.models import Case, CaseEvent, sees_every_case
from cases.visibility import visible_case_ids

from . import custody
from .models import CustodyEvent, EvidenceItem, LegalHold

MANAGE_PERMISSION = "evidence.manage_legal_hold"


def active(now: datetime | None = None):
    now = now or timezone.now()
    return LegalHold.objects.filter(released_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def items_under(holds) -> Q:
    """The condition on EvidenceItem for the items these holds cover."""
    holds = list(holds.values_list("pk", "case_id", "account_platform_id"))
    cases = {case_id for _, case_id, _ in holds if case_id}
    accounts = {account for _, _, account in holds if account}
    return (
        Q(holds__in=[pk for pk, _, _ in holds])
        | Q(case_id__in=cases)
        | Q(case__account_platform_id__in=accounts)
    )


def held_items(now: datetime | None = None):
    return EvidenceItem.objects.filter(items_under(active(now))).distinct()


def is_held(item: EvidenceItem, now: datetime | None = None) -> bool:
    return held_items(now).filter(pk=item.pk).exists()


def visible_holds(user):
    """The holds `user` may see, release or read the history of: nothing a hold names may be
    outside the person's cases (Case.objects.visible_to). Its case is visible, each of its items
    belongs to a visible case, and its account is the subject of a visible case (or the person
    placed the hold: an account hold can come before any case about the account)."""
    holds = LegalHold.objects.all()
    if sees_every_case(user):
        return holds
    visible = visible_case_ids(user)
    hidden_item = LegalHold.items.through.objects.filter(legalhold=OuterRef("pk")).exclude(
        evidenceitem__case__in=visible
    )
    account_case = Case.objects.visible_to(user).filter(
        account_platform_id=OuterRef("account_platform_id")
    )
    return (
        holds.filter(Q(case__isnull=True) | Q(case__in=visible))
        .exclude(Exists(hidden_item))
        .filter(Q(account_platform_id="") | Q(placed_by=user) | Exists(account_case))
    )


NO_SUCH_CASE = "No such case."


def no_such_items(ids) -> str:
    return f"No such evidence item: {', '.join(map(str, sorted(ids)))}."


def _covered_ids(hold: LegalHold) -> list[int]:
    return list(
        EvidenceItem.objects.filter(
            items_under(LegalHold.objects.filter(pk=hold.pk)), purged_at__isnull=True
        )
        .values_list("pk", flat=True)
        .distinct()
    )


def place(
    *,
    by,
    reason: str,
    authority: str,
    authority_reference: str = "",
    case: Case | None = None,
    account_platform_id: str = "",
    items=(),
    expires_at: datetime | None = None,
    system: str | None = None,
) -> LegalHold:
    """Place a hold; its items get a "hold placed" custody event. `by` is None only for a hold
    the system places itself (`system` names it, e.g. a CyberTipline filing)."""
    if by is not None and not by.has_perm(MANAGE_PERMISSION):
        raise PermissionDenied("You may not place legal holds.")
    items = list(items)
    errors = {}
    if by is not None:
        # Outside the person's cases a case or an item is answered as if it did not exist.
        visible = Case.objects.visible_to(by)
        if case is not None and not visible.filter(pk=case.pk).exists():
            errors["case"] = NO_SUCH_CASE
        hidden = {item.pk for item in items} - set(
            EvidenceItem.objects.filter(
                pk__in=[item.pk for item in items], case__in=visible.values("pk")
            ).values_list("pk", flat=True)
        )
        if hidden:
            errors["items"] = no_such_items(hidden)
    if not reason.strip():
        errors["reason"] = "Give the reason for the hold."
    if authority not in LegalHold.Authority.values:
        errors["authority"] = "Choose the authority behind the hold."
    if case is None and not account_platform_id.strip() and not items:
        errors["case"] = "A hold names a case, an account or items."
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future (or empty: indefinite)."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        hold = LegalHold(
            case=case,
            account_platform_id=account_platform_id.strip(),
            reason=reason.strip(),
            authority=authority,
            authority_reference=authority_reference.strip(),
            placed_by=by,
            expires_at=expires_at,
        )
        hold._history_user = by
        hold.save()
        if items:
            hold.items.set(items)
        # Lock what the hold covers, so a purge running now either sees the hold or finishes
        # before it (evidence.retention locks the same rows).
        covered = list(
            EvidenceItem.objects.select_for_update()
            .filter(pk__in=_covered_ids(hold))
            .order_by("pk")
        )
        custody.record(
            covered,
            CustodyEvent.Action.HOLD_PLACED,
            actor=by,
            system=system,
            purpose=reason.strip(),
            detail={"hold": hold.pk, "authority": authority, "reference": authority_reference},
        )
        if case is not None:
            record_event(case, CaseEvent.Type.HOLD_PLACED, by, hold=hold.pk, authority=authority)
    return hold


def release(hold: LegalHold, *, by, reason: str) -> LegalHold:
    """Release a hold, with a reason: retention may then destroy what it covered. Only for
    holds the person may see (visible_holds)."""
    if not by.has_perm(MANAGE_PERMISSION):
        raise PermissionDenied("You may not release legal holds.")
    if not visible_holds(by).filter(pk=hold.pk).exists():
        raise PermissionDenied("No such hold.")
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for releasing the hold."})
    with transaction.atomic():
        hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
        if hold.released_at is not None:
            raise ValidationError("This hold was already released.")
        covered = list(EvidenceItem.objects.filter(pk__in=_covered_ids(hold)).order_by("pk"))
        hold.released_at = timezone.now()
        hold.released_by = by
        hold.release_reason = reason.strip()
        hold._history_user = by
        hold.save()
        custody.record(
            covered,
            CustodyEvent.Action.HOLD_RELEASED,
            actor=by,
            purpose=reason.strip(),
            detail={"hold": hold.pk},
        )
        if hold.case_id:
            record_event(hold.case, CaseEvent.Type.HOLD_RELEASED, by, hold=hold.pk)
    return hold
