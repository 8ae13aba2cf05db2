from django.apps import AppConfig


class OversightConfig(AppConfig):
    """What reads across the apps for people to look at: the CSO's SLA dashboard (and the
    transparency report next). Nothing here writes another app's data."""

    name = "oversight"
    verbose_name = "Oversight"
