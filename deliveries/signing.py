"""Signed webhooks to the platform: the signature scheme.

Every call is a POST of a JSON body with three headers:

    X-BakkMe-Timestamp: <unix seconds when signed>
    X-BakkMe-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    Idempotency-Key:    <stable per delivery: the same on every retry>

The receiver recomputes the HMAC over the raw body bytes with the shared secret, compares in
constant time, refuses a timestamp more than BAKKME_WEBHOOK_TOLERANCE_SECONDS away from its own
clock (a replayed old call), and drops a call whose Idempotency-Key it has already processed
(a retry of a call whose answer was lost). verify_signature() below is the reference.

The delivery bookkeeping is deliveries.models.WebhookDelivery; the runs are deliveries/outbox.py.
"""

import hashlib
import hmac
import json
from datetime import datetime

from django.conf import settings

SIGNATURE_VERSION = "v1"
HEADER_TIMESTAMP = "X-BakkMe-Timestamp"
HEADER_SIGNATURE = "X-BakkMe-Signature"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"


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
