from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Hash banks and matching, the lexicon and blocked links, behaviour rules, ban evasion,
    and the detections they raise on cases with their review."""

    name = "detection"
    verbose_name = "Detection"

    def ready(self):
        from . import receivers  # noqa: PLC0415  (receivers import models: the registry is ready)

        receivers.connect()
