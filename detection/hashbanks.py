"""Hash banks: validating hashes and importing them (README "Hash banks and PDQ matching").

The admin, `import_hashes` and the match API all validate through normalise_hash().
"""

import re
from dataclasses import dataclass

from django.db import transaction

from .models import SIGNAL_HEX_LENGTH, HashBank, HashEntry, SignalType

_HEX = re.compile(r"[0-9a-f]+")


def normalise_hash(signal_type: str, value: str) -> str:
    """The hash in lower-case hex, or ValueError saying what is wrong."""
    if signal_type not in SignalType.values:
        raise ValueError(f"Unknown signal type {signal_type!r}: one of {SignalType.values}.")
    value = (value or "").strip().lower()
    length = SIGNAL_HEX_LENGTH[signal_type]
    if len(value) != length or not _HEX.fullmatch(value):
        raise ValueError(f"A {signal_type} hash is {length} hexadecimal digits.")
    return value


class ImportError_(ValueError):
    """A file that cannot be imported; nothing from it was."""


@dataclass
class ImportResult:
    bank: HashBank
    bank_created: bool
    added: int
    already_present: int


def parse_lines(lines, signal_type: str) -> list[tuple[str, str]]:
    """(hash, note) per non-empty line; ImportError_ naming every bad line by number."""
    parsed, errors = [], []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        value, _, note = line.partition(",")
        try:
            parsed.append((normalise_hash(signal_type, value), note.strip()[:500]))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise ImportError_("Nothing imported. " + "; ".join(errors))
    return parsed


def import_hashes(
    bank_name: str, lines, signal_type: str, *, source: str = HashBank.BankSource.INTERNAL
) -> ImportResult:
    """Add the hashes of a file (one a line, optional ", note") to a bank, created when missing.

    All lines are validated first; one bad line and nothing is imported. Hashes the bank holds
    already are skipped. One transaction.
    """
    parsed = parse_lines(lines, signal_type)
    with transaction.atomic():
        bank, created = HashBank.objects.get_or_create(
            name=bank_name, defaults={"source": source, "signal_types": signal_type}
        )
        if signal_type not in bank.signal_type_list():
            raise ImportError_(f"Nothing imported: bank {bank.name} does not take {signal_type}.")
        present = set(
            HashEntry.objects.filter(bank=bank, signal_type=signal_type).values_list(
                "value", flat=True
            )
        )
        new = {}
        for value, note in parsed:
            if value not in present and value not in new:
                new[value] = note
        HashEntry.objects.bulk_create(
            [
                HashEntry(bank=bank, signal_type=signal_type, value=v, note=n)
                for v, n in new.items()
            ],
            batch_size=5000,
        )
    return ImportResult(bank, created, len(new), len(parsed) - len(new))


def bank_case_evidence(case) -> int:
    """A CSAM decision: add the case's evidence items' MD5, SHA-256 and PDQ (when its quality
    is enough to match on) to the internal bank (BAKKME_INTERNAL_HASH_BANK, CSAM, created when
    missing). Once per item: a hash the bank holds already is skipped, so a case decided again
    adds nothing twice. Answers how many entries were added."""
    from django.conf import settings

    from evidence.models import EvidenceItem

    bank, _ = HashBank.objects.get_or_create(
        name=settings.BAKKME_INTERNAL_HASH_BANK,
        defaults={"source": HashBank.BankSource.INTERNAL, "is_csam": True},
    )
    types = bank.signal_type_list()
    wanted: dict[tuple[str, str], str] = {}
    for item in EvidenceItem.objects.filter(case=case).order_by("pk"):
        note = f"case {case.pk}, evidence item {item.pk}"
        values = {SignalType.MD5: item.md5, SignalType.SHA256: item.sha256}
        quality = item.pdq_quality
        if item.pdq and (quality is None or quality >= settings.BAKKME_PDQ_MIN_QUALITY):
            values[SignalType.PDQ] = item.pdq
        for signal_type, value in values.items():
            if value and signal_type in types:
                wanted.setdefault((signal_type, value.lower()), note)
    if not wanted:
        return 0
    present = set(
        HashEntry.objects.filter(bank=bank, value__in={v for _, v in wanted}).values_list(
            "signal_type", "value"
        )
    )
    new = [
        HashEntry(bank=bank, signal_type=t, value=v, note=n)
        for (t, v), n in wanted.items()
        if (t, v) not in present
    ]
    HashEntry.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
