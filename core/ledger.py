"""Keyed chains: what the custody ledger and the audit trail share.

A plain hash chain proves nothing against whoever can write the table: they edit an event and
recompute every hash after it. So each event also carries a MAC (HMAC-SHA256) under the ledger
key, BAKKME_LEDGER_KEY, which is never in the database:

    mac_i = HMAC(key of event i, chain name | mac_(i-1) | the event's canonical body)

Without the key nobody can write an event, or change one, that verifies. What a MAC cannot show
is an event that is missing at the end, or a ledger that is empty: that is what the signed
checkpoints are for (evidence/checkpoints.py), kept outside the database.

The ledger key is its own secret, not derived from the evidence master key: rotating the
master key retires the old one (rotate_evidence_key re-wraps every data key), while a ledger
key must stay available for as long as the links it made are checked. Each event names the id
of the key that made its MAC; after a rotation the old keys stay listed in
BAKKME_LEDGER_OLD_KEYS (they then only verify) and new events use the new key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from .keys import decode_master_key

# The MAC before the first event of a chain.
GENESIS_MAC = "0" * 64


@dataclass(frozen=True)
class LedgerKey:
    key: bytes

    @property
    def key_id(self) -> str:
        """A public name for the key: an HMAC under the key itself, not a hash of it alone."""
        return hmac.new(self.key, b"bakkme-ledger-key-id", hashlib.sha256).hexdigest()[:16]

    def mac(self, purpose: str, *parts: str) -> str:
        """HMAC-SHA256 of the parts, under a purpose ("custody", "audit", "checkpoint"), so
        that a MAC made for one use never verifies for another."""
        message = "\n".join([f"bakkme-ledger/{purpose}", *parts])
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def link(self, chain: str, prev_mac: str, body: str) -> str:
        """The MAC of one event of `chain`: it covers the event's body and the MAC before it."""
        return self.mac(chain, prev_mac, body)


def parse_key(text: str, name: str = "BAKKME_LEDGER_KEY") -> LedgerKey:
    return LedgerKey(decode_master_key(text, name))


def current_key() -> LedgerKey:
    if not settings.BAKKME_LEDGER_KEY:
        raise ImproperlyConfigured(
            "BAKKME_LEDGER_KEY is not set: the custody ledger and the audit trail cannot be "
            "written or checked. `make run` generates a local one in var/ledger.key; "
            "production sets its own."
        )
    return parse_key(settings.BAKKME_LEDGER_KEY)


def known_keys() -> dict[str, LedgerKey]:
    """The current key and the old ones still listed for checking links they made."""
    keys = [current_key()] + [
        parse_key(text, "BAKKME_LEDGER_OLD_KEYS") for text in settings.BAKKME_LEDGER_OLD_KEYS
    ]
    return {key.key_id: key for key in keys}


def canonical(data) -> str:
    """One text for one value, whichever database it came back from (keys sorted, no spaces)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def lock_chain(lock_id: int) -> None:
    """Writers of one chain take turns, so events are chained in the order of their ids.

    PostgreSQL: a transaction-level advisory lock, held until the writer commits, so the next
    writer reads the head (and takes its id from the sequence) only after. SQLite: the settings
    open every transaction with BEGIN IMMEDIATE, which already serialises writers."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])


def verify_link(
    keys: dict[str, LedgerKey], chain: str, key_id: str, prev_mac: str, body: str, mac: str
) -> str | None:
    """None when `mac` is the link's MAC; otherwise what is wrong, in words."""
    key = keys.get(key_id)
    if key is None:
        return (
            f"its MAC was made with ledger key {key_id or '(none)'}, which is not configured "
            "(BAKKME_LEDGER_KEY, BAKKME_LEDGER_OLD_KEYS): a wrong key, or a row written "
            "without one"
        )
    if not hmac.compare_digest(key.link(chain, prev_mac, body), mac):
        return (
            "its MAC does not match: it, or its place in the chain, was changed by someone "
            "without the ledger key (recomputed hashes do not help)"
        )
    return None


@dataclass
class ChainWalk:
    """What a walk over a chain found: its length, its last event, and the event a checkpoint
    names (`mark`): how many events up to it and its MAC, or None when it is not there."""

    chain: str
    events: int = 0
    last_id: int | None = None
    head_mac: str = GENESIS_MAC
    mark: int | None = None
    events_to_mark: int | None = None
    mark_mac: str | None = None
    broken: list[str] = field(default_factory=list)
    omitted: int = 0

    def problem(self, line: str, limit: int = 100) -> None:
        """Keep the first `limit` lines: an edit near the start of a long ledger would
        otherwise print one line for every event after it."""
        if len(self.broken) < limit:
            self.broken.append(line)
        else:
            self.omitted += 1

    def step(self, pk: int, mac: str) -> None:
        self.events += 1
        self.last_id, self.head_mac = pk, mac
        if pk == self.mark:
            self.events_to_mark, self.mark_mac = self.events, mac

    @property
    def problems(self) -> int:
        return len(self.broken) + self.omitted
