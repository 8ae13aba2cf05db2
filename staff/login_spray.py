"""Login sprays: many usernames failing from one address, or one username from many addresses.

The lockouts (staff.lockout) stop a spray; this tells the Child Safety Officer that one
is happening, from the failed logins the audit trail already holds. Each spray is recorded as a
`login_spray` audit event and every CSO gets one notification, once per address (or username)
and window however long the spray goes on.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from audit.actions import record
from audit.models import AuditEvent
from bakkme_safety.roles import Role

from .actions import notify_role
from .models import Notification

Action = AuditEvent.Action

ADDRESS = "address"  # one address, many usernames
USERNAME = "username"  # one username, many addresses


def detect_login_spray(*, username: str, ip: str | None, request=None) -> list[AuditEvent]:
    """After a failed login of `username` from `ip`: a spray is BAKKME_LOGIN_SPRAY_USERNAMES
    distinct usernames failing from one address, or one username failing from
    BAKKME_LOGIN_SPRAY_ADDRESSES distinct addresses, within BAKKME_LOGIN_SPRAY_WINDOW_MINUTES.

    A spray not yet alerted within the window is recorded (a `login_spray` audit event) and every
    CSO gets a `login_spray` notification, in one transaction; a spray going on gets one more
    after each window, never one per failed login. Returns the events recorded now.
    """
    now = timezone.now()
    since = now - timedelta(minutes=settings.BAKKME_LOGIN_SPRAY_WINDOW_MINUTES)
    failed = AuditEvent.objects.filter(action=Action.LOGIN_FAILED, at__gte=since).order_by()
    found = []
    if ip and not _alerted(ADDRESS, ip, since):
        usernames = failed.filter(ip=ip).values("object_repr").distinct().count()
        if usernames >= settings.BAKKME_LOGIN_SPRAY_USERNAMES:
            found.append((ADDRESS, ip, usernames))
    if username and not _alerted(USERNAME, username, since):
        addresses = (
            failed.filter(object_repr=username, ip__isnull=False).values("ip").distinct().count()
        )
        if addresses >= settings.BAKKME_LOGIN_SPRAY_ADDRESSES:
            found.append((USERNAME, username, addresses))
    events = []
    for spray, key, count in found:
        event = _alert_once(spray, key, count, since=since, now=now, request=request)
        if event is not None:
            events.append(event)
    return events


def _alerted(spray: str, key: str, since) -> bool:
    return AuditEvent.objects.filter(
        action=Action.LOGIN_SPRAY, at__gte=since, object_repr=key, detail__spray=spray
    ).exists()


def _alert_once(spray, key, count, *, since, now, request) -> AuditEvent | None:
    with transaction.atomic():
        # Two failed logins at once must not both alert: the CSO group's row serialises the
        # check and the alert (on SQLite the IMMEDIATE transaction does).
        list(Group.objects.select_for_update().filter(name=Role.CHILD_SAFETY_OFFICER))
        if _alerted(spray, key, since):
            return None
        event = _record(spray, key, count, request)
        title, body = _message(spray, key, count)
        notify_role(
            Notification.Kind.LOGIN_SPRAY,
            Role.CHILD_SAFETY_OFFICER,
            title=title,
            body=body,
            now=now,
        )
    return event


def _record(spray, key, count, request) -> AuditEvent:
    window = settings.BAKKME_LOGIN_SPRAY_WINDOW_MINUTES
    if spray == ADDRESS:
        detail = {"spray": ADDRESS, "address": key, "usernames": count}
        about = {}
    else:
        detail = {"spray": USERNAME, "username": key, "addresses": count}
        User = get_user_model()
        target = User._default_manager.filter(**{User.USERNAME_FIELD: key}).first()
        about = {"obj": target, "object_type": target._meta.label_lower if target else ""}
    return record(
        Action.LOGIN_SPRAY,
        actor=None,
        request=request,
        object_repr=key,
        detail={**detail, "window_minutes": window},
        **about,
    )


def _message(spray, key, count) -> tuple[str, str]:
    """The notification's title and body. The username is anyone's text: it stays out of the
    title (the e-mail's subject) and is shown as typed in the body, with no line breaks."""
    window = settings.BAKKME_LOGIN_SPRAY_WINDOW_MINUTES
    cooloff = settings.BAKKME_LOGIN_COOLOFF_MINUTES
    where = "Failed logins and lockouts: Audit trail → Audit events."
    if spray == ADDRESS:
        limit = settings.BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT
        return (
            f"Login spray: {count} usernames failed from the address {key}",
            f"In the last {window} minutes, logins failed for {count} different usernames from "
            f"the address {key}. After {limit} failed logins the address is locked for every "
            f"username for {cooloff} minutes. {where}",
        )
    limit = settings.BAKKME_LOGIN_USERNAME_FAILURE_LIMIT
    shown = " ".join(key.split())
    return (
        f"Login spray: one username failed from {count} addresses",
        f"In the last {window} minutes, logins for the username “{shown}” failed from {count} "
        f"different addresses. After {limit} failed logins the username is locked from every "
        f"address for {cooloff} minutes. {where}",
    )
