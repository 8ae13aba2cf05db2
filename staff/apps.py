from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in


class StaffConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "staff"
    verbose_name = "Staff"

    def ready(self):
        # Loaded here, not at the top: they import models (the app registry must be ready).
        from . import receivers, sessions  # noqa: PLC0415

        receivers.connect()

        # The session's absolute limit counts from the login (staff.sessions).
        user_logged_in.connect(sessions.mark_login_time, dispatch_uid="bakkme_mark_login_time")
