"""Behaviour rules: pure functions over an adult's recent account events (README "Detection").

Each rule takes the events of one actor (anything with the AccountEvent fields: id, type,
occurred_at, actor/target ages and bands, mutual_followers, surface) and the moment it is
evaluated at, and returns a hit (a dict for Detection.matched) or None. No database, no settings
read inside: thresholds are arguments, `evaluate` reads them from settings.
"""

from datetime import datetime, timedelta

from django.conf import settings

from bakkme_safety.policy import AgeBand, Surface

MINOR_BANDS = {AgeBand.UNDER_13, AgeBand.AGE_13_15, AgeBand.AGE_16_17}

MINOR_CONTACTS = "adult_contacts_minors"
GIFTS_TO_MINORS = "adult_gifts_minor_live_streams"


def is_adult(age: int | None, band: str) -> bool:
    if age is not None:
        return age >= 18
    return band == AgeBand.ADULT


def is_minor(age: int | None, band: str) -> bool:
    if age is not None:
        return age < 18
    return band in MINOR_BANDS


def _in_window(events, now: datetime, window: timedelta):
    return [e for e in events if now - window <= e.occurred_at <= now]


def minor_contacts(events, now: datetime, *, window: timedelta, threshold: int) -> dict | None:
    """An adult messages `threshold` distinct minors who are not mutual followers in `window`."""
    hits = [
        e
        for e in _in_window(events, now, window)
        if e.type == "message_sent"
        and is_adult(e.actor_age, e.actor_age_band)
        and is_minor(e.target_age, e.target_age_band)
        and e.mutual_followers is not True
        and e.target_platform_id
    ]
    minors = {e.target_platform_id for e in hits}
    if len(minors) < threshold:
        return None
    return {
        "rule": MINOR_CONTACTS,
        "counts": {"distinct_minors": len(minors), "messages": len(hits)},
        "threshold": threshold,
        "events": sorted(e.id for e in hits),
    }


def gifts_to_minors(events, now: datetime, *, window: timedelta, threshold: int) -> dict | None:
    """An adult sends `threshold` gifts or payments to minors' live streams in `window`."""
    hits = [
        e
        for e in _in_window(events, now, window)
        if e.type == "gift_or_payment"
        and e.surface == Surface.LIVE_STREAM
        and is_adult(e.actor_age, e.actor_age_band)
        and is_minor(e.target_age, e.target_age_band)
    ]
    if len(hits) < threshold:
        return None
    return {
        "rule": GIFTS_TO_MINORS,
        "counts": {
            "gifts": len(hits),
            "distinct_minors": len({e.target_platform_id for e in hits}),
        },
        "threshold": threshold,
        "events": sorted(e.id for e in hits),
    }


def evaluate(events, now: datetime) -> list[dict]:
    """Every rule's hit for one actor's events, with the thresholds from settings."""
    window = timedelta(hours=settings.BAKKME_RULE_WINDOW_HOURS)
    found = [
        minor_contacts(events, now, window=window, threshold=settings.BAKKME_RULE_MINOR_CONTACTS),
        gifts_to_minors(events, now, window=window, threshold=settings.BAKKME_RULE_GIFTS_TO_MINORS),
    ]
    return [hit for hit in found if hit is not None]
