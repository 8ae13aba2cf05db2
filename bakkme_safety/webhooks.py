"""Signed webhooks to the platform: the signature scheme, the HTTP call, the retry delays.

Every call is a POST of a JSON body with three headers:

    X-BakkMe-Timestamp: <unix seconds when signed>
    X-BakkMe-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    Idempotency-Key:    <stable per delivery: the same on every retry>

The receiver recomputes the HMAC over the raw body bytes with the shared secret, compares in
constant time, refuses a timestamp more than BAKKME_WEBHOOK_TOLERANCE_SECONDS away from its own
clock (a replayed old call), and drops a call whose Idempotency-Key it has already processed
(a retry of a call whose answer was lost). verify_signature() below is the reference.

The delivery bookkeeping (WebhookDelivery) is shared by the enforcement actions
(cases.EnforcementAction) and the reporter acknowledgments (reports.Acknowledgment); the
delivery service is cases/webhooks.py.
"""

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

SIGNATURE_VERSION = "v1"
HEADER_TIMESTAMP = "X-BakkMe-Timestamp"
HEADER_SIGNATURE = "X-BakkMe-Signature"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"


class WebhookDelivery(models.Model):
    """Delivery bookkeeping of one thing sent to the platform's webhook.

    in_flight_until is the lease of the run that is calling the platform right now: set (and
    committed) before the HTTP call, cleared when its answer is recorded. Another run skips a
    leased row; a run that died mid-call leaves a lease that runs out, and the row is retried
    with the same idempotency key.
    """

    attempts = models.PositiveIntegerField(default=0, db_default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    in_flight_until = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.TextField(blank=True, default="", db_default="")
    last_error = models.CharField(max_length=500, blank=True, default="", db_default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


DELIVERY_FIELDS = [f.name for f in WebhookDelivery._meta.local_fields]


def configured() -> bool:
    """Both a URL and a secret: without either, nothing is sent (deliveries wait)."""
    return bool(settings.BAKKME_PLATFORM_WEBHOOK_URL and settings.BAKKME_PLATFORM_WEBHOOK_SECRET)


def encode(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, idempotency_key: str, now: datetime) -> dict:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": "BakkMe-Safety-Webhooks/1",
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature(secret, timestamp, body),
        HEADER_IDEMPOTENCY_KEY: idempotency_key,
    }


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature_header: str,
    now: datetime,
    tolerance_seconds: int | None = None,
) -> bool:
    """The receiver's check, for reference: a v1 signature over timestamp + "." + body that
    matches (constant-time), and a timestamp within the tolerance of the receiver's clock."""
    if tolerance_seconds is None:
        tolerance_seconds = settings.BAKKME_WEBHOOK_TOLERANCE_SECONDS
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now.timestamp() - sent) > tolerance_seconds:
        return False
    candidates = [
        part.strip()
        for part in (signature_header or "").split(",")
        if part.strip().startswith(f"{SIGNATURE_VERSION}=")
    ]
    expected = signature(secret, sent, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


@dataclass
class Answer:
    """What one call got: an HTTP status, the start of the body, the JSON "status" of the body
    if it had one; or a network error."""

    code: int | None
    body: str = ""
    error: str = ""
    status: str = ""

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def post(url: str, body: bytes, headers: dict) -> Answer:
    """One POST; never raises for an HTTP or network failure (it is an Answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(  # noqa: S310 (the URL is a setting, not user input)
            request, timeout=settings.BAKKME_WEBHOOK_TIMEOUT_SECONDS
        ) as response:
            return _answer(response.status, response.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read(MAX_ANSWER_BYTES)
        except OSError:
            raw = b""
        return _answer(exc.code, raw)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(None, "", f"{type(exc).__name__}: {reason}"[:500])


# At most this much of an answer is read (its "status" is looked for in it).
MAX_ANSWER_BYTES = 65536


def _answer(code: int, raw: bytes) -> Answer:
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    status = data.get("status") if isinstance(data, dict) else None
    return Answer(
        code,
        text[: settings.BAKKME_WEBHOOK_RESPONSE_EXCERPT_CHARS],
        status=status if isinstance(status, str) else "",
    )


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after the n-th failed attempt: base, 2 base, 4 base ... capped."""
    base = settings.BAKKME_WEBHOOK_BACKOFF_SECONDS
    cap = settings.BAKKME_WEBHOOK_BACKOFF_MAX_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))
