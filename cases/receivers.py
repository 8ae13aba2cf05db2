"""The cases app's answers to what the lower apps announce (connected in CasesConfig.ready)."""

from staff import signals as staff_signals

from .actions import release_claim
from .models import OPEN_STATES, Case


def on_child_safety_access_lost(sender, *, user, reason, **kwargs) -> list[int]:
    """The child-safety cases the person holds go back to the queue, released as them."""
    held = Case.objects.filter(assignee=user, is_child_safety=True, state__in=OPEN_STATES)
    released = []
    for case in held.order_by("pk"):
        release_claim(case, actor=user, reason=reason)
        released.append(case.pk)
    return released


def connect() -> None:
    staff_signals.child_safety_access_lost.connect(
        on_child_safety_access_lost, dispatch_uid="cases_child_safety_access_lost"
    )
