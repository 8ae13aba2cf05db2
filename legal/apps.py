from django.apps import AppConfig


class LegalConfig(AppConfig):
    name = "legal"
    verbose_name = "Legal: NCMEC and law enforcement"

    def ready(self):
        # Loaded here, not at the top: they import models (the app registry must be ready).
        from deliveries.outbox import register_kind  # noqa: PLC0415

        from . import receivers  # noqa: PLC0415
        from .freeze import RECORDS_REQUESTS  # noqa: PLC0415

        receivers.connect()
        # A freeze's request for an account's records goes to the platform's webhook like the
        # enforcement actions (the outbox delivers it; it never imports legal).
        register_kind(RECORDS_REQUESTS)
