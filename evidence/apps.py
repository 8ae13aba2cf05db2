from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    name = "evidence"
    verbose_name = "Evidence vault"

    def ready(self):
        from . import checks  # noqa: F401  (registers the master-key check)
