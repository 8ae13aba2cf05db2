"""Signed checkpoints: the heads of the custody ledger and of the audit trail, kept outside the
database.

The keyed chains (bakkme_safety/ledger.py) show any event that was changed or forged, but not
events missing at the end, nor a ledger emptied by TRUNCATE: what remains is still a valid
chain. A checkpoint records, for each chain, its last event's id, how many events lead up to
it and that event's MAC, with the time and a MAC of the whole under the ledger key. It is a
small JSON file in evidence storage (`checkpoints/<day>/<time>-<random>.json`; on S3 the
bucket's object lock keeps it), which the database's owner cannot reach. `verify_custody`
compares the chains with the latest valid checkpoint: an event it names that is gone, a
different MAC at its place or another count up to it is a failure; a checkpoint that does not
verify (forged, edited, renamed) is a failure too. Events written after the latest checkpoint
can still be cut off unseen: the schedule (BAKKME_LEDGER_CHECKPOINT_MINUTES) bounds how many.

Checkpoints are written by a django-q2 schedule (write_scheduled_checkpoint, when a chain has
moved since the last one) and for each evidence package (write_checkpoint), and only of
committed heads: one written inside a transaction could name an event that is then rolled
back, and every later check would report it missing.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from audit import chain as audit_chain
from core import ledger

from . import custody
from .storage import evidence_storage

FOLDER = "checkpoints"
FORMAT = "bakkme-ledger-checkpoint/1"
CHAINS = (custody.CHAIN, audit_chain.CHAIN)
_MAX_BYTES = 64 * 1024  # a checkpoint is a few hundred bytes; a huge file is not one


class InvalidCheckpoint(Exception):
    """The file is not a checkpoint this back office signed, or not the one its name says."""


@dataclass(frozen=True)
class ChainHead:
    last_id: int | None
    count: int
    head_mac: str


@dataclass(frozen=True)
class Checkpoint:
    name: str
    written_at: str
    reason: str
    chains: dict[str, ChainHead]
    key_id: str
    mac: str

    def payload(self) -> dict:
        """Everything the MAC covers (all but the MAC)."""
        return {
            "format": FORMAT,
            "name": self.name,
            "written_at": self.written_at,
            "reason": self.reason,
            "chains": {chain: asdict(head) for chain, head in self.chains.items()},
            "key_id": self.key_id,
        }

    def as_dict(self) -> dict:
        return {**self.payload(), "mac": self.mac}

    def json_bytes(self) -> bytes:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True).encode()


def _sign(payload: dict, key: ledger.LedgerKey) -> str:
    return key.mac("checkpoint", ledger.canonical(payload))


def current_heads() -> dict[str, ChainHead]:
    """Both chains' heads as committed. Refuses to run inside a transaction (durable): a head
    read there may be rolled back after the checkpoint is stored."""
    with transaction.atomic(durable=True):
        return {
            custody.CHAIN: ChainHead(*custody.head()),
            audit_chain.CHAIN: ChainHead(*audit_chain.head()),
        }


def _new_name(now: datetime) -> str:
    # Fixed-width UTC time first: names sort in the order they were written.
    return f"{FOLDER}/{now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.json"


def write_checkpoint(reason: str, heads: dict[str, ChainHead] | None = None) -> Checkpoint:
    """Sign the chains' heads now and store the checkpoint in evidence storage; returns it.

    Call it outside any transaction, after the events it should cover are committed (an
    evidence package: after its EXPORT custody events, so the checkpoint covers them).
    """
    heads = heads or current_heads()
    key = ledger.current_key()
    now = timezone.now().astimezone(UTC)
    unsigned = Checkpoint(
        name=_new_name(now),
        written_at=now.isoformat(),
        reason=reason[:200],
        chains=heads,
        key_id=key.key_id,
        mac="",
    )
    checkpoint = replace(unsigned, mac=_sign(unsigned.payload(), key))
    stored = evidence_storage().save(checkpoint.name, ContentFile(checkpoint.json_bytes()))
    if stored != checkpoint.name:  # the name is signed: a renamed file would not verify
        evidence_storage().delete(stored)
        raise RuntimeError(f"Evidence storage stored checkpoint {checkpoint.name} as {stored}.")
    return checkpoint


def write_scheduled_checkpoint() -> Checkpoint | None:
    """The schedule's checkpoint: only when a chain has moved since the latest valid one."""
    heads = current_heads()
    latest_valid, _ = latest()
    if latest_valid is not None and latest_valid.chains == heads:
        return None
    return write_checkpoint("schedule", heads)


def parse(name: str, raw: bytes) -> Checkpoint:
    """The checkpoint stored as `name`; InvalidCheckpoint unless it is intact, signed by a
    configured ledger key, and stored under the name it was signed with."""
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise InvalidCheckpoint("not a ledger checkpoint")
        chains = {
            chain: ChainHead(
                last_id=data["chains"][chain]["last_id"],
                count=int(data["chains"][chain]["count"]),
                head_mac=str(data["chains"][chain]["head_mac"]),
            )
            for chain in CHAINS
        }
        checkpoint = Checkpoint(
            name=str(data["name"]),
            written_at=str(data["written_at"]),
            reason=str(data["reason"]),
            chains=chains,
            key_id=str(data["key_id"]),
            mac=str(data["mac"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidCheckpoint(f"not readable ({exc.__class__.__name__})") from exc
    key = ledger.known_keys().get(checkpoint.key_id)
    if key is None:
        raise InvalidCheckpoint(f"signed with ledger key {checkpoint.key_id}, not configured")
    if not hmac.compare_digest(_sign(checkpoint.payload(), key), checkpoint.mac):
        raise InvalidCheckpoint("its signature does not match: forged or edited")
    if checkpoint.name != name:
        raise InvalidCheckpoint(f"signed as {checkpoint.name}: copied or renamed")
    return checkpoint


def _names_newest_first():
    storage = evidence_storage()
    try:
        days, _ = storage.listdir(FOLDER)
    except FileNotFoundError:  # FileSystemStorage before the first checkpoint
        return
    for day in sorted(days, reverse=True):
        _, files = storage.listdir(f"{FOLDER}/{day}")
        for file in sorted((f for f in files if f.endswith(".json")), reverse=True):
            yield f"{FOLDER}/{day}/{file}"


def latest() -> tuple[Checkpoint | None, list[str]]:
    """The latest checkpoint that verifies, and a line for each newer file that does not."""
    problems = []
    storage = evidence_storage()
    for name in _names_newest_first():
        with storage.open(name, "rb") as file:
            raw = file.read(_MAX_BYTES + 1)
        try:
            if len(raw) > _MAX_BYTES:
                raise InvalidCheckpoint("too large to be one")
            return parse(name, raw), problems
        except InvalidCheckpoint as exc:
            problems.append(f"checkpoint {name}: {exc}")
    return None, problems


_WORDS = {
    custody.CHAIN: ("custody ledger", "custody event"),
    audit_chain.CHAIN: ("audit trail", "audit event"),
}


def compare(checkpoint: Checkpoint, walks: dict[str, ledger.ChainWalk]) -> list[str]:
    """What differs between the chains as walked (each walked with mark = the checkpoint's
    last id) and the checkpoint: events removed up to it, the ledger emptied, or rewritten."""
    problems = []
    of = f"checkpoint {checkpoint.name} (written {checkpoint.written_at})"
    for chain, head in checkpoint.chains.items():
        if head.last_id is None:
            continue  # the chain was empty then: nothing to hold it to
        walk, (ledger_name, event_name) = walks[chain], _WORDS[chain]
        if walk.mark_mac is None:
            if walk.last_id is None or walk.last_id < head.last_id:
                ends = (
                    "is empty"
                    if walk.last_id is None
                    else f"ends at {event_name} {walk.last_id} ({walk.events} events)"
                )
                problems.append(
                    f"{ledger_name} {ends}, but {of} names {event_name} {head.last_id} "
                    f"({head.count} events): events were removed from its end or the whole "
                    "ledger was emptied (truncated)"
                )
            else:
                problems.append(
                    f"{ledger_name}: {event_name} {head.last_id}, named by {of}, is missing"
                )
            continue
        if not hmac.compare_digest(walk.mark_mac, head.head_mac):
            problems.append(
                f"{ledger_name}: {event_name} {head.last_id} is not the one {of} recorded "
                "(another MAC): the ledger was rewritten"
            )
        if walk.events_to_mark != head.count:
            problems.append(
                f"{ledger_name}: {walk.events_to_mark} events up to {event_name} "
                f"{head.last_id}, {of} recorded {head.count}: events were removed or inserted"
            )
    return problems
