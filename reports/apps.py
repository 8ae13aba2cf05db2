from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Intake"

    def ready(self):
        from .api import authentication  # noqa: F401  (registers the OpenAPI auth scheme)
