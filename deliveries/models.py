"""The bookkeeping every delivery has (an abstract model): the apps' own rows subclass it
(cases.EnforcementAction, reports.Acknowledgment, legal.PreservationRequest) and register their
kind with deliveries.outbox."""

from django.db import models


class WebhookDelivery(models.Model):
    """Delivery bookkeeping of one thing sent to the platform's webhook.

    in_flight_until is the lease of the run that is calling the platform right now: set (and
    committed) before the HTTP call, cleared when its answer is recorded. Another run skips a
    leased row; a run that died mid-call leaves a lease that runs out, and the row is retried
    with the same idempotency key.
    """

    attempts = models.PositiveIntegerField(default=0, db_default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    in_flight_until = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.TextField(blank=True, default="", db_default="")
    last_error = models.CharField(max_length=500, blank=True, default="", db_default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


DELIVERY_FIELDS = [f.name for f in WebhookDelivery._meta.local_fields]
