"""The evidence vault's operations that span its parts: verification, key rotation."""

import contextlib
from dataclasses import dataclass, field

from django.db import transaction

from . import crypto, custody, vault
from .models import CustodyEvent, EvidenceItem, EvidencePackage


@dataclass
class VaultReport:
    events: int = 0
    items: int = 0
    broken: list[str] = field(default_factory=list)


def verify_custody() -> VaultReport:
    """The chain of custody and every stored item against its SHA-256.

    A failed item is recorded as a custody event and alerts the CSO, like a failed read.
    """
    chain = custody.verify_chain()
    report = VaultReport(events=chain.events, broken=list(chain.broken))
    for item in EvidenceItem.objects.filter(purged_at__isnull=True).order_by("pk").iterator():
        report.items += 1
        try:
            problem = vault.check(item)
        except crypto.UnknownKeyError as exc:
            problem = str(exc)
        if problem:
            report.broken.append(f"evidence item {item.pk} (case {item.case_id}): {problem}")
            with contextlib.suppress(vault.EvidenceIntegrityError):
                vault.refuse_tampered(item, problem, purpose="verify_custody")
    return report


def rotate_master_key(batch: int = 500) -> int:
    """Re-wrap every data key with the current master key (old keys in
    BAKKME_EVIDENCE_OLD_KEYS): the items' and the stored packages'. Their bytes are not
    touched. Returns how many items."""
    current = crypto.current_key()
    with transaction.atomic():
        packages = list(
            EvidencePackage.objects.select_for_update()
            .exclude(key_id=current.key_id)
            .exclude(storage_name="")
        )
        for package in packages:
            data_key = crypto.unwrap(package.wrapped_key, package.key_id)
            package.wrapped_key, package.key_id = current.wrap(data_key), current.key_id
        EvidencePackage.objects.bulk_update(packages, ["wrapped_key", "key_id"])
    done = 0
    while True:
        with transaction.atomic():
            items = list(
                EvidenceItem.objects.select_for_update()
                .exclude(key_id=current.key_id)
                .order_by("pk")[:batch]
            )
            if not items:
                return done
            for item in items:
                data_key = crypto.unwrap(item.wrapped_key, item.key_id)
                item.wrapped_key, item.key_id = current.wrap(data_key), current.key_id
            EvidenceItem.objects.bulk_update(items, ["wrapped_key", "key_id"])
            custody.record(
                items,
                CustodyEvent.Action.KEY_ROTATED,
                system="rotate_evidence_key",
                detail={"key_id": current.key_id},
            )
            done += len(items)
