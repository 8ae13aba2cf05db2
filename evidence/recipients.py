"""Encryption for a package's recipient: age (age-encryption.org/v1), through pyrage.

A package can be encrypted for its recipient's age public key ("age1...", which they make with
`age-keygen`) on top of the vault's own encryption: the bytes handed out are then the age
ciphertext of the zip, and only the recipient's identity file (key.txt) opens them, with `age`
or `rage`. Only X25519 recipients: no passphrases (they would travel beside the package), no SSH
keys, no plugins (hardware keys need the plugin binary on this server).

pyrage's streaming API (encrypt_io) pulls the plaintext from a reader, while the zip is pushed
into its target as it is written: AgeEncryptor turns one into the other with a thread and a
small bounded buffer in memory, so the zip never waits anywhere whole, and never on disk.
"""

import threading
from collections import deque
from pathlib import Path

import pyrage
from pyrage import x25519

from . import crypto

# What every age file starts with: the binary header, or the ASCII armour (age -a).
AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
# At most this much plaintext waits between the zip and the encryptor (two vault chunks): the
# zip writes pieces of up to one chunk.
BUFFERED_BYTES = 2 * crypto.CHUNK_SIZE
MALFORMED_KEY = (
    'Not an age public key: give the recipient\'s "age1..." key, the "Public key" line that '
    "age-keygen prints (X25519 keys only; no SSH keys, passphrases or plugin keys)."
)
SECRET_KEY_GIVEN = (
    "That is the recipient's secret key (AGE-SECRET-KEY-1...): it must stay with them. Give "
    'the public key ("age1...") instead; as the secret key has been shared, the recipient '
    "should make a new pair with age-keygen."
)


class RecipientKeyError(ValueError):
    """A recipient key or identity file that age cannot use; the message says why."""


class RecipientEncryptionError(Exception):
    """Encrypting for the recipient failed (the message says how)."""


def normalize_recipient(text: str) -> str:
    """The recipient key as age writes it, or RecipientKeyError when it is not an X25519 age
    recipient. Whitespace around it (a pasted line) is dropped."""
    text = (text or "").strip()
    if is_secret_key(text):
        raise RecipientKeyError(SECRET_KEY_GIVEN)
    if not text.lower().startswith(RECIPIENT_PREFIX):
        raise RecipientKeyError(MALFORMED_KEY)
    try:
        return str(x25519.Recipient.from_str(text.lower()))
    except pyrage.RecipientError as exc:
        raise RecipientKeyError(MALFORMED_KEY) from exc


def is_secret_key(text: str) -> bool:
    """Whether `text` is an age identity (a secret key) rather than a recipient."""
    return IDENTITY_PREFIX in (text or "").upper()


def is_encrypted(path) -> bool:
    """Whether the file at `path` is an age file (binary or armoured)."""
    with open(path, "rb") as source:
        head = source.read(len(AGE_ARMOR))
    return head.startswith(AGE_MAGIC) or head.startswith(AGE_ARMOR)


def read_identities(path) -> list:
    """The X25519 identities in an age identity file (age-keygen's key.txt: comment lines
    starting with "#", then "AGE-SECRET-KEY-1..."); RecipientKeyError when it holds none."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientKeyError(f"Cannot read the identity file {path}: {exc}.") from exc
    identities = []
    for line in lines:
        line = line.strip()
        if line.upper().startswith(IDENTITY_PREFIX):
            try:
                identities.append(x25519.Identity.from_str(line))
            except pyrage.IdentityError as exc:
                raise RecipientKeyError(f"{path} holds a damaged age identity ({exc}).") from exc
    if not identities:
        raise RecipientKeyError(
            f'{path} holds no age identity (a line "{IDENTITY_PREFIX}...", as age-keygen '
            "writes it)."
        )
    return identities


def decrypt_file(path, identity_path, target) -> None:
    """Decrypt the age file `path` with the identities in `identity_path` into `target`,
    streaming; RecipientKeyError when they do not open it, or when it was changed (age
    authenticates every 64 KiB chunk: a changed byte fails the chunk)."""
    identities = read_identities(identity_path)
    name = Path(path).name
    try:
        pyrage.decrypt_file(str(path), str(target), identities)
    except pyrage.DecryptError as exc:
        raise RecipientKeyError(
            f"The identity in {identity_path} does not open {name}: it is encrypted for "
            f"another key, or its header is damaged (age: {exc})."
        ) from exc
    except OSError as exc:  # how pyrage reports a chunk that fails its authentication
        raise RecipientKeyError(
            f"{name} is damaged or was changed: it does not decrypt ({exc})."
        ) from exc


class _Aborted(Exception):
    """The writer gave up: the encryptor stops reading."""


class AgeEncryptor:
    """A file to write plaintext into, in pieces, whose age ciphertext (for one recipient) goes
    into `sink` (anything with write() and flush(), e.g. a vault.Sealer).

    pyrage.encrypt_io reads from a reader, in a thread of its own; write() hands it each piece
    through a buffer of at most BUFFERED_BYTES (or one piece, when larger), waiting while it is
    full. The thread touches only the sink, never the database. close() ends the file and waits
    for the last ciphertext; abort() stops the thread and leaves the sink to its owner.
    """

    def __init__(self, recipient: str, sink, *, buffered: int = BUFFERED_BYTES):
        self._recipient = x25519.Recipient.from_str(normalize_recipient(recipient))
        self._sink = sink
        self._limit = buffered
        self._pieces: deque[memoryview] = deque()
        self._held = 0
        self._ended = self._aborted = self._finished = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="age-encryptor", daemon=True)
        self._thread.start()

    # The writer's side (the zip).

    def write(self, piece) -> int:
        data = memoryview(bytes(piece))
        if not data:  # zipfile writes empty pieces; to the reader, b"" is the end of the file
            return 0
        with self._ready:
            while self._held and self._held + len(data) > self._limit and not self._stopped():
                self._ready.wait()
            self._raise_error()
            if self._ended or self._aborted:
                raise ValueError("write to a closed AgeEncryptor")
            if self._finished:  # the thread ended before the zip did: refuse, never wait
                raise RecipientEncryptionError("The age encryptor ended before the package did.")
            self._pieces.append(data)
            self._held += len(data)
            self._ready.notify_all()
        return len(data)

    def flush(self) -> None:
        """(zipfile asks for it; the ciphertext is flushed by close().)"""

    def close(self) -> None:
        """End the plaintext; returns once all the ciphertext is in the sink."""
        with self._ready:
            self._ended = True
            self._ready.notify_all()
        self._thread.join()
        with self._ready:
            self._raise_error()

    def abort(self) -> None:
        """Stop without finishing (the build failed): the thread ends, the sink is left as is."""
        with self._ready:
            self._aborted = True
            self._ready.notify_all()
        self._thread.join()

    def _stopped(self) -> bool:
        return self._error is not None or self._finished

    def _raise_error(self) -> None:
        if self._error is not None:
            raise RecipientEncryptionError(
                f"Encrypting the package for its recipient failed: {self._error}"
            ) from self._error

    # The encryptor's side (the thread): pyrage reads with read(size).

    def read(self, size: int = -1) -> bytes:
        with self._ready:
            while not self._pieces and not self._ended and not self._aborted:
                self._ready.wait()
            if self._aborted:
                raise _Aborted("the package build stopped")
            if not self._pieces:
                return b""  # the end of the plaintext
            piece = self._pieces[0]
            if 0 <= size < len(piece):
                out, self._pieces[0] = piece[:size], piece[size:]
            else:
                out = self._pieces.popleft()
            self._held -= len(out)
            self._ready.notify_all()
            return bytes(out)

    def _run(self) -> None:
        try:
            pyrage.encrypt_io(_Reader(self), self._sink, [self._recipient])
        except BaseException as exc:  # handed to the writer's side
            with self._ready:
                self._error = exc
                self._ready.notify_all()
        else:
            with self._ready:
                self._finished = True
                self._ready.notify_all()


class _Reader:
    """What pyrage reads from: only read(), so it cannot mistake the encryptor for a file to
    write to."""

    def __init__(self, encryptor: AgeEncryptor):
        self.read = encryptor.read
