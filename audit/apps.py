from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        from . import receivers  # noqa: F401, PLC0415  (connects the receivers that record events)
