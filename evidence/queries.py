"""Read-side helpers for the evidence pages: who reaches which items, and a reviewer's
preview settings.

`accessible_cases` / `accessible_items` are evidence.access.may_access written as one query,
for lists: the changelist filters with them instead of asking may_access once per row. Both
must answer alike; tests/test_evidence_access.py compares them case by case.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from cases.actions import ASSIGNEE_PERMISSION
from cases.models import OPEN_STATES, Case, CaseGroupObjectPermission, CaseUserObjectPermission

from .access import CASE_EVIDENCE_PERMISSION, EVIDENCE_PERMISSION
from .models import EvidenceItem, PreviewSettings


def _case_object_permission(user, perm: str):
    """A condition on Case rows: `user`, or one of their groups, holds the object permission
    `perm` ("app_label.codename") on the case (django-guardian's direct foreign-key tables)."""
    app_label, codename = perm.split(".")
    wanted = {"permission__codename": codename, "permission__content_type__app_label": app_label}
    by_user = CaseUserObjectPermission.objects.filter(
        content_object=OuterRef("pk"), user=user, **wanted
    )
    by_group = CaseGroupObjectPermission.objects.filter(
        content_object=OuterRef("pk"), group__in=user.groups.all(), **wanted
    )
    return Exists(by_user) | Exists(by_group)


def accessible_cases(user):
    """The cases whose evidence `user` may reach: the rule of evidence.access.may_access."""
    if not (user.is_authenticated and user.has_perm(EVIDENCE_PERMISSION)):
        return Case.objects.none()
    visible = Case.objects.visible_to(user)
    if user.has_perm(CASE_EVIDENCE_PERMISSION):  # every case: the CSO (and superusers)
        return visible
    granted = _case_object_permission(user, CASE_EVIDENCE_PERMISSION)
    held = Q(assignee=user, state__in=OPEN_STATES) & _case_object_permission(
        user, ASSIGNEE_PERMISSION
    )
    return visible.filter(granted | held)


def accessible_items(user):
    """The evidence items `user` may reach (list, preview, download), one query."""
    return EvidenceItem.objects.filter(case__in=accessible_cases(user).values("pk"))


@dataclass(frozen=True)
class PreviewOptions:
    blur_radius: int
    greyscale: bool
    personal: bool  # False: the organisation's defaults


def organisation_preview_options() -> PreviewOptions:
    return PreviewOptions(
        blur_radius=settings.BAKKME_PREVIEW_BLUR_RADIUS,
        greyscale=settings.BAKKME_PREVIEW_GREYSCALE,
        personal=False,
    )


def preview_options(user) -> PreviewOptions:
    """The reviewer's own blur and greyscale, or the organisation's defaults when unset."""
    own = PreviewSettings.objects.filter(user=user).first()
    if own is None:
        return organisation_preview_options()
    return PreviewOptions(blur_radius=own.blur_radius, greyscale=own.greyscale, personal=True)
