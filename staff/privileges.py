"""Who may change whose access: the rules the user admin applies, and the two-person grant of
the privileged roles.

- Nobody changes their own roles, permissions, staff/superuser/active flags or password
  through the user admin (their own password: the password page, which asks for the old one).
- Only superusers edit superusers, set individual permissions, or set other people's passwords.
- Granting a privileged role (the Child Safety Officer, legal, admin) or superuser takes two
  people: one asks (request_privilege), a second who is neither the asker nor the person
  concerned approves (approve_privilege). Each step is in the audit trail; revoking takes one.

Refusals raise PermissionDenied with the reason; the admin answers them with a 403 page that
shows it.
"""

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.actions import record
from audit.models import AuditEvent
from bakkme_safety.roles import PRIVILEGED_ROLES, Role

from .models import PrivilegeRequest

MANAGE_USERS = "auth.change_user"
# The account flags a person never changes on their own account.
OWN_FLAGS = ("is_active", "is_staff", "is_superuser")
Privilege = PrivilegeRequest.Privilege
Status = PrivilegeRequest.Status


def privilege_label(privilege: str) -> str:
    return Privilege(privilege).label


@dataclass(frozen=True)
class UserChange:
    """What an edit of an account would change."""

    flags: dict  # flag -> new value, for the flags that change
    groups_added: frozenset
    groups_removed: frozenset
    permissions_changed: bool

    @property
    def touches_access(self) -> bool:
        return bool(
            self.flags or self.groups_added or self.groups_removed or self.permissions_changed
        )


def check_user_change(editor, target, change: UserChange) -> None:
    """Refuse (PermissionDenied, with the reason) an edit of `target`'s account by `editor`
    that the rules above do not allow."""
    if target.pk is not None and target.pk == editor.pk and change.touches_access:
        raise PermissionDenied(
            "You cannot change your own roles, permissions or account flags: another "
            "administrator does that."
        )
    if target.is_superuser and not editor.is_superuser:
        raise PermissionDenied("Only a superuser edits a superuser's account.")
    if change.flags.get("is_superuser"):
        raise PermissionDenied(
            "Making someone a superuser takes two people: ask for it under Staff → Privilege "
            "requests, and a second superuser approves it."
        )
    if change.permissions_changed and not editor.is_superuser:
        raise PermissionDenied("Only a superuser sets a person's individual permissions.")
    privileged = sorted(set(change.groups_added) & set(PRIVILEGED_ROLES))
    if privileged:
        names = ", ".join(Role(name).label for name in privileged)
        raise PermissionDenied(
            f"Granting {names} takes two people: ask for it under Staff → Privilege requests, "
            "and a second administrator (not the person concerned) approves it."
        )


def check_password_set(editor, target) -> None:
    """Setting a password through the user admin: never one's own (the password page asks for
    the current one), and only a superuser sets someone else's."""
    if target.pk == editor.pk:
        raise PermissionDenied(
            "Change your own password on the password page: it asks for your current one."
        )
    if not editor.is_superuser:
        raise PermissionDenied("Only a superuser sets another person's password.")


def holds_privilege(user, privilege: str) -> bool:
    if privilege == Privilege.SUPERUSER:
        return user.is_superuser
    return user.groups.filter(name=privilege).exists()


def _may_manage(actor, privilege: str, user) -> bool:
    if not actor.has_perm(MANAGE_USERS):
        return False
    # Only superusers touch superusers, and only they make one.
    return actor.is_superuser or not (privilege == Privilege.SUPERUSER or user.is_superuser)


def request_privilege(user, privilege: str, *, actor, reason: str) -> PrivilegeRequest:
    """The first person asks for `user` to get a privileged role (or superuser), with a reason.
    Nothing is granted until a second person approves."""
    if not _may_manage(actor, privilege, user):
        raise PermissionDenied(
            f"You may not ask for {privilege_label(privilege)} for this account."
            if privilege in Privilege.values
            else "You may not ask for this."
        )
    errors = {}
    if privilege not in Privilege.values:
        errors["privilege"] = "Choose a privileged role or superuser."
    elif holds_privilege(user, privilege):
        errors["privilege"] = f"{user.get_username()} already has {privilege_label(privilege)}."
    elif PrivilegeRequest.objects.filter(
        user=user, privilege=privilege, status=Status.PENDING
    ).exists():
        errors["privilege"] = "This was asked for already and waits for approval."
    if not reason.strip():
        errors["reason"] = "Say why this person needs it."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        asked = PrivilegeRequest(
            user=user, privilege=privilege, reason=reason.strip(), requested_by=actor
        )
        asked._history_user = actor
        asked.save()
        record(
            AuditEvent.Action.PRIVILEGE_REQUESTED,
            obj=user,
            actor=actor,
            detail={"request": asked.pk, "privilege": privilege, "reason": asked.reason},
        )
    return asked


def may_decide(actor, asked: PrivilegeRequest) -> bool:
    """Who may approve or reject: a second person who may manage the account (a superuser for
    a superuser), neither the asker nor the person concerned."""
    return (
        asked.status == Status.PENDING
        and actor.pk not in (asked.requested_by_id, asked.user_id)
        and _may_manage(actor, asked.privilege, asked.user)
    )


def _decide(asked: PrivilegeRequest, actor, status: str, note: str) -> PrivilegeRequest:
    asked = PrivilegeRequest.objects.select_for_update().select_related("user").get(pk=asked.pk)
    if asked.status != Status.PENDING:
        raise ValidationError(f"This request was {asked.get_status_display().lower()} already.")
    if actor.pk in (asked.requested_by_id, asked.user_id):
        raise PermissionDenied(
            "A second person decides: not the one who asked, and not the person concerned."
        )
    if not _may_manage(actor, asked.privilege, asked.user):
        raise PermissionDenied("You may not decide this request.")
    asked.status = status
    asked.decided_by = actor
    asked.decided_at = timezone.now()
    asked.decision_note = note.strip()
    asked._history_user = actor
    asked.save()
    return asked


def approve_privilege(asked: PrivilegeRequest, *, actor, note: str = "") -> PrivilegeRequest:
    """The second person approves: the role (or superuser) is granted now, in the same
    transaction as the approval."""
    with transaction.atomic():
        asked = _decide(asked, actor, Status.APPROVED, note)
        user = asked.user
        if asked.privilege == Privilege.SUPERUSER:
            user.is_superuser = True
            user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
        else:
            user.groups.add(Group.objects.get(name=asked.privilege))
        record(
            AuditEvent.Action.PRIVILEGE_APPROVED,
            obj=user,
            actor=actor,
            detail={
                "request": asked.pk,
                "privilege": asked.privilege,
                "requested_by": asked.requested_by.get_username(),
            },
        )
    return asked


def reject_privilege(asked: PrivilegeRequest, *, actor, note: str) -> PrivilegeRequest:
    """The second person refuses, with a reason; nothing is granted."""
    if not note.strip():
        raise ValidationError({"note": "Say why the request is refused."})
    with transaction.atomic():
        asked = _decide(asked, actor, Status.REJECTED, note)
        record(
            AuditEvent.Action.PRIVILEGE_REJECTED,
            obj=asked.user,
            actor=actor,
            detail={"request": asked.pk, "privilege": asked.privilege, "note": asked.decision_note},
        )
    return asked
