from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    name = "evidence"
    verbose_name = "Evidence vault"

    def ready(self):
        # The master-key check; the sweep of package work folders at each worker's start.
        from . import checks, receivers  # noqa: F401
