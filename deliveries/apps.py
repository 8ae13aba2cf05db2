from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    """The outbox of signed HTTP deliveries to the platform: lease, backoff, give-up, alert.
    The apps register their kinds with deliveries.outbox.register_kind."""

    name = "deliveries"
    verbose_name = "Deliveries"
