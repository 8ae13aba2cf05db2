"""Envelope encryption of evidence: AES-256-GCM from `cryptography`.

Each item (and each evidence package) gets a fresh 256-bit data key. The data key encrypts the
bytes; the master key (BAKKME_EVIDENCE_KEY) only wraps data keys, so rotating it re-wraps the
keys and never touches the stored items.

Stored format (streamed in chunks, never whole in memory):

    header  = b"BKEV1" | chunk size (4 bytes, big-endian) | nonce prefix (7 random bytes)
    chunk i = AES-GCM(data key, nonce = prefix | i (4 bytes) | last (1 byte), AAD = header)

The counter and the "last chunk" flag in the nonce (the STREAM construction) mean that a chunk
moved, dropped or cut off at the end fails authentication: any change to the stored bytes is
caught when they are read, before a byte of wrong plaintext is used.
"""

import base64
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.keys import decode_master_key

MAGIC = b"BKEV1"
CHUNK_SIZE = 1024 * 1024
_PREFIX_BYTES = 7
HEADER_SIZE = len(MAGIC) + 4 + _PREFIX_BYTES
TAG_SIZE = 16
_WRAP_AAD = b"bakkme-evidence-data-key"


class TamperedError(Exception):
    """The stored bytes are not the ones written: refuse to use them."""


class UnknownKeyError(Exception):
    """The data key was wrapped by a master key that is not configured."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @property
    def key_id(self) -> str:
        """A public name for the key (not a hash of it alone: an HMAC under the key itself)."""
        return hmac.new(self.key, b"bakkme-evidence-key-id", hashlib.sha256).hexdigest()[:16]

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, data_key, _WRAP_AAD)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]), _WRAP_AAD)
        except InvalidTag as exc:
            raise TamperedError("The wrapped data key does not open with its master key.") from exc


def parse_key(text: str, name: str = "BAKKME_EVIDENCE_KEY") -> MasterKey:
    return MasterKey(decode_master_key(text, name))


def new_key_text() -> str:
    """A new master key, as BAKKME_EVIDENCE_KEY wants it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def current_key() -> MasterKey:
    if not settings.BAKKME_EVIDENCE_KEY:
        raise ImproperlyConfigured(
            "BAKKME_EVIDENCE_KEY is not set: evidence cannot be stored or read. `make run` "
            "generates a local one in var/evidence.key; production sets its own."
        )
    return parse_key(settings.BAKKME_EVIDENCE_KEY)


def known_keys() -> dict[str, MasterKey]:
    """The current key and the old ones still configured for reading (during a rotation)."""
    keys = [current_key()] + [
        parse_key(text, "BAKKME_EVIDENCE_OLD_KEYS") for text in settings.BAKKME_EVIDENCE_OLD_KEYS
    ]
    return {key.key_id: key for key in keys}


def unwrap(wrapped: bytes, key_id: str) -> bytes:
    key = known_keys().get(key_id)
    if key is None:
        raise UnknownKeyError(
            f"This data key was wrapped by master key {key_id}, which is not configured: "
            "check BAKKME_EVIDENCE_KEY (and BAKKME_EVIDENCE_OLD_KEYS during a rotation)."
        )
    return key.unwrap(wrapped)


def new_data_key() -> tuple[bytes, bytes, str]:
    """(data key, the data key wrapped by the current master key, that master key's id)."""
    master = current_key()
    data_key = AESGCM.generate_key(bit_length=256)
    return data_key, master.wrap(data_key), master.key_id


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class Encryptor:
    """Feed plaintext in pieces of any size; get the stored bytes out."""

    def __init__(self, data_key: bytes, chunk_size: int = CHUNK_SIZE):
        self._aead = AESGCM(data_key)
        self._prefix = os.urandom(_PREFIX_BYTES)
        self._chunk_size = chunk_size
        self.header = MAGIC + struct.pack(">I", chunk_size) + self._prefix
        self._buffer = bytearray()
        self._index = 0

    def _seal(self, plaintext: bytes, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), plaintext, self.header)
        self._index += 1
        return sealed

    def start(self) -> bytes:
        return self.header

    def update(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        # Keep at least one byte back: the last chunk is sealed as last by finish().
        while len(self._buffer) > self._chunk_size:
            out.append(self._seal(bytes(self._buffer[: self._chunk_size]), last=False))
            del self._buffer[: self._chunk_size]
        return b"".join(out)

    def finish(self) -> bytes:
        sealed = self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return sealed


def encrypt_stream(pieces: Iterable[bytes], data_key: bytes) -> Iterator[bytes]:
    encryptor = Encryptor(data_key)
    yield encryptor.start()
    for piece in pieces:
        sealed = encryptor.update(piece)
        if sealed:
            yield sealed
    yield encryptor.finish()


def decrypt_stream(read, data_key: bytes) -> Iterator[bytes]:
    """Plaintext chunks from a file-like `read(n)`; TamperedError on any change."""
    header = read(HEADER_SIZE)
    if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
        raise TamperedError("The stored item does not start with the evidence header.")
    (chunk_size,) = struct.unpack(">I", header[len(MAGIC) : len(MAGIC) + 4])
    prefix = header[len(MAGIC) + 4 :]
    aead = AESGCM(data_key)
    sealed_size = chunk_size + TAG_SIZE
    index = 0
    current = read(sealed_size)
    while True:
        following = read(sealed_size) if len(current) == sealed_size else b""
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, index, last), current, header)
        except InvalidTag as exc:
            raise TamperedError(f"Chunk {index} of the stored item fails authentication.") from exc
        if last:
            return
        index += 1
        current = following
