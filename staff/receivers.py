"""The staff app's answers to what is announced below it and by django-axes (connected in
StaffConfig.ready): the login-spray check after each failed login, and lockouts in the audit
trail with what was locked."""

from axes.signals import user_locked_out
from django.conf import settings

from audit import signals as audit_signals
from audit.actions import record_about_username
from audit.models import AuditEvent

from .lockout import lockout_state
from .login_spray import detect_login_spray


def on_failed_login_recorded(sender, *, event, request, **kwargs) -> None:
    detect_login_spray(username=event.object_repr, ip=event.ip, request=request)


def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    detail = {"cooloff_minutes": settings.BAKKME_LOGIN_COOLOFF_MINUTES}
    if request is not None:
        state = lockout_state(request, getattr(request, "axes_credentials", None))
        detail.update(
            locked=state.locked,  # what is locked: username_at_address, address, username
            failures=state.nearest.failures,
            failure_limit=state.nearest.limit,
        )
    record_about_username(AuditEvent.Action.LOCKOUT, username, request, **detail)


def connect() -> None:
    audit_signals.failed_login_recorded.connect(
        on_failed_login_recorded, dispatch_uid="staff_failed_login"
    )
    user_locked_out.connect(on_locked_out, dispatch_uid="staff_lockout")
