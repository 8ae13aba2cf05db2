from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Cases"

    def ready(self):
        # Loaded here, not at the top: they import models (the app registry must be ready).
        from deliveries.outbox import register_kind  # noqa: PLC0415

        from . import receivers  # noqa: PLC0415
        from .outbox import ACTIONS  # noqa: PLC0415

        register_kind(ACTIONS)
        receivers.connect()
