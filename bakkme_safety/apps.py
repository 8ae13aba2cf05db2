from django.apps import AppConfig


class BakkmeSafetyConfig(AppConfig):
    name = "bakkme_safety"
    verbose_name = "BakkMe Safety"
