"""Where a case stands against its SLA window (pure functions, no queries)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings


@dataclass(frozen=True)
class SlaStatus:
    state: str  # green, amber, red, breached
    remaining: timedelta

    def describe(self) -> str:
        seconds = int(abs(self.remaining.total_seconds()))
        hours, rest = divmod(seconds, 3600)
        text = f"{hours}h {rest // 60:02d}m"
        return f"{text} late" if self.state == "breached" else f"{text} left"


def sla_status(sla_started_at: datetime, due_at: datetime, now: datetime) -> SlaStatus:
    """Green until the first warning fraction of the window, amber, red from the second."""
    remaining = due_at - now
    if remaining <= timedelta(0):
        return SlaStatus("breached", remaining)
    window = (due_at - sla_started_at).total_seconds() or 1
    elapsed = (now - sla_started_at).total_seconds() / window
    amber, red = settings.BAKKME_SLA_WARNING_FRACTIONS
    if elapsed >= red:
        return SlaStatus("red", remaining)
    if elapsed >= amber:
        return SlaStatus("amber", remaining)
    return SlaStatus("green", remaining)


# --- The window ---------------------------------------------------------------------------------


def warning_times(sla_started_at: datetime, due_at: datetime) -> list[datetime]:
    """The warning points of a window (BAKKME_SLA_WARNING_FRACTIONS of it, in order)."""
    window = due_at - sla_started_at
    return [sla_started_at + window * f for f in sorted(settings.BAKKME_SLA_WARNING_FRACTIONS)]


def start_window(case, sla_started_at: datetime, due_at: datetime, *, fresh: bool) -> None:
    """Give a case a (new) SLA window; the caller saves it.

    `fresh` starts the clock again (a reopened case): no first action, no breach yet. Otherwise
    only the deadline moved (a more urgent report joined) and the warnings follow the new one.
    """
    case.sla_started_at = sla_started_at
    case.due_at = due_at
    case.sla_warnings_sent = 0
    times = warning_times(sla_started_at, due_at)
    case.sla_next_warning_at = times[0] if times else None
    if fresh:
        case.first_action_at = None
        case.breached_at = None
