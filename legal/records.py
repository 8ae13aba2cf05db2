"""The platform's answers to a legal freeze's request for an account's records (legal.freeze).

receive_answer() takes one answer (POST /api/v1/records/, legal/api.py) in one transaction: the
answer as JSON becomes one evidence item of kind platform_records (evidence.vault.collect:
encrypted, hashed, custody "collect" by the integration), a RecordsAnswer row keeps its IP
events for the CyberTipline report, the request is marked answered, the case's timeline says
so, and the legal desk gets a duty to check the records. Exactly once per request and
idempotency key: the same key again answers with the stored answer, the same key with another
body is a conflict, and nothing of a refused answer is stored.
"""

import hashlib
import io
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cases.actions import record_event
from cases.models import CaseEvent
from evidence import vault
from evidence.models import EvidenceKind
from evidence.storage import evidence_storage

from . import duties
from .models import LegalDuty, PreservationRequest, RecordsAnswer

_ATTEMPTS = 3

# The event of an IP address, as the platform names it, and as NCMEC's schema does
# (ipCaptureEvent/eventName).
IP_EVENT_NAMES = {
    "login": "Login",
    "registration": "Registration",
    "purchase": "Purchase",
    "upload": "Upload",
    "other": "Other",
    "unknown": "Unknown",
}


class NoSuchRequest(Exception):
    """No request of this number that this integration answers."""


class AnswerConflict(Exception):
    """The idempotency key was used for a different answer to the request."""


@dataclass(frozen=True)
class AnswerResult:
    answer: RecordsAnswer
    created: bool


def fingerprint(body: dict) -> str:
    """SHA-256 of the answer's canonical JSON: the same body, however it is spaced or ordered."""
    return hashlib.sha256(_canonical(body)).hexdigest()


def _canonical(body: dict) -> bytes:
    # ASCII with escapes: a lone surrogate the JSON parser let through still encodes.
    return json.dumps(body, sort_keys=True, indent=1).encode()


def receive_answer(
    integration, *, request_id: int, idempotency_key: str, body: dict, records: dict
) -> AnswerResult:
    """Store one answer to request `request_id`: `body` as the platform sent it (what the
    evidence item preserves), `records` its records validated (legal.api). NoSuchRequest for a
    request this integration does not answer; AnswerConflict for a key reused with another
    body. See the module's docstring for the rules."""
    for attempt in range(_ATTEMPTS):
        try:
            return _receive(integration, request_id, idempotency_key, body, records)
        except IntegrityError:
            # A concurrent call with the same key won (SQLite has no row lock): read its answer.
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _receive(integration, request_id, key, body, records) -> AnswerResult:
    sha256 = fingerprint(body)
    stored_name = None
    try:
        with transaction.atomic():
            request = (
                PreservationRequest.objects.select_for_update()
                .select_related("case")
                .filter(pk=request_id, integration=integration)
                .first()
            )
            if request is None:
                raise NoSuchRequest(request_id)
            earlier = request.answers.filter(idempotency_key=key).first()
            if earlier is not None:
                if earlier.payload_sha256 != sha256:
                    raise AnswerConflict(
                        f"idempotency_key {key!r} was used for a different answer."
                    )
                return AnswerResult(earlier, created=False)
            number = request.answers.count() + 1
            item = vault.collect(
                io.BytesIO(_canonical(body)),
                case=request.case,
                kind=EvidenceKind.PLATFORM_RECORDS,
                original_name=f"platform-records-{request.pk}-{number}.json",
                integration=integration,
                purpose=f"platform records answering legal freeze #{request.pk}",
            )
            stored_name = item.storage_name
            answer = _record(request, integration, key, sha256, item, records)
    except BaseException:
        # The item's row went with the transaction; its ciphertext must go too.
        if stored_name is not None:
            evidence_storage().delete(stored_name)
        raise
    return AnswerResult(answer, created=True)


def _record(request, integration, key, sha256, item, records) -> RecordsAnswer:
    now = timezone.now()
    counts = {kind: len(records.get(kind) or []) for kind in PreservationRequest.RecordType.values}
    answer = RecordsAnswer.objects.create(
        request=request,
        integration=integration,
        idempotency_key=key,
        payload_sha256=sha256,
        item=item,
        ip_events=[
            {"ip": e["ip"], "at": e["at"].isoformat(), "event": e["event"]}
            for e in records.get("ip_addresses") or []
        ],
        counts=counts,
        received_at=now,
    )
    request.status = PreservationRequest.Status.ANSWERED
    request.answered_at = request.answered_at or now
    request.save(update_fields=["status", "answered_at"])
    case = request.case
    record_event(
        case,
        CaseEvent.Type.PLATFORM_RECORDS,
        None,
        freeze=request.pk,
        item=item.pk,
        integration=integration.name,
        counts=counts,
    )
    duties.open_duty(
        kind=LegalDuty.Kind.PRESERVATION_CHECK,
        case=case,
        preservation_request=request,
        title=f"Check the platform records of case #{case.pk}",
        reason=f"The platform answered legal freeze #{request.pk} (evidence #{item.pk}).",
        started_at=now,
        hours=settings.BAKKME_LEGAL_PRESERVATION_CHECK_HOURS,
    )
    return answer


def ip_capture_events(case) -> list[dict]:
    """The IP events the platform sent in answer to the case's freezes, oldest first, once
    each: [{"ip": str, "at": aware datetime, "event": NCMEC's eventName ("Login" ...)}], for
    the CyberTipline report's ipCaptureEvent entries."""
    seen = set()
    events = []
    answers = RecordsAnswer.objects.filter(request__case=case).order_by("received_at", "pk")
    for answer in answers:
        for entry in answer.ip_events:
            key = (entry["ip"], entry["at"], entry["event"])
            if key in seen:
                continue
            seen.add(key)
            events.append(
                {
                    "ip": entry["ip"],
                    "at": parse_datetime(entry["at"]),
                    "event": IP_EVENT_NAMES.get(entry["event"], "Unknown"),
                }
            )
    return sorted(events, key=lambda e: e["at"])
