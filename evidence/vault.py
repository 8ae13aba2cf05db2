"""Putting evidence in and getting it out: hashed, typed, analysed and encrypted on the way in;
decrypted and checked against its SHA-256 on every way out.

Plaintext never reaches the storage and is never held whole in memory: an upload is read in
chunks, hashed and encrypted chunk by chunk into a temporary file of ciphertext, which is then
saved through the storage API. Only an image small enough to analyse
(BAKKME_EVIDENCE_ANALYSE_MAX_BYTES) is kept in memory, for its PDQ hash, EXIF and preview.
"""

import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from . import crypto, custody
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
    """What streaming an upload into storage learnt about it."""

    storage_name: str
    wrapped_key: bytes
    key_id: str
    size: int
    sha256: str
    md5: str
    head: bytes
    analysable: bytes | None


def _chunks(source, size: int = READ_CHUNK) -> Iterator[bytes]:
    if hasattr(source, "chunks"):  # an UploadedFile
        yield from source.chunks(size)
        return
    while piece := source.read(size):
        yield piece


def seal(source, folder: str = "items", keep_for_analysis: bool = True) -> Sealed:
    """Stream `source` (a file or an UploadedFile) into evidence storage, encrypted."""
    limit = settings.BAKKME_EVIDENCE_MAX_BYTES
    analyse_limit = settings.BAKKME_EVIDENCE_ANALYSE_MAX_BYTES if keep_for_analysis else 0
    data_key, wrapped, key_id = crypto.new_data_key()
    encryptor = crypto.Encryptor(data_key)
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size, head = 0, b""
    kept: io.BytesIO | None = io.BytesIO() if analyse_limit else None
    with tempfile.TemporaryFile() as sealed_file:
        sealed_file.write(encryptor.start())
        for piece in _chunks(source):
            size += len(piece)
            if size > limit:
                raise EvidenceTooLarge(f"The file is larger than {limit:,} bytes.")
            sha256.update(piece)
            md5.update(piece)
            if len(head) < _SNIFF_BYTES:
                head += piece[: _SNIFF_BYTES - len(head)]
            if kept is not None:
                if size <= analyse_limit:
                    kept.write(piece)
                else:
                    kept = None
            sealed_file.write(encryptor.update(piece))
        sealed_file.write(encryptor.finish())
        sealed_file.seek(0)
        name = evidence_storage().save(new_name(folder), File(sealed_file))
    return Sealed(
        storage_name=name,
        wrapped_key=wrapped,
        key_id=key_id,
        size=size,
        sha256=sha256.hexdigest(),
        md5=md5.hexdigest(),
        head=head,
        analysable=kept.getvalue() if kept is not None else None,
    )


def detect_type(head: bytes, kind: str) -> str:
    """The media type from the bytes, not from the name the sender gave."""
    guess = filetype.guess(head) if head else None
    if guess is not None:
        return guess.mime
    if kind in (EvidenceKind.COMMUNICATION_LOG, EvidenceKind.ACCOUNT_SNAPSHOT):
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
    sealed = seal(source)
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
    return item


# --- Reading -------------------------------------------------------------------------------------


def _decrypted(item: EvidenceItem) -> Iterator[bytes]:
    data_key = crypto.unwrap(item.wrapped_key, item.key_id)
    with evidence_storage().open(item.storage_name, "rb") as stored:
        yield from crypto.decrypt_stream(stored.read, data_key)


def check(item: EvidenceItem) -> str | None:
    """None when the stored bytes decrypt to the collected SHA-256; else what is wrong."""
    if item.purged:
        return "the item was destroyed by retention"
    digest = hashlib.sha256()
    try:
        for piece in _decrypted(item):
            digest.update(piece)
    except crypto.TamperedError as exc:
        return str(exc)
    except FileNotFoundError:
        return "the stored item is missing"
    if digest.hexdigest() != item.sha256:
        return f"SHA-256 {digest.hexdigest()} differs from the collected {item.sha256}"
    return None


def refuse_tampered(item: EvidenceItem, problem: str, *, actor=None, purpose: str = "") -> None:
    """Record a failed verification, alert the CSO, refuse the read."""
    from bakkme_safety.roles import Role
    from staff import services as staff
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
    return _decrypted(item)


def read_bytes(item: EvidenceItem, *, actor=None, purpose: str = "") -> bytes:
    """The whole plaintext in memory: for previews of images below the analysis limit."""
    return b"".join(read_verified(item, actor=actor, purpose=purpose))


def destroy(item: EvidenceItem) -> None:
    """Remove the stored bytes; the row and its custody stay (see retention)."""
    evidence_storage().delete(item.storage_name)
