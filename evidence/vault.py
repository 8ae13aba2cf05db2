"""Putting evidence in and getting it out: hashed, typed, analysed and encrypted on the way in;
decrypted and checked against its SHA-256 on every way out.

Plaintext never reaches the storage or the disk and is never held whole in memory: an upload is
hashed and encrypted chunk by chunk as it arrives (Sealer) into a temporary file of ciphertext,
which is then saved through the storage API. Only an image small enough to analyse
(BAKKME_EVIDENCE_ANALYSE_MAX_BYTES) is kept in memory, for its PDQ hash, EXIF and preview.
"""

import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import filetype
from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from . import crypto, custody, signals
from .images import analyse_image
from .models import CustodyEvent, EvidenceItem, EvidenceKind
from .storage import evidence_storage, new_name

READ_CHUNK = crypto.CHUNK_SIZE
_SNIFF_BYTES = 8192


class EvidenceTooLarge(Exception):
    pass


class EvidenceIntegrityError(Exception):
    """The stored bytes are not the evidence collected: the read is refused."""


@dataclass
class Sealed:
    """What sealing a file learnt about it; `file` is the ciphertext until store() saves it."""

    wrapped_key: bytes
    key_id: str
    size: int
    sha256: str
    md5: str
    head: bytes
    analysable: bytes | None
    file: IO[bytes] | None = None
    storage_name: str = ""


class Sealer:
    """A file to write plaintext into, in pieces of any size, that keeps only ciphertext: each
    piece is hashed (SHA-256, MD5) and encrypted into a temporary file at once.

    Used for uploads as they arrive (evidence.forms), for packages as they are zipped, and by
    seal() for files already at hand. `limit` bounds the plaintext (EvidenceTooLarge); an image
    up to `analyse_limit` bytes is also kept in memory for its PDQ hash, EXIF and preview.
    """

    def __init__(self, *, limit: int | None, analyse_limit: int = 0, dir: str | None = None):
        self.limit = limit
        self.analyse_limit = analyse_limit
        data_key, self.wrapped_key, self.key_id = crypto.new_data_key()
        self._encryptor = crypto.Encryptor(data_key)
        self._sha256, self._md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._head = b""
        self._kept: io.BytesIO | None = io.BytesIO() if analyse_limit else None
        self._file = tempfile.TemporaryFile(dir=dir)  # noqa: SIM115  closed by store()/discard()
        self._file.write(self._encryptor.start())

    def write(self, piece: bytes) -> int:
        self.size += len(piece)
        if self.limit is not None and self.size > self.limit:
            self.discard()
            raise EvidenceTooLarge(f"The file is larger than {self.limit:,} bytes.")
        self._sha256.update(piece)
        self._md5.update(piece)
        if len(self._head) < _SNIFF_BYTES:
            self._head += piece[: _SNIFF_BYTES - len(self._head)]
        if self._kept is not None:
            if self.size <= self.analyse_limit:
                self._kept.write(piece)
            else:
                self._kept = None
        self._file.write(self._encryptor.update(piece))
        return len(piece)

    def flush(self) -> None:
        """(zipfile asks for it.)"""

    def discard(self) -> None:
        self._file.close()

    def finish(self) -> Sealed:
        self._file.write(self._encryptor.finish())
        self._file.seek(0)
        return Sealed(
            wrapped_key=self.wrapped_key,
            key_id=self.key_id,
            size=self.size,
            sha256=self._sha256.hexdigest(),
            md5=self._md5.hexdigest(),
            head=self._head,
            analysable=self._kept.getvalue() if self._kept is not None else None,
            file=self._file,
        )


def store(sealed: Sealed, folder: str = "items") -> Sealed:
    """Save the ciphertext in evidence storage (under a name that says nothing)."""
    try:
        sealed.storage_name = evidence_storage().save(new_name(folder), File(sealed.file))
    finally:
        sealed.file.close()
    return sealed


def _chunks(source, size: int = READ_CHUNK) -> Iterator[bytes]:
    if hasattr(source, "chunks"):  # an UploadedFile
        yield from source.chunks(size)
        return
    while piece := source.read(size):
        yield piece


def seal(source, folder: str = "items", keep_for_analysis: bool = True) -> Sealed:
    """Stream `source` (a file or an UploadedFile) into evidence storage, encrypted."""
    sealer = Sealer(
        limit=settings.BAKKME_EVIDENCE_MAX_BYTES,
        analyse_limit=settings.BAKKME_EVIDENCE_ANALYSE_MAX_BYTES if keep_for_analysis else 0,
    )
    for piece in _chunks(source):
        sealer.write(piece)
    return store(sealer.finish(), folder)


class SealedUpload(UploadedFile):
    """An uploaded file that was sealed as it arrived: what the request's FILES hold when the
    evidence upload handler ran. Its `file` is ciphertext; `size` the plaintext's size."""

    def __init__(self, sealed: Sealed, name: str, content_type: str | None):
        super().__init__(sealed.file, name, content_type, sealed.size)
        self.sealed = sealed


def detect_type(head: bytes, kind: str) -> str:
    """The media type from the bytes, not from the name the sender gave."""
    guess = filetype.guess(head) if head else None
    if guess is not None:
        return guess.mime
    if kind in (
        EvidenceKind.COMMUNICATION_LOG,
        EvidenceKind.ACCOUNT_SNAPSHOT,
        EvidenceKind.PLATFORM_RECORDS,
    ):
        return "application/json"
    return "application/octet-stream"


def collect(
    source,
    *,
    case,
    kind: str = EvidenceKind.MEDIA,
    report=None,
    original_name: str = "",
    actor=None,
    integration=None,
    purpose: str = "",
) -> EvidenceItem:
    """Preserve one file as evidence of `case`: stored encrypted, analysed, custody "collect".

    A corrupt, truncated or bomb image is preserved all the same (it is evidence) and flagged.
    If the database write fails the stored ciphertext is removed again: nothing half-stored.
    """
    sealed = store(source.sealed) if isinstance(source, SealedUpload) else seal(source)
    try:
        media_type = detect_type(sealed.head, kind)
        analysis = analyse_image(sealed.analysable, media_type, sealed.size)
        with transaction.atomic():
            item = EvidenceItem.objects.create(
                case=case,
                report=report,
                kind=kind,
                original_name=(original_name or "")[:255],
                media_type=media_type,
                size=sealed.size,
                sha256=sealed.sha256,
                md5=sealed.md5,
                pdq=analysis.pdq,
                pdq_quality=analysis.pdq_quality,
                exif=analysis.exif,
                problem=analysis.problem,
                storage_name=sealed.storage_name,
                wrapped_key=sealed.wrapped_key,
                key_id=sealed.key_id,
                collected_by=actor,
                collected_via=integration,
            )
            custody.record(
                item,
                CustodyEvent.Action.COLLECT,
                actor=actor,
                system=f"integration:{integration.name}" if integration else None,
                purpose=purpose or "preserved as evidence",
                detail={"size": sealed.size, "md5": sealed.md5, "media_type": media_type},
            )
    except BaseException:
        evidence_storage().delete(sealed.storage_name)
        raise
    # The detection app matches it against the hash banks (a CSAM match takes the automatic
    # actions) and, for a message log small enough to have been kept in memory, scans it for
    # the lexicon and the blocked links (detection/receivers.py).
    signals.item_collected.send(sender=EvidenceItem, item=item, plaintext=sealed.analysable)
    return item


# --- Reading -------------------------------------------------------------------------------------


def decrypted(sealed) -> Iterator[bytes]:
    """The plaintext of anything sealed in evidence storage (an item, a package): an object
    with storage_name, wrapped_key and key_id. TamperedError on any change to the bytes."""
    data_key = crypto.unwrap(sealed.wrapped_key, sealed.key_id)
    with evidence_storage().open(sealed.storage_name, "rb") as stored:
        yield from crypto.decrypt_stream(stored.read, data_key)


def check_sealed(sealed, what: str = "item") -> str | None:
    """None when the stored bytes decrypt to the recorded SHA-256 (`sealed.sha256`); else what
    is wrong."""
    digest = hashlib.sha256()
    try:
        for piece in decrypted(sealed):
            digest.update(piece)
    except crypto.TamperedError as exc:
        return str(exc)
    except FileNotFoundError:
        return f"the stored {what} is missing"
    if digest.hexdigest() != sealed.sha256:
        return f"SHA-256 {digest.hexdigest()} differs from the recorded {sealed.sha256}"
    return None


def check(item: EvidenceItem) -> str | None:
    """None when the stored bytes decrypt to the collected SHA-256; else what is wrong."""
    if item.purged:
        return "the item was destroyed by retention"
    return check_sealed(item)


def refuse_tampered(item: EvidenceItem, problem: str, *, actor=None, purpose: str = "") -> None:
    """Record a failed verification, alert the CSO, refuse the read."""
    from bakkme_safety.roles import Role
    from staff import actions as staff
    from staff.models import Notification

    now = timezone.now()
    with transaction.atomic():
        custody.record(
            item,
            CustodyEvent.Action.VERIFY_FAILED,
            actor=actor,
            purpose=purpose,
            detail={"problem": problem},
            at=now,
        )
        staff.notify(
            Notification.Kind.EVIDENCE_INTEGRITY,
            {cso: [item.case_id] for cso in staff.staff_in_role(Role.CHILD_SAFETY_OFFICER)},
            now,
        )
    raise EvidenceIntegrityError(f"Evidence #{item.pk} failed its integrity check: {problem}.")


def read_verified(item: EvidenceItem, *, actor=None, purpose: str = "") -> Iterator[bytes]:
    """The item's plaintext, in chunks, after checking it whole against its SHA-256.

    Two passes over the stored bytes: the first checks, the second hands out. Nothing is
    handed out before the check, and no plaintext is written anywhere in between; a change
    between the passes fails the chunks' authentication.
    """
    problem = check(item)
    if problem:
        refuse_tampered(item, problem, actor=actor, purpose=purpose)
    return decrypted(item)


def read_bytes(item: EvidenceItem, *, actor=None, purpose: str = "") -> bytes:
    """The whole plaintext in memory: for previews of images below the analysis limit."""
    return b"".join(read_verified(item, actor=actor, purpose=purpose))


def destroy(item: EvidenceItem) -> None:
    """Remove the stored bytes; the row and its custody stay (see retention)."""
    evidence_storage().delete(item.storage_name)
