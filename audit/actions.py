"""Recording audit events, and reading them back for the CSV export.

record() is the one way in. It takes the request from its caller or, for signals that carry none
(m2m_changed, post_save), from the request being served (simple_history's middleware keeps it),
so a role change made in the admin names the admin who made it. Without a request (migrations,
django-q2 tasks, the shell) the actor is empty: the system.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import chain
from .models import AuditEvent

Action = AuditEvent.Action

_NOT_GIVEN: Any = object()


def current_request():
    """The request being served in this thread, if any (set by simple_history's middleware)."""
    from simple_history.models import HistoricalRecords

    return getattr(HistoricalRecords.context, "request", None)


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind BAKKME_TRUSTED_PROXY_COUNT proxies the entry
    of X-Forwarded-For the nearest trusted proxy added. Also django-axes' AXES_CLIENT_IP_CALLABLE,
    so lockouts and the audit trail see the same address. A forwarded header is never trusted
    without a proxy in front: anyone could write one."""
    if request is None:
        return None
    meta = getattr(request, "META", {})
    count = getattr(settings, "BAKKME_TRUSTED_PROXY_COUNT", 0)
    if count:
        forwarded = [p.strip() for p in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= count:
            return forwarded[-count]
    return meta.get("REMOTE_ADDR") or None


def _person(user):
    User = get_user_model()
    return user if isinstance(user, User) and user.pk is not None else None


def object_fields(obj) -> dict:
    """object_type ("app_label.model"), object_id and object_repr of a model instance."""
    if obj is None:
        return {}
    return {
        "object_type": obj._meta.label_lower,
        "object_id": str(obj.pk),
        "object_repr": str(obj)[:200],
    }


def record(
    action: str,
    *,
    obj=None,
    detail: dict | None = None,
    request=None,
    actor=_NOT_GIVEN,
    actor_name: str | None = None,
    **fields,
) -> AuditEvent:
    """Write one audit event, chained after the last one (audit/chain.py).

    `obj` is what the event is about (a user, a group); `actor` defaults to the request's
    logged-in user (pass None for "the system"). Extra `fields` (object_repr, ...) override
    the ones taken from `obj`.
    """
    request = request if request is not None else current_request()
    if actor is _NOT_GIVEN:
        actor = _person(getattr(request, "user", None))
    actor = _person(actor)
    values = {**object_fields(obj), **fields}
    if actor_name is None:
        actor_name = actor.get_username() if actor else ""
    event = AuditEvent(
        at=timezone.now(),
        action=action,
        actor=actor,
        actor_name=actor_name,
        detail=detail or {},
        ip=_valid_ip(client_ip(request)),
        **values,
    )
    return chain.append(event)


def record_about_username(action: str, username, request, **detail) -> AuditEvent:
    """An event about a login attempt: the account it named (when there is one) is its object,
    and the username tried is kept as given (nobody is logged in to be the actor)."""
    username = str(username or "")[:150]
    User = get_user_model()
    target = (
        User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if username
        else None
    )
    return record(
        action,
        obj=target,
        actor=None,
        request=request,
        object_type=target._meta.label_lower if target else "",
        object_repr=username,
        detail={"username": username, **detail},
    )


def _valid_ip(value):
    if not value:
        return None
    try:
        validate_ipv46_address(value)
    except ValidationError:
        return None
    return value


# --- Reading ------------------------------------------------------------------------------------


def filter_events(
    queryset: QuerySet | None = None,
    *,
    user: str = "",
    object_type: str = "",
    object_id: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet:
    """Events by `user` (the actor: a user id or a username, also of a deleted user), about an
    object (`object_type` such as "auth.user", and/or `object_id`), of one `action`, at or
    after `since` and before `until`. Empty filters match everything."""
    qs = AuditEvent.objects.all() if queryset is None else queryset
    if user:
        match = Q(actor_name=user)
        if user.isdigit():
            match |= Q(actor_id=int(user))
        qs = qs.filter(match)
    if object_type:
        qs = qs.filter(object_type=object_type.lower())
    if object_id:
        qs = qs.filter(object_id=object_id)
    if action:
        qs = qs.filter(action=action)
    if since is not None:
        qs = qs.filter(at__gte=since)
    if until is not None:
        qs = qs.filter(at__lt=until)
    return qs.order_by("at", "pk")


CSV_HEADER = [
    "at",
    "action",
    "actor_id",
    "actor",
    "object_type",
    "object_id",
    "object",
    "ip",
    "detail",
]
# A cell a spreadsheet would read as a formula (a failed login's username is anyone's text).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(events: Iterable[AuditEvent]) -> Iterator[list[str]]:
    yield CSV_HEADER
    for event in events:
        yield [
            _cell(c)
            for c in (
                event.at.isoformat(),
                event.action,
                event.actor_id,
                event.actor_name,
                event.object_type,
                event.object_id,
                event.object_repr,
                event.ip,
                json.dumps(event.detail, sort_keys=True, default=str) if event.detail else "",
            )
        ]


class _Echo:
    """A file-like object whose write() hands back the line: csv.writer without a buffer."""

    def write(self, value):
        return value


def csv_lines(queryset: QuerySet, chunk_size: int = 2000) -> Iterator[str]:
    """The CSV text of `queryset`, line by line, read from the database in chunks."""
    writer = csv.writer(_Echo())
    for row in csv_rows(queryset.iterator(chunk_size=chunk_size)):
        yield writer.writerow(row)
