"""One signed POST to the platform's webhook, and what came back; and the retry delays."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings


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
