"""Formatting for people to read, shared by the pages."""

from datetime import timedelta


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} m"
    if minutes:
        return f"{sign}{minutes} m {seconds:02d} s"
    return f"{sign}{seconds} s"
