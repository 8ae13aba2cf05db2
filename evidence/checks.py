"""Start-up check: the configured master key must open the evidence already stored.

A missing or malformed key fails at once (settings); a well-formed but wrong key would only
show when someone needs the evidence, so this check compares the ids of the keys that wrapped
the stored items with the keys configured. It runs with every management command that runs
checks (runserver, migrate, qcluster via `make run`, check).
"""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError


@register()
def master_key_opens_the_vault(app_configs=None, **kwargs):
    from . import crypto
    from .models import EvidenceItem

    try:
        known = crypto.known_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="evidence.E001")]
    try:
        foreign = set(
            EvidenceItem.objects.exclude(key_id__in=known).values_list("key_id", flat=True)[:5]
        )
    except DatabaseError:  # not migrated yet
        return []
    if foreign:
        return [
            Error(
                "Evidence in the vault was wrapped by master key(s) "
                f"{', '.join(sorted(foreign))}, which BAKKME_EVIDENCE_KEY (and "
                "BAKKME_EVIDENCE_OLD_KEYS) do not hold: a wrong key, or a rotation not finished.",
                hint="Set the key the vault was written with; rotate with rotate_evidence_key.",
                id="evidence.E002",
            )
        ]
    return []
