"""The receivers that put staff access and account changes into the audit trail.

- logins, failed logins (the username tried, never the password), logouts: django.contrib.auth
- lockouts: recorded by staff (staff/receivers.py: what is locked is the lockout handler's)
- login sprays: each failed login recorded is announced (audit.signals.failed_login_recorded);
  staff checks for a spray (staff/login_spray.py)
- second factors: post_save / post_delete of every django-otp device model
- accounts: post_save of the user (created; is_staff, is_active, is_superuser changed)
- roles and permissions: m2m_changed of User.groups, User.user_permissions, Group.permissions
  (from either side: user.groups.add(group) and group.user_set.add(user) alike)
- the staff compliance record: post_save of staff.StaffProfile, for every field whose name
  has "training" or "background" in it (whatever the staff app calls them)

Old values come from the database in pre_save (one query per save of these rare rows).
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from . import signals
from .actions import record, record_about_username
from .models import AuditEvent

Action = AuditEvent.Action
User = get_user_model()

USER_FLAGS = ("is_staff", "is_active", "is_superuser")
COMPLIANCE_KEYWORDS = {"training": Action.TRAINING_UPDATED, "background": Action.BACKGROUND_UPDATED}


def _jsonable(value):
    if isinstance(value, datetime.date | datetime.datetime | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _old_values(instance, names):
    """The stored values of `names` for `instance` (None when it is new)."""
    if instance.pk is None or not names:
        return None
    return type(instance)._default_manager.filter(pk=instance.pk).values(*names).first()


def _touches(update_fields, names) -> bool:
    return update_fields is None or bool(set(update_fields) & set(names))


# --- Logins --------------------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    record(Action.LOGIN, obj=user, actor=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # Only the username tried: Django has already masked the password, and nothing else is kept.
    username = credentials.get(User.USERNAME_FIELD) or credentials.get("username")
    event = record_about_username(Action.LOGIN_FAILED, username, request)
    signals.failed_login_recorded.send(sender=AuditEvent, event=event, request=request)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is None:
        return
    reason = getattr(request, "bakkme_logout_reason", "") or "logout"
    record(Action.LOGOUT, obj=user, actor=user, request=request, detail={"reason": reason})


# --- Second factors ------------------------------------------------------------------------------


def _device_pre_save(sender, instance, **kwargs):
    old = _old_values(instance, ["confirmed"])
    instance._audit_was_confirmed = bool(old and old["confirmed"])


def _device_detail(device) -> dict:
    return {"device": device._meta.label_lower, "name": device.name, "device_id": device.pk}


def _device_post_save(sender, instance, created, **kwargs):
    was = getattr(instance, "_audit_was_confirmed", False)
    if instance.confirmed and not was:
        record(Action.FACTOR_ENROLLED, obj=instance.user, detail=_device_detail(instance))
    elif was and not instance.confirmed:
        record(
            Action.FACTOR_REMOVED,
            obj=instance.user,
            detail={**_device_detail(instance), "disabled": True},
        )
    instance._audit_was_confirmed = instance.confirmed


def _device_post_delete(sender, instance, **kwargs):
    if not instance.confirmed:
        return  # an enrolment never finished: no factor was removed
    user = User._default_manager.filter(pk=instance.user_id).first()
    if user is None:
        return  # the user is being deleted with their devices
    record(Action.FACTOR_REMOVED, obj=user, detail=_device_detail(instance))


# --- Accounts, roles and permissions ------------------------------------------------------------


@receiver(pre_save, sender=User, dispatch_uid="audit_user_pre_save")
def _user_pre_save(sender, instance, update_fields=None, raw=False, **kwargs):
    if raw or not _touches(update_fields, USER_FLAGS):
        instance._audit_old_flags = None
        return
    instance._audit_old_flags = _old_values(instance, list(USER_FLAGS))


@receiver(post_save, sender=User, dispatch_uid="audit_user_post_save")
def _user_post_save(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    if created:
        record(
            Action.USER_CREATED,
            obj=instance,
            detail={flag: getattr(instance, flag) for flag in USER_FLAGS},
        )
        return
    old = getattr(instance, "_audit_old_flags", None)
    if not old:
        return
    changes = {
        flag: [old[flag], getattr(instance, flag)]
        for flag in USER_FLAGS
        if old[flag] != getattr(instance, flag)
    }
    if changes:
        record(Action.USER_CHANGED, obj=instance, detail={"changes": changes})
    instance._audit_old_flags = None


def _names(model, pks) -> list[str]:
    if model is Group:
        return sorted(model.objects.filter(pk__in=pks).values_list("name", flat=True))
    if model is Permission:
        return sorted(
            f"{app}.{codename}"
            for app, codename in model.objects.filter(pk__in=pks).values_list(
                "content_type__app_label", "codename"
            )
        )
    return sorted(str(o) for o in model._default_manager.filter(pk__in=pks))


def _m2m_receiver(action_name, owner_model, field_name):
    """A receiver for the m2m field `owner_model.field_name`: one event per owner changed."""
    through = getattr(owner_model, field_name).through

    def changed(sender, instance, action, reverse, model, pk_set, **kwargs):
        if action == "pre_clear":
            # What is about to go: clear() sends no pk_set afterwards.
            related = getattr(instance, _accessor(owner_model, field_name, reverse))
            instance._audit_cleared = set(related.values_list("pk", flat=True))
            return
        if action not in ("post_add", "post_remove", "post_clear"):
            return
        if action == "post_clear":
            pk_set = getattr(instance, "_audit_cleared", set())
        if not pk_set:
            return
        key = "added" if action == "post_add" else "removed"
        if not reverse:
            # instance is the owner (a user, a group); pk_set the related rows.
            record(action_name, obj=instance, detail={key: _names(model, pk_set)})
        else:
            # instance is the related row (a group, a permission); pk_set the owners.
            label = _names(type(instance), [instance.pk])
            for owner in owner_model._default_manager.filter(pk__in=pk_set):
                record(action_name, obj=owner, detail={key: label})

    m2m_changed.connect(changed, sender=through, weak=False, dispatch_uid=f"audit_{through}")


def _accessor(owner_model, field_name, reverse) -> str:
    field = owner_model._meta.get_field(field_name)
    if not reverse:
        return field_name
    return field.remote_field.get_accessor_name() or field.related_query_name()


_m2m_receiver(Action.ROLE_CHANGED, User, "groups")
_m2m_receiver(Action.PERMISSION_CHANGED, User, "user_permissions")
_m2m_receiver(Action.PERMISSION_CHANGED, Group, "permissions")


# --- Staff compliance records (training, background checks) -----------------------------------


def compliance_fields(model) -> dict[str, str]:
    """{field attname: audit action} for the fields of `model` about training or background."""
    found = {}
    for field in model._meta.concrete_fields:
        for keyword, action in COMPLIANCE_KEYWORDS.items():
            if keyword in field.name:
                found[field.attname] = action
    return found


def _profile_pre_save(sender, instance, update_fields=None, raw=False, **kwargs):
    fields = compliance_fields(sender)
    if raw or not fields or not _touches(update_fields, fields):
        instance._audit_old_compliance = None
        return
    instance._audit_old_compliance = _old_values(instance, list(fields)) or {}


def _profile_post_save(sender, instance, created, raw=False, **kwargs):
    old = getattr(instance, "_audit_old_compliance", None)
    instance._audit_old_compliance = None
    if raw or old is None:
        return
    by_action: dict[str, dict] = {}
    for attname, action in compliance_fields(sender).items():
        new_value = getattr(instance, attname, None)
        if created or attname not in old:
            if not new_value or new_value == _default(sender, attname):
                continue
            old_value = None
        else:
            old_value = old[attname]
            if old_value == new_value:
                continue
        by_action.setdefault(action, {})[attname] = [_jsonable(old_value), _jsonable(new_value)]
    user = getattr(instance, "user", None)
    for action, changes in by_action.items():
        record(
            action,
            obj=user,
            detail={
                "changes": changes,
                "record": instance._meta.label_lower,
                "record_id": instance.pk,
            },
        )


def _default(model, attname):
    field = next(f for f in model._meta.concrete_fields if f.attname == attname)
    return field.get_default()


def connect_model_receivers():
    """Receivers for models of other apps, connected once all apps are loaded."""
    from django_otp.models import Device

    for model in apps.get_models():
        if issubclass(model, Device):
            uid = model._meta.label_lower
            pre_save.connect(_device_pre_save, sender=model, dispatch_uid=f"audit_pre_{uid}")
            post_save.connect(_device_post_save, sender=model, dispatch_uid=f"audit_post_{uid}")
            post_delete.connect(_device_post_delete, sender=model, dispatch_uid=f"audit_del_{uid}")
    if apps.is_installed("staff"):
        profile = apps.get_model("staff", "StaffProfile")
        pre_save.connect(_profile_pre_save, sender=profile, dispatch_uid="audit_profile_pre")
        post_save.connect(_profile_post_save, sender=profile, dispatch_uid="audit_profile_post")


connect_model_receivers()
