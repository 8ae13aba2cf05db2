"""Login lockouts (django-axes) with a limit of their own for each thing counted.

Three counts of failed logins within the cool-off, each locked at its own limit:

- one username from one address (`BAKKME_LOGIN_FAILURE_LIMIT`): someone guessing one password;
- one address, whatever the usernames (`BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT`): a spray of many
  usernames from one machine;
- one username, whatever the addresses (`BAKKME_LOGIN_USERNAME_FAILURE_LIMIT`): one account
  guessed from many machines.

django-axes counts by `AXES_LOCKOUT_PARAMETERS` but compares every count with one
`AXES_FAILURE_LIMIT`; its maintainers point to a custom handler for separate limits (axes#661).
So LockoutHandler (AXES_HANDLER) sums each parameter's failures as axes does, and reports the
count nearest its own limit; failure_limit (AXES_FAILURE_LIMIT, which axes lets be a callable)
answers that count's limit. axes' own comparison, failures >= limit, is then true exactly when
one of the counts reached its limit, and the request remembers which (`lockout_state`), for the
lockout page and the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum

# What each lockout parameter counts: its name (in the audit trail and on the lockout page)
# and the setting holding its limit. Keyed by the parameter's field names, sorted.
SCOPES = {
    ("ip_address", "username"): ("username_at_address", "BAKKME_LOGIN_FAILURE_LIMIT"),
    ("ip_address",): ("address", "BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT"),
    ("username",): ("username", "BAKKME_LOGIN_USERNAME_FAILURE_LIMIT"),
}

_REQUEST_ATTRIBUTE = "bakkme_lockout"


@dataclass(frozen=True)
class Count:
    scope: str  # a name from SCOPES
    failures: int
    limit: int

    @property
    def reached(self) -> bool:
        return self.failures >= self.limit


@dataclass(frozen=True)
class LockoutState:
    counts: tuple[Count, ...]

    @property
    def nearest(self) -> Count:
        """The count nearest its limit (the first of equals, in AXES_LOCKOUT_PARAMETERS order);
        when any count reached its limit, this one did."""
        return max(self.counts, key=lambda count: count.failures / count.limit)

    @property
    def locked(self) -> list[str]:
        """The scopes whose count reached its limit."""
        return [count.scope for count in self.counts if count.reached]


def scope_of(parameter) -> tuple[str, int]:
    """(name, limit) of one entry of AXES_LOCKOUT_PARAMETERS."""
    fields = (parameter,) if isinstance(parameter, str) else tuple(parameter)
    try:
        name, limit_setting = SCOPES[tuple(sorted(fields))]
    except KeyError:
        raise ImproperlyConfigured(
            f"AXES_LOCKOUT_PARAMETERS entry {parameter!r} has no limit: one of {list(SCOPES)}"
        ) from None
    return name, max(int(getattr(settings, limit_setting)), 1)


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler, with a limit per lockout parameter (see the module)."""

    def lockout_state(self, request, credentials=None) -> LockoutState:
        """The failures within the cool-off of each lockout parameter, with its limit."""
        parameters = get_lockout_parameters(request, credentials)
        attempts = self.get_user_attempts(request, credentials)  # one queryset per parameter
        counts = []
        for parameter, queryset in zip(parameters, attempts, strict=True):
            name, limit = scope_of(parameter)
            failures = queryset.aggregate(n=Sum("failures_since_start"))["n"] or 0
            counts.append(Count(name, failures, limit))
        return LockoutState(tuple(counts))

    def get_failures(self, request, credentials=None) -> int:
        state = self.lockout_state(request, credentials)
        setattr(request, _REQUEST_ATTRIBUTE, state)
        return state.nearest.failures

    def reset_user_attempts(self, request, credentials=None) -> int:
        """A successful login (AXES_RESET_ON_SUCCESS) clears the failures of that username from
        that address only. Its failures from other addresses, and the other usernames' failures
        from this address, keep counting: otherwise one known password would wipe a spray's
        count, or a distributed guess's."""
        username = get_client_username(request, credentials)
        deleted, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return deleted


def lockout_state(request, credentials=None) -> LockoutState:
    """The counts of this login request: as the handler last computed them for it (it does
    before each check and after each failure), else computed now."""
    state = getattr(request, _REQUEST_ATTRIBUTE, None)
    if state is None:
        state = LockoutHandler().lockout_state(request, credentials)
        setattr(request, _REQUEST_ATTRIBUTE, state)
    return state


def failure_limit(request, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: the limit of the count the handler reported as the failures."""
    return lockout_state(request, credentials).nearest.limit
