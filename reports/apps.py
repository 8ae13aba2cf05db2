from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Intake"

    def ready(self):
        # Loaded here, not at the top: they import models (the app registry must be ready).
        from deliveries.outbox import register_kind  # noqa: PLC0415

        from . import (
            acknowledgments,  # noqa: PLC0415
            receivers,  # noqa: PLC0415
        )
        from .api import authentication  # noqa: F401, PLC0415  (registers the OpenAPI auth scheme)

        register_kind(acknowledgments.ACKNOWLEDGMENTS)
        receivers.connect()
