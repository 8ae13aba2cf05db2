"""What child-safety work needs of a member of staff, and whether they have it now.

Child Safety Standards: the CSAE queue (child-safety cases, their evidence previews and
downloads) needs a current CSAE training (BAKKME_CSAE_TRAINING_VALID_DAYS, about 6 months), an
enhanced background check cleared, and a verified second factor (the admin refuses unverified
sessions as a whole). A person may also leave CSAE duties at any time (StaffProfile.csae_opt_out).

`may_handle_child_safety(user)` is the one answer. Case.objects.visible_to treats a user who fails
it as lacking `cases.view_child_safety_case`, so the queue, case pages, search, "next case" and
the evidence (evidence.access, evidence.queries) follow from that one place.

Training dates are days (the current time zone, UTC): trained on day D, the training expires on
D + valid days and is current before that day. A training that expires within
BAKKME_TRAINING_WARN_DAYS warns. The general child-safety training (annual) is tracked and warned
about the same way; it does not gate the CSAE queue.

Superusers (the technical break-glass account) bypass the rule, as they bypass every permission.

Per request: the staff middleware gives request.user a cache (`_bakkme_cache`); within that
request the profile is read once, however often visible_to asks. Objects without it (services
called directly, tasks, tests) read it afresh each time. Services that change a profile call
`forget(user)`.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import BackgroundCheck, StaffProfile

CACHE_ATTRIBUTE = "_bakkme_cache"

# Short reasons, as a released claim's timeline and the messages give them.
REASON_CSAE_EXPIRED = "CSAE training expired"
REASON_NO_CSAE_TRAINING = "no CSAE training recorded"
REASON_BACKGROUND = "no enhanced background check cleared"
REASON_OPTED_OUT = "left CSAE duties"
REASON_NO_PROFILE = "no staff compliance record"


def enable_request_cache(user) -> None:
    """Cache this user's compliance for the rest of the request (the staff middleware)."""
    if getattr(user, CACHE_ATTRIBUTE, None) is None:
        setattr(user, CACHE_ATTRIBUTE, {})


def forget(user) -> None:
    """Drop what the request cache knows about this user (after their profile changed)."""
    cache = getattr(user, CACHE_ATTRIBUTE, None)
    if cache is not None:
        cache.clear()


def _cached(user, key, compute):
    cache = getattr(user, CACHE_ATTRIBUTE, None)
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def profile_of(user) -> StaffProfile | None:
    """The user's staff profile (read once per request), or None."""
    if not getattr(user, "pk", None):
        return None
    return _cached(user, "profile", lambda: StaffProfile.objects.filter(user_id=user.pk).first())


def today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now())


@dataclass(frozen=True)
class Training:
    label: str
    done_on: date | None
    expires_on: date | None
    current: bool
    due_soon: bool  # current, and expires within BAKKME_TRAINING_WARN_DAYS

    @property
    def state(self) -> str:
        if self.done_on is None:
            return "missing"
        if not self.current:
            return "expired"
        return "due_soon" if self.due_soon else "current"


def _training(label: str, done_on: date | None, valid_days: int, on: date) -> Training:
    if done_on is None:
        return Training(label, None, None, False, False)
    expires_on = done_on + timedelta(days=valid_days)
    current = on < expires_on
    warn = timedelta(days=settings.BAKKME_TRAINING_WARN_DAYS)
    return Training(label, done_on, expires_on, current, current and expires_on - on <= warn)


@dataclass(frozen=True)
class ComplianceStatus:
    """Where a member of staff stands: what CSAE work needs that they lack, and what is due."""

    on: date
    profile: StaffProfile | None
    csae_training: Training
    general_training: Training
    background_check: str
    background_checked_on: date | None
    opted_out: bool
    opted_out_at: datetime | None
    missing: list[str] = field(default_factory=list)  # the short reasons, most important first
    warnings: list[str] = field(default_factory=list)  # sentences for the staff bar

    @property
    def may_handle_child_safety(self) -> bool:
        return not self.missing

    @property
    def reason(self) -> str:
        """The main reason child-safety work is closed to them ("" when it is not)."""
        return self.missing[0] if self.missing else ""

    @property
    def background_check_label(self) -> str:
        return BackgroundCheck(self.background_check).label

    @property
    def enhanced_cleared(self) -> bool:
        return self.background_check == BackgroundCheck.ENHANCED_CLEARED


def status_of(profile: StaffProfile | None, on: date) -> ComplianceStatus:
    """The compliance status a profile gives on a day (pure: no query)."""
    csae = _training(
        "CSAE training",
        profile.csae_training_on if profile else None,
        settings.BAKKME_CSAE_TRAINING_VALID_DAYS,
        on,
    )
    general = _training(
        "general child-safety training",
        profile.general_training_on if profile else None,
        settings.BAKKME_GENERAL_TRAINING_VALID_DAYS,
        on,
    )
    check = profile.background_check if profile else BackgroundCheck.NONE
    opted_out = bool(profile and profile.csae_opt_out)
    missing = []
    if profile is None:
        missing.append(REASON_NO_PROFILE)
    if opted_out:
        missing.append(REASON_OPTED_OUT)
    if csae.done_on is None:
        missing.append(REASON_NO_CSAE_TRAINING)
    elif not csae.current:
        missing.append(REASON_CSAE_EXPIRED)
    if check != BackgroundCheck.ENHANCED_CLEARED:
        missing.append(REASON_BACKGROUND)
    warnings = []
    for training in (csae, general):
        if training.due_soon:
            warnings.append(f"Your {training.label} expires on {training.expires_on:%Y-%m-%d}.")
        elif training.state == "expired":
            warnings.append(f"Your {training.label} expired on {training.expires_on:%Y-%m-%d}.")
    return ComplianceStatus(
        on=on,
        profile=profile,
        csae_training=csae,
        general_training=general,
        background_check=check,
        background_checked_on=profile.background_checked_on if profile else None,
        opted_out=opted_out,
        opted_out_at=profile.csae_opt_out_at if profile else None,
        missing=missing,
        warnings=warnings,
    )


def compliance_status(user, now: datetime | None = None) -> ComplianceStatus:
    """The user's compliance status today (or on `now`'s day)."""
    on = today(now)
    return _cached(user, ("status", on), lambda: status_of(profile_of(user), on))


def may_handle_child_safety(user, now: datetime | None = None) -> bool:
    """May this person work on child-safety cases now: current CSAE training, an enhanced
    background check cleared, and not left CSAE duties. Superusers always may."""
    if not (getattr(user, "is_authenticated", False) and user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    return compliance_status(user, now).may_handle_child_safety


def record_errors(
    *,
    csae_training_on: date | None,
    general_training_on: date | None,
    background_check: str,
    background_checked_on: date | None,
    on: date,
) -> dict[str, str]:
    """What is wrong with a compliance record as entered (field -> message); {} when fine."""
    errors = {}
    for name, value in (
        ("csae_training_on", csae_training_on),
        ("general_training_on", general_training_on),
        ("background_checked_on", background_checked_on),
    ):
        if value is not None and value > on:
            errors[name] = "A date in the future: enter the day it happened."
    if background_check not in BackgroundCheck.values:
        errors["background_check"] = "Not a background check state."
    elif background_check != BackgroundCheck.NONE and background_checked_on is None:
        errors["background_checked_on"] = "Give the date of the background check."
    return errors
