"""Matching media against the hash banks (README "Hash banks and PDQ matching").

Exact hashes (MD5, SHA-256) are an index lookup in the database. PDQ hashes are matched by
Hamming distance <= BAKKME_PDQ_MAX_DISTANCE through PDQIndex, an in-memory multi-index hash
(MIH) on numpy: the 256 bits are cut into 16 chunks of 16 bits; two hashes at most 31 bits apart
have at least one chunk at most 1 bit apart (pigeonhole: 16 chunks of >= 2 differing bits are
>= 32 bits), so probing each chunk's value and its 16 one-bit neighbours in a sorted per-chunk
table finds every candidate, and an exact XOR + popcount over the candidates keeps those within
the distance. The answers are exact (the same as a brute-force scan); bench/pdq.py compares
speed and answers with python-threatexchange's faiss indexes.

How processes share the index: the banks' "version" (count, largest id, sum of ids and latest
creation time of the PDQ entries of enabled banks; one aggregate query) names it. The first
process to see a version builds the index from the database and saves its arrays under
BAKKME_PDQ_INDEX_DIR/<version> (written aside, then renamed into place, so no process reads a
half-written one); every other process (gunicorn workers, qcluster workers) maps those files
read-only instead of building again, and the operating system keeps one copy of their pages in
memory. Each process keeps its index in this module (`_cache`) and asks for the version at most
every BAKKME_PDQ_INDEX_REFRESH_SECONDS, so a new entry matches within that interval (60 s by
default) without a restart, and an unchanged bank costs one aggregate query a minute per
process. A new version's files replace the older ones (a process still mapping them keeps its
pages until it moves on); they are removed once no process can still be about to load them.
"""

import hashlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Sum

from cases.actions import apply_csam_hash_match
from evidence.images import analyse_image
from evidence.vault import detect_type

from .hashbanks import normalise_hash
from .models import Detection, DetectionMethod, HashEntry, HashMatch, SignalType

_CHUNKS = 16  # 16 chunks of 16 bits: exact for distances up to 2 * 16 - 1 = 31
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_FLIPS = np.concatenate([[0], 1 << np.arange(16)]).astype(np.uint32)
_PROBE_CHUNK = np.repeat(np.arange(_CHUNKS), len(_FLIPS))


def pdq_bytes(hexes: list[str]) -> np.ndarray:
    """(n, 32) uint8 from 64-hex-digit PDQ strings."""
    if not hexes:
        return np.empty((0, 32), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(-1, 32)


def _chunk_values(codes: np.ndarray) -> np.ndarray:
    return (codes[..., 0::2].astype(np.uint32) << 8) | codes[..., 1::2]


class PDQIndex:
    """An exact radius search over PDQ hashes; ids[i] is the caller's id of hash i."""

    ARRAYS = ("codes", "ids", "offsets", "positions")

    def __init__(self, hexes: list[str], ids):
        self.codes = np.ascontiguousarray(pdq_bytes(hexes))
        self.ids = np.asarray(ids, dtype=np.int64)
        n = len(self.codes)
        chunks = _chunk_values(self.codes)  # (n, 16)
        offsets = np.zeros((_CHUNKS, 65537), dtype=np.int64)
        positions = np.empty(_CHUNKS * n, dtype=np.int32)
        for c in range(_CHUNKS):
            column = chunks[:, c]
            positions[c * n : (c + 1) * n] = np.argsort(column, kind="stable")
            offsets[c, 1:] = np.cumsum(np.bincount(column, minlength=65536)) + c * n
            offsets[c, 0] = c * n
        self.offsets, self.positions = offsets, positions

    def __len__(self):
        return len(self.codes)

    def save(self, directory: Path) -> None:
        """Write the arrays as .npy files into `directory`, which must not exist yet: they are
        written into a temporary directory beside it, then renamed into place at once."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
        try:
            for name in self.ARRAYS:
                np.save(staging / f"{name}.npy", getattr(self, name))
            os.rename(staging, directory)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not directory.is_dir():  # not another process's rename winning: a real failure
                raise

    @classmethod
    def load(cls, directory: Path) -> "PDQIndex":
        """The index saved in `directory`, its arrays mapped read-only (shared pages)."""
        index = cls.__new__(cls)
        for name in cls.ARRAYS:
            setattr(index, name, np.load(directory / f"{name}.npy", mmap_mode="r"))
        return index

    def search(self, pdq_hex: str, max_distance: int) -> list[tuple[int, int]]:
        """(id, distance) of every hash within max_distance (<= 31) of pdq_hex."""
        if not len(self.codes):
            return []
        if max_distance > 2 * _CHUNKS - 1:
            raise ValueError(f"PDQIndex is exact up to {2 * _CHUNKS - 1} bits.")
        query = pdq_bytes([pdq_hex])[0]
        values = (_chunk_values(query)[:, None] ^ _FLIPS[None, :]).reshape(-1)
        starts = self.offsets[_PROBE_CHUNK, values]
        lengths = self.offsets[_PROBE_CHUNK, values + 1] - starts
        total = int(lengths.sum())
        if not total:
            return []
        index = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        candidates = np.unique(self.positions[index])
        distances = _POPCOUNT[self.codes[candidates] ^ query].sum(axis=1, dtype=np.int32)
        keep = distances <= max_distance
        return list(zip(self.ids[candidates[keep]].tolist(), distances[keep].tolist(), strict=True))


# --- The per-process index, following the banks ----------------------------------------------

_cache: dict = {"index": None, "version": None, "checked_at": float("-inf")}
_lock = threading.Lock()


def _pdq_entries():
    return HashEntry.objects.filter(signal_type=SignalType.PDQ, bank__enabled=True)


def bank_version() -> tuple:
    got = _pdq_entries().aggregate(
        count=Count("id"), last=Max("id"), ids=Sum("id"), newest=Max("created_at")
    )
    newest = got["newest"].timestamp() if got["newest"] else 0
    return (got["count"], got["last"] or 0, got["ids"] or 0, int(newest * 1_000_000))


def pdq_index() -> PDQIndex:
    """This process's index, loaded or built when the banks changed (checked at most every
    BAKKME_PDQ_INDEX_REFRESH_SECONDS)."""
    now = time.monotonic()
    if (
        _cache["index"] is not None
        and now - _cache["checked_at"] < settings.BAKKME_PDQ_INDEX_REFRESH_SECONDS
    ):
        return _cache["index"]
    with _lock:
        version = bank_version()
        if _cache["index"] is None or version != _cache["version"]:
            _cache["index"] = _shared_index(version)
            _cache["version"] = version
        _cache["checked_at"] = time.monotonic()
        return _cache["index"]


def _shared_index(version: tuple) -> PDQIndex:
    """The index of this bank version: mapped from the files another process saved, or built
    from the database and saved for the others."""
    root = Path(settings.BAKKME_PDQ_INDEX_DIR)
    directory = root / "-".join(str(part) for part in version)
    if directory.is_dir():
        try:
            return PDQIndex.load(directory)
        except (OSError, ValueError):
            shutil.rmtree(directory, ignore_errors=True)  # damaged: build it again
    rows = list(_pdq_entries().order_by("id").values_list("id", "value"))
    index = PDQIndex([v for _, v in rows], [i for i, _ in rows])
    try:
        index.save(directory)
    except OSError:
        return index  # a read-only or full disk: this process keeps its own copy
    _remove_stale(root, keep=directory)
    return index


def _remove_stale(root: Path, keep: Path) -> None:
    """Remove the older versions' files once no process can still be about to load them (they
    all asked for the version since); a process mapping them keeps its pages."""
    cutoff = time.time() - max(60, 2 * settings.BAKKME_PDQ_INDEX_REFRESH_SECONDS)
    for old in root.iterdir():
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            continue  # another process removed it


def reset_index() -> None:
    """Forget this process's index (tests; the next match rebuilds it)."""
    with _lock:
        _cache.update(index=None, version=None, checked_at=float("-inf"))


# --- Matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    entry: HashEntry
    distance: int

    def as_json(self) -> dict:
        return {
            "bank": self.entry.bank.name,
            "entry": self.entry.pk,
            "signal_type": self.entry.signal_type,
            "distance": self.distance,
        }


def match_hashes(
    *, md5: str = "", sha256: str = "", pdq: str = "", pdq_quality: int | None = None
) -> list[Match]:
    """The enabled banks' entries these hashes match, nearest first. A PDQ hash with a known
    quality below BAKKME_PDQ_MIN_QUALITY is not matched (too little detail to trust). One query
    for the exact hashes, one more only when the PDQ index finds candidates."""
    found: dict[int, Match] = {}
    entries = HashEntry.objects.select_related("bank").filter(bank__enabled=True)
    exact = Q()
    if md5:
        exact |= Q(signal_type=SignalType.MD5, value=md5.lower())
    if sha256:
        exact |= Q(signal_type=SignalType.SHA256, value=sha256.lower())
    if exact:
        for entry in entries.filter(exact):
            found[entry.pk] = Match(entry, 0)
    if pdq and (pdq_quality is None or pdq_quality >= settings.BAKKME_PDQ_MIN_QUALITY):
        near = dict(pdq_index().search(pdq.lower(), settings.BAKKME_PDQ_MAX_DISTANCE))
        if near:
            # Read again: the bank may have been disabled since the index was built.
            for entry in entries.filter(pk__in=near):
                found.setdefault(entry.pk, Match(entry, near[entry.pk]))
    return sorted(found.values(), key=lambda m: (m.distance, m.entry.pk))


def match_query(signal_type: str, value: str) -> list[Match]:
    """One hash from the match API; ValueError when it is not a valid hash of that type."""
    value = normalise_hash(signal_type, value)
    return match_hashes(**{signal_type: value})


def match_file(data: bytes) -> list[Match]:
    """Hash a file (MD5, SHA-256, and PDQ when it is an image) without storing it, and match."""
    media_type = detect_type(data[:8192], "media")
    analysis = analyse_image(data, media_type, len(data))
    return match_hashes(
        md5=hashlib.md5(data).hexdigest(),  # noqa: S324 - the banks' hash, not security
        sha256=hashlib.sha256(data).hexdigest(),
        pdq=analysis.pdq,
        pdq_quality=analysis.pdq_quality,
    )


def match_item(item) -> list[HashMatch]:
    """Match an evidence item at ingest; record each new match (once per item and entry) with
    its hash detection (detection.Detection) and, for a CSAM bank, take the automatic actions
    (cases.actions.apply_csam_hash_match)."""
    matches = match_hashes(
        md5=item.md5, sha256=item.sha256, pdq=item.pdq, pdq_quality=item.pdq_quality
    )
    created = []
    for match in matches:
        try:
            with transaction.atomic():
                record = HashMatch.objects.create(
                    item=item, entry=match.entry, distance=match.distance
                )
        except IntegrityError:  # matched before (at-least-once delivery): nothing more to do
            continue
        created.append(record)
    if created:
        Detection.objects.bulk_create(
            [
                Detection(
                    case_id=item.case_id,
                    report_id=item.report_id,
                    item=item,
                    method=DetectionMethod.HASH,
                    matched={**Match(m.entry, m.distance).as_json(), "match": m.pk},
                )
                for m in created
            ]
        )
    csam = [m for m in created if m.entry.bank.is_csam]
    if csam:
        apply_csam_hash_match(item, csam)
    return created
