"""Evidence receivers of other apps' signals."""

import logging

from django.dispatch import receiver
from django_q.signals import post_spawn

logger = logging.getLogger(__name__)


@receiver(post_spawn, dispatch_uid="evidence.sweep_package_work_areas")
def sweep_package_work_areas(sender, proc_name=None, **kwargs) -> None:
    """When a django-q2 worker process starts (also one started again after its predecessor
    was killed): remove the package work folders no live build uses. The worker starts anyway
    if this fails (the next start tries again)."""
    from .packages import sweep_work_areas

    try:
        sweep_work_areas()
    except Exception:
        logger.exception("Could not sweep the evidence package work folders at %s", proc_name)
