"""Start-up check: the configured master keys must open the evidence already stored.

A missing or malformed key fails at once (settings). A well-formed but wrong key would only show
when someone needs the evidence, and meanwhile new evidence would be stored under it, so that
afterwards the right key no longer opens everything. prove_keys_open_the_vault() therefore
unwraps one stored data key of every master key in use, and every process refuses to start
when it cannot:

- management commands (runserver, qcluster, migrate, check ...) through the system check below;
- the WSGI application (gunicorn or any WSGI server) at import, bakkme_safety/wsgi.py.

The same goes for the ledger key (BAKKME_LEDGER_KEY): a wrong one would sign new custody and
audit events that no longer chain onto the ones before, so prove_ledger_key_continues_the_chains()
refuses a key that is not the one the latest event of each chain was signed with (or listed
among the old keys).
"""

from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError


class VaultKeyError(ImproperlyConfigured):
    """The configured master keys do not open data keys stored in the vault."""


def _wrapped_keys_in_use():
    """(what, key id, pk, wrapped data key): one stored data key per master key id in use by
    evidence items (not purged) and by stored evidence packages."""
    from .models import EvidenceItem, EvidencePackage

    sources = [
        ("evidence item", EvidenceItem.objects.filter(purged_at__isnull=True)),
        (
            "evidence package",
            EvidencePackage.objects.exclude(storage_name="").filter(wrapped_key__isnull=False),
        ),
    ]
    for what, rows in sources:
        key_ids = rows.order_by("key_id").values_list("key_id", flat=True).distinct()
        for key_id in list(key_ids):
            pk, wrapped = (
                rows.filter(key_id=key_id).order_by("pk").values_list("pk", "wrapped_key")[0]
            )
            yield what, key_id, pk, wrapped


def prove_keys_open_the_vault() -> None:
    """Raise ImproperlyConfigured unless BAKKME_EVIDENCE_KEY (with BAKKME_EVIDENCE_OLD_KEYS)
    unwraps, for every master key id in use by evidence items and evidence packages, one data
    key wrapped by it. VaultKeyError names the key id and the row that failed. An empty or not
    yet migrated database passes."""
    from . import crypto

    known = crypto.known_keys()  # ImproperlyConfigured when missing or malformed
    try:
        in_use = list(_wrapped_keys_in_use())
    except DatabaseError:  # not migrated yet: nothing stored to open
        return
    for what, key_id, pk, wrapped in in_use:
        key = known.get(key_id)
        if key is None:
            raise VaultKeyError(
                f"The vault holds data keys wrapped by master key {key_id} (e.g. {what} "
                f"#{pk}), which BAKKME_EVIDENCE_KEY and BAKKME_EVIDENCE_OLD_KEYS do not hold: "
                "a wrong key, or a rotation not finished. Set the key the vault was written "
                "with (rotate with rotate_evidence_key)."
            )
        try:
            key.unwrap(bytes(wrapped or b""))
        except (crypto.TamperedError, ValueError) as exc:
            raise VaultKeyError(
                f"The data key of {what} #{pk} does not open with master key {key_id}, "
                "although that key's id matches: the wrapped key was changed, or the key is "
                "not the one the vault was written with."
            ) from exc


class LedgerKeyError(ImproperlyConfigured):
    """The configured ledger keys are not the ones the chains were signed with."""


def prove_ledger_key_continues_the_chains() -> None:
    """Raise LedgerKeyError unless the ledger keys configured (BAKKME_LEDGER_KEY and
    BAKKME_LEDGER_OLD_KEYS) include the key of the latest event of the custody ledger and of the
    audit trail (a key id is an HMAC under the key itself: a match means the key). Two indexed
    reads; an empty or not yet migrated database passes."""
    from audit.models import AuditEvent
    from core import ledger

    from .models import CustodyEvent

    known = ledger.known_keys()  # ImproperlyConfigured when missing or malformed
    for what, model in (("custody ledger", CustodyEvent), ("audit trail", AuditEvent)):
        try:
            latest = model.objects.order_by("-pk").values_list("pk", "key_id").first()
        except DatabaseError:  # not migrated yet
            return
        if latest is not None and latest[1] not in known:
            raise LedgerKeyError(
                f"The {what}'s latest event (#{latest[0]}) was signed with ledger key "
                f"{latest[1]}, which BAKKME_LEDGER_KEY and BAKKME_LEDGER_OLD_KEYS do not hold: "
                "a wrong key, or a rotated key not listed in BAKKME_LEDGER_OLD_KEYS."
            )


@register()
def ledger_key_continues_the_chains(app_configs=None, **kwargs):
    try:
        prove_ledger_key_continues_the_chains()
    except LedgerKeyError as exc:
        return [
            Error(
                str(exc),
                hint="Every process refuses to start until the ledger key is the one in use.",
                id="evidence.E004",
            )
        ]
    except ImproperlyConfigured as exc:
        # Production refuses a missing or malformed key in settings already; a local run
        # without one is told here, and stops at the first audit or custody event it writes.
        return [Warning(str(exc), id="evidence.W003")]
    return []


@register()
def master_key_opens_the_vault(app_configs=None, **kwargs):
    try:
        prove_keys_open_the_vault()
    except VaultKeyError as exc:
        return [
            Error(
                str(exc),
                hint="Every process refuses to start until the configured keys open the vault.",
                id="evidence.E002",
            )
        ]
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="evidence.E001")]
    return []
