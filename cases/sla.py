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
