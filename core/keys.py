"""Reading the evidence master key (used by settings at start-up and by evidence.crypto)."""

import base64
import binascii

from django.core.exceptions import ImproperlyConfigured


def decode_master_key(text: str, name: str = "BAKKME_EVIDENCE_KEY") -> bytes:
    """32 random bytes in URL-safe base64; anything else is a configuration error."""
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is not URL-safe base64.") from exc
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name} must hold 32 bytes; it holds {len(raw)}.")
    return raw
