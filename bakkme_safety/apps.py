from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BakkmeSafetyConfig(AppConfig):
    name = "bakkme_safety"
    verbose_name = "BakkMe Safety"

    def ready(self):
        # Loaded here, not at the top: roles reads the app registry (permissions, groups).
        from .roles import sync_role_groups_after_migrate

        post_migrate.connect(sync_role_groups_after_migrate)
