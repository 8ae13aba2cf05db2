from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_migrate


class BakkmeSafetyConfig(AppConfig):
    name = "bakkme_safety"
    verbose_name = "BakkMe Safety"

    def ready(self):
        from .roles import sync_role_groups_after_migrate

        post_migrate.connect(sync_role_groups_after_migrate)

        from .middleware import mark_login_time

        # The session's absolute limit counts from the login (bakkme_safety.middleware).
        user_logged_in.connect(mark_login_time, dispatch_uid="bakkme_mark_login_time")
