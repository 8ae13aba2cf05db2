from django.apps import AppConfig


class LegalConfig(AppConfig):
    name = "legal"
    verbose_name = "Legal: NCMEC and law enforcement"

    def ready(self):
        from . import receivers

        receivers.connect()
        self._register_deliveries()

    def _register_deliveries(self):
        # A freeze's request for an account's records goes to the platform's webhook like the
        # enforcement actions (cases.webhooks delivers it; cases never imports legal).
        from cases import webhooks

        from .freeze import RECORDS_REQUESTS

        webhooks.register_kind(RECORDS_REQUESTS)
