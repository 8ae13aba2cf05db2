"""Session limits and the second-factor gate.

- SessionLimitMiddleware: a session ends BAKKME_SESSION_IDLE_MINUTES after its last request and
  BAKKME_SESSION_MAX_HOURS after its login, however busy. The idle limit is also the session's
  own expiry in the database (SESSION_COOKIE_AGE), renewed at most every
  BAKKME_SESSION_TOUCH_SECONDS rather than written on every request.
- VerifiedFactorMiddleware: a logged-in user without a verified second factor is sent from the
  staff pages (BAKKME_FACTOR_REQUIRED_PATHS) to the second-factor pages. Requests with an API
  token are the API's business (DRF), not a staff session.
"""

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from .two_factor import is_verified

LOGIN_AT_SESSION_KEY = "bakkme_login_at"
SEEN_AT_SESSION_KEY = "bakkme_seen_at"


def _now() -> float:
    return timezone.now().timestamp()


def mark_login_time(sender, request, user, **kwargs):
    """user_logged_in: the session's absolute limit counts from here."""
    session = getattr(request, "session", None)
    if session is not None:
        session[LOGIN_AT_SESSION_KEY] = session[SEEN_AT_SESSION_KEY] = _now()


def session_end_reason(session, now: float) -> str:
    """Why the session is over ("session_max_age", "idle"), or "" while it is not."""
    started = session.get(LOGIN_AT_SESSION_KEY)
    if started is None or now - float(started) > settings.BAKKME_SESSION_MAX_HOURS * 3600:
        return "session_max_age"  # no login time: a session from before the limit existed
    seen = session.get(SEEN_AT_SESSION_KEY)
    if seen is not None and now - float(seen) > settings.BAKKME_SESSION_IDLE_MINUTES * 60:
        return "idle"
    return ""


class SessionLimitMiddleware:
    """After AuthenticationMiddleware: logs out a session past its limits, renews the idle one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = _now()
            reason = session_end_reason(request.session, now)
            if reason:
                request.bakkme_logout_reason = reason
                logout(request)
            else:
                seen = request.session.get(SEEN_AT_SESSION_KEY)
                if seen is None or now - float(seen) >= settings.BAKKME_SESSION_TOUCH_SECONDS:
                    # A changed session is saved, with a new expiry SESSION_COOKIE_AGE from now.
                    request.session[SEEN_AT_SESSION_KEY] = now
        return self.get_response(request)


class VerifiedFactorMiddleware:
    """After django_otp's OTPMiddleware: no staff page without a verified second factor."""

    def __init__(self, get_response):
        self.get_response = get_response

    @cached_property
    def exempt_paths(self) -> tuple[str, ...]:
        return (
            reverse("admin:login"),
            reverse("admin:logout"),
            reverse("two_factor:verify"),
            reverse("two_factor:enrol"),
            reverse("two_factor:logout"),
        )

    def needs_factor(self, request) -> bool:
        path = request.path_info
        if not path.startswith(tuple(settings.BAKKME_FACTOR_REQUIRED_PATHS)):
            return False
        if path in self.exempt_paths:
            return False
        if request.headers.get("Authorization", "").startswith("Token "):
            return False  # the platform's API token: DRF authenticates it, no session involved
        user = request.user
        return user.is_authenticated and not is_verified(user)

    def __call__(self, request):
        if self.needs_factor(request):
            return redirect_to_login(request.get_full_path(), reverse("two_factor:verify"))
        return self.get_response(request)
