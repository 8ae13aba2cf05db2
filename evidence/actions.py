"""The evidence vault's operations that span its parts: verification, key rotation."""

import contextlib
from dataclasses import dataclass, field

from django.db import transaction

from audit import chain as audit_chain

from . import checkpoints, crypto, custody, vault
from .models import CustodyEvent, EvidenceItem, EvidencePackage


@dataclass
class VaultReport:
    events: int = 0
    audit_events: int = 0
    items: int = 0
    checkpoint: checkpoints.Checkpoint | None = None
    broken: list[str] = field(default_factory=list)
    omitted: int = 0  # further broken links, not listed one by one

    @property
    def problems(self) -> int:
        return len(self.broken) + self.omitted


def verify_custody() -> VaultReport:
    """The chain of custody and the audit trail (every MAC, against the latest valid signed
    checkpoint in evidence storage) and every stored item against its SHA-256.

    A failed item is recorded as a custody event and alerts the CSO, like a failed read.
    """
    checkpoint, checkpoint_problems = checkpoints.latest()

    def mark(chain):
        return checkpoint.chains[chain].last_id if checkpoint else None

    walks = {
        custody.CHAIN: custody.verify_chain(mark=mark(custody.CHAIN)),
        audit_chain.CHAIN: audit_chain.verify_chain(mark=mark(audit_chain.CHAIN)),
    }
    report = VaultReport(
        events=walks[custody.CHAIN].events,
        audit_events=walks[audit_chain.CHAIN].events,
        checkpoint=checkpoint,
        broken=list(checkpoint_problems),
    )
    for walk in walks.values():
        report.broken += walk.broken
        report.omitted += walk.omitted
    if checkpoint is not None:
        report.broken += checkpoints.compare(checkpoint, walks)
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
    touched; items destroyed by retention have no data key left and are skipped. Returns how
    many items."""
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
                .filter(purged_at__isnull=True)  # a destroyed item's data key is wiped
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
