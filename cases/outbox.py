"""The enforcement actions as a kind of the outbox (deliveries/outbox.py): which are due, in
which order, and what the platform gets for each. Registered in CasesConfig.ready.

Removals, suspensions and freezes on P0 and CSAM cases go first, then the oldest. The payload
names the action's account and content only: never anything about the reporter.
"""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q

from deliveries.outbox import DeliveryKind, due

from .models import EnforcementAction


def deliverable_actions():
    """The actions the platform carries out (not the back office's own: CyberTipline, police)."""
    return EnforcementAction.objects.filter(type__in=settings.BAKKME_WEBHOOK_ACTION_TYPES)


def urgency():
    """0 for removals and suspensions on P0 and CSAM cases, 1 for the rest."""
    urgent_case = (
        Q(case__priority__in=settings.BAKKME_WEBHOOK_URGENT_PRIORITIES)
        | Q(case__category__in=settings.BAKKME_WEBHOOK_URGENT_CATEGORIES)
        | Q(decision__violation__in=settings.BAKKME_WEBHOOK_URGENT_VIOLATIONS)
    )
    return models.Case(
        models.When(Q(type__in=settings.BAKKME_WEBHOOK_URGENT_ACTION_TYPES) & urgent_case, then=0),
        default=1,
        output_field=models.IntegerField(),
    )


def due_actions(now: datetime):
    return (
        due(deliverable_actions(), now)
        .annotate(urgency=urgency())
        .order_by("urgency", "created_at", "pk")
    )


def action_idempotency_key(action: EnforcementAction) -> str:
    return f"bakkme-action-{action.pk}"


def action_payload(action: EnforcementAction) -> dict:
    """What the platform gets for an action: never anything about the reporter."""
    return {
        "type": "enforcement_action",
        "action": {
            "id": action.pk,
            "type": action.type,
            "account_platform_id": action.account_platform_id,
            "content_platform_id": action.content_platform_id,
            "restricted_feature": action.restricted_feature,
            "case": action.case_id,
            "created_at": action.created_at.isoformat(),
        },
        "idempotency_key": action_idempotency_key(action),
    }


ACTIONS = DeliveryKind(
    name="enforcement_action",
    model=EnforcementAction,
    due=due_actions,
    payload=action_payload,
    key=action_idempotency_key,
    case_id=lambda action: action.case_id,
    waiting=lambda: deliverable_actions().filter(status="pending"),
    order=0,
)
