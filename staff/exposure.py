"""Exposure: how long a member of staff has had child-safety cases open this shift.

Recorded as ExposureInterval rows (see that model): a claim of a child-safety case opens one up
to the claim's expiry and the end of the claim cuts it short; a preview or an unblurred view of a
child-safety case's evidence opens (or extends) BAKKME_EXPOSURE_PREVIEW_MINUTES.

Exposure this shift = the length of the union of a person's intervals (overlapping time counts
once) between the start of the shift and now. The shift starts at StaffProfile.on_shift_since
when the person is on shift, else at the start of the current day (UTC): a new shift starts the
count again.

At BAKKME_EXPOSURE_LIMIT_MINUTES, "next case" gives that person no more child-safety cases
(cases.actions.claimable_cases) and the queue shows a break notice. What they hold, they keep.

A wellbeing figure, not a performance one: the CSO dashboard lists it per person on shift.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from . import compliance
from .models import ExposureInterval, StaffProfile

Source = ExposureInterval.Source


def limit() -> timedelta:
    return timedelta(minutes=settings.BAKKME_EXPOSURE_LIMIT_MINUTES)


def preview_span() -> timedelta:
    return timedelta(minutes=settings.BAKKME_EXPOSURE_PREVIEW_MINUTES)


# --- Recording ---------------------------------------------------------------------------------


def start_claim(user, case, started_at: datetime, ends_by: datetime) -> None:
    """A child-safety case claimed: exposure from the claim to its expiry (cut by end_claim)."""
    if not case.is_child_safety:
        return
    ExposureInterval.objects.create(
        user=user, case=case, source=Source.CLAIM, started_at=started_at, ended_at=ends_by
    )


def end_claim(case, user_id, at: datetime | None = None) -> int:
    """The claim of `user_id` on `case` ended at `at`: its running interval stops there."""
    if not user_id:
        return 0
    at = at or timezone.now()
    return ExposureInterval.objects.filter(
        case=case, user_id=user_id, source=Source.CLAIM, started_at__lte=at, ended_at__gt=at
    ).update(ended_at=at)


def record_view(user, case, at: datetime | None = None) -> None:
    """A preview or unblurred view of a child-safety case's evidence.

    Extends the person's running preview interval of this case, or opens a new one.
    """
    if not case.is_child_safety:
        return
    at = at or timezone.now()
    until = at + preview_span()
    running = (
        ExposureInterval.objects.filter(
            user=user, case=case, source=Source.PREVIEW, started_at__lte=at, ended_at__gte=at
        )
        .order_by("-ended_at")
        .first()
    )
    if running is None:
        ExposureInterval.objects.create(
            user=user, case=case, source=Source.PREVIEW, started_at=at, ended_at=until
        )
    elif running.ended_at < until:
        ExposureInterval.objects.filter(pk=running.pk).update(ended_at=until)


# --- Counting ----------------------------------------------------------------------------------


def shift_start(on_shift_since: datetime | None, now: datetime) -> datetime:
    """When the current shift began: on_shift_since (None: not on shift), else the start of
    today."""
    if on_shift_since is not None:
        return min(on_shift_since, now)
    return datetime.combine(
        timezone.localdate(now), time.min, tzinfo=timezone.get_current_timezone()
    )


def _since(profile: StaffProfile | None) -> datetime | None:
    return profile.on_shift_since if profile is not None and profile.on_shift else None


def merged_length(intervals: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime):
    """The length of the union of intervals, each clipped to [start, end]."""
    clipped = sorted(
        (max(a, start), min(b, end)) for a, b in intervals if min(b, end) > max(a, start)
    )
    total = timedelta(0)
    current_start = current_end = None
    for a, b in clipped:
        if current_end is None or a > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = a, b
        else:
            current_end = max(current_end, b)
    if current_end is not None:
        total += current_end - current_start
    return total


def exposure_since(starts: dict[int, datetime], now: datetime, intervals=None) -> dict:
    """Exposure of several people at once: {user_id: timedelta}, from each one's start to now.

    One query over ExposureInterval (`intervals`, a queryset to narrow it, e.g. to the cases a
    viewer may see).
    """
    result = dict.fromkeys(starts, timedelta(0))
    if not starts:
        return result
    qs = ExposureInterval.objects.all() if intervals is None else intervals
    rows = qs.filter(
        user_id__in=list(starts), started_at__lt=now, ended_at__gt=min(starts.values())
    ).values_list("user_id", "started_at", "ended_at")
    by_user = defaultdict(list)
    for user_id, started_at, ended_at in rows:
        by_user[user_id].append((started_at, ended_at))
    for user_id, spans in by_user.items():
        result[user_id] = merged_length(spans, starts[user_id], now)
    return result


def shift_exposure(user, now: datetime | None = None) -> timedelta:
    """This person's child-safety exposure in the current shift."""
    now = now or timezone.now()
    start = shift_start(_since(compliance.profile_of(user)), now)
    return exposure_since({user.pk: start}, now)[user.pk]


def at_limit(user, now: datetime | None = None) -> bool:
    """Has this person reached the exposure limit of a shift (no more child-safety cases)?"""
    return shift_exposure(user, now) >= limit()


def break_notice(user, now: datetime | None = None) -> str:
    """The notice the queue shows at the limit ("" below it)."""
    if not at_limit(user, now):
        return ""
    hours = settings.BAKKME_EXPOSURE_LIMIT_MINUTES / 60
    return (
        f"You have had child-safety cases open for {hours:g} hours this shift: time for a "
        "break. Next case gives you other cases only until your next shift."
    )
