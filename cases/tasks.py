"""django-q2 tasks: thin wrappers around the services, each safe to run twice."""

import logging

from django.utils import timezone

from staff.actions import deliver_emails

from . import sla_engine

log = logging.getLogger(__name__)


def sla_sweep() -> dict:
    """The scheduled sweep (every BAKKME_SLA_SWEEP_MINUTES), then the pending e-mails."""
    now = timezone.now()
    result = sla_engine.sweep(now).as_dict()
    deliver_emails(now)
    log.info("SLA sweep: %s", result)
    return result


def emergency_protocol() -> list[int]:
    """Queued when a P0 case arrives, so the CSO hears at once rather than at the next sweep."""
    now = timezone.now()
    ids = sla_engine.start_emergencies(now)
    deliver_emails(now)
    return ids
