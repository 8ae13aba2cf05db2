from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared helpers with no domain: history, bulk SQL, paginators, admin mixins, the keyed
    ledger chains, the database roles. No models."""

    name = "core"
    verbose_name = "Core"
