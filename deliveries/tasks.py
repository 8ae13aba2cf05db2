"""django-q2 tasks of the outbox. Delivery is at least once: each run is safe to run twice."""

import logging

from django.utils import timezone

log = logging.getLogger(__name__)


def deliver() -> dict:
    """One run of the outbox (schedule "platform-webhooks", every
    BAKKME_WEBHOOK_SCHEDULE_MINUTES, and queued after each change); then the alerts' e-mails."""
    # Imported here: django-q2 imports task modules before the app registry is ready.
    from staff.actions import deliver_emails  # noqa: PLC0415

    from .outbox import deliver_due  # noqa: PLC0415

    result = deliver_due().as_dict()
    if result["failed"]:
        deliver_emails(timezone.now())
    log.info("Webhook deliveries: %s", result)
    return result
