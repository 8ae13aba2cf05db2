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
