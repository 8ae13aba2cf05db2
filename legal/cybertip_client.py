"""A client of NCMEC's CyberTipline reporting API (specs/ncmec/README.md).

Standard library only (http.client): an upload streams its multipart body from an iterable of
chunks with a known Content-Length, so a file is never whole in memory nor written in plaintext.

Each call is retried with exponential backoff on network errors (a connection refused, reset or
dropped mid-upload, a timeout), HTTP 5xx and NCMEC's 1000-series codes. Other answers are not
retried: a 4000-series code (the request itself is wrong), the 2000/3000 series (credentials) and
the 5000 series (state) raise NcmecRejected with NCMEC's message for legal staff.

A deadline (set_deadline: the filing's total deadline per step) bounds all of it: no attempt
starts and no wait is slept past it, and each socket operation's timeout is capped by the time
left, so a hanging NCMEC holds a step no longer than its deadline (DeadlinePassed).

target() says where filing goes: the practice endpoint, NCMEC's test environment, NCMEC
production, or another endpoint.
"""

import base64
import http.client
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from lxml import etree

log = logging.getLogger(__name__)


class NcmecError(Exception):
    """A call that did not succeed. `code` is NCMEC's responseCode (None: no NCMEC answer)."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        self.code = code
        self.http_status = http_status
        super().__init__(message)


class NcmecRejected(NcmecError):
    """An answer that retrying will not change (4000-series and the other non-transient codes)."""


class NcmecUnavailable(NcmecError):
    """Still failing (network, HTTP 5xx, 1000-series) after the last attempt."""


class DeadlinePassed(NcmecUnavailable):
    """The deadline passed before NCMEC answered: no further attempt, no further wait."""

    def __init__(
        self, message: str, *, seconds: float, detail: str, last: NcmecError | None = None
    ):
        self.seconds = seconds
        self.detail = detail  # "2 attempts; the last: network error on /upload: ..."
        self.last = last
        super().__init__(
            message,
            code=last.code if last else None,
            http_status=last.http_status if last else None,
        )


# --- Where filing goes ----------------------------------------------------------------------------

NCMEC_TEST_URL = "https://exttest.cybertip.org/ispws"
NCMEC_PRODUCTION_URL = "https://report.cybertip.org/ispws"


@dataclass(frozen=True)
class Target:
    kind: str  # "practice", "ncmec_test", "ncmec_production" or "other"
    label: str
    url: str


def _normal(url: str) -> str:
    parts = urlsplit((url or "").strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def target(url: str | None = None) -> Target:
    """Which environment filing to `url` (default BAKKME_CYBERTIP_URL) goes to, in words for
    legal staff. Practice only for the practice endpoint's own URL (BAKKME_CYBERTIP_PRACTICE_URL):
    anything else on this machine may forward to NCMEC, so it is "Other endpoint"."""
    url = settings.BAKKME_CYBERTIP_URL if url is None else url
    normal = _normal(url)
    if normal == _normal(settings.BAKKME_CYBERTIP_PRACTICE_URL):
        return Target("practice", "Practice (local, nothing reaches NCMEC)", url)
    if normal == _normal(NCMEC_TEST_URL):
        return Target("ncmec_test", "NCMEC test environment", url)
    if normal == _normal(NCMEC_PRODUCTION_URL):
        return Target("ncmec_production", "NCMEC production", url)
    return Target("other", f"Other endpoint: {url}", url)


def same_endpoint(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def is_transient_code(code: int) -> bool:
    return 1000 <= code < 2000


@dataclass
class Answer:
    code: int
    description: str = ""
    report_id: str = ""
    file_id: str = ""
    hash: str = ""
    file_ids: list[str] = field(default_factory=list)


def parse_answer(body: bytes) -> Answer:
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"NCMEC's answer is not XML: {body[:200]!r}") from exc

    def text(tag: str) -> str:
        return (root.findtext(tag) or "").strip()

    try:
        code = int(text("responseCode"))
    except ValueError as exc:
        raise ValueError(f"NCMEC's answer has no responseCode: {body[:200]!r}") from exc
    return Answer(
        code=code,
        description=text("responseDescription"),
        report_id=text("reportId"),
        file_id=text("fileId"),
        hash=text("hash").lower(),
        file_ids=[(e.text or "").strip() for e in root.findall("files/fileId")],
    )


class CyberTiplineClient:
    def __init__(
        self,
        base_url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        backoff_max: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = (base_url or settings.BAKKME_CYBERTIP_URL).rstrip("/")
        self.username = settings.BAKKME_CYBERTIP_USERNAME if username is None else username
        self.password = settings.BAKKME_CYBERTIP_PASSWORD if password is None else password
        self.timeout = timeout or settings.BAKKME_CYBERTIP_TIMEOUT_SECONDS
        self.attempts = max(1, attempts or settings.BAKKME_CYBERTIP_ATTEMPTS)
        self.backoff = settings.BAKKME_CYBERTIP_BACKOFF_SECONDS if backoff is None else backoff
        self.backoff_max = (
            settings.BAKKME_CYBERTIP_BACKOFF_MAX_SECONDS if backoff_max is None else backoff_max
        )
        self.sleep = sleep
        self.clock = clock
        self.deadline: float | None = None  # clock() value; None: only the attempts bound a call
        self.deadline_seconds: float | None = None
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {self.base_url!r}")
        self._parts = parts

    # --- the deadline ---------------------------------------------------------------------------

    def set_deadline(self, seconds: float | None) -> None:
        """Calls from now on stop `seconds` from now, retries and waits included (None: no
        deadline, only the attempts)."""
        self.deadline_seconds = seconds
        self.deadline = None if seconds is None else self.clock() + seconds

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def _socket_timeout(self) -> float:
        left = self._left()
        if left is None:
            return self.timeout
        if left <= 0:
            raise TimeoutError("the deadline passed")
        return min(self.timeout, left)

    def _tighten(self, connection: http.client.HTTPConnection) -> None:
        """Cap the socket's timeout by the time left before its next operation."""
        timeout = self._socket_timeout()
        if connection.sock is not None:
            connection.sock.settimeout(timeout)

    def _deadline_passed(self, path: str, attempts: int, last: NcmecError | None):
        seconds = self.deadline_seconds or 0
        tried = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        detail = f"{tried}; the last: {last}" if last else tried
        return DeadlinePassed(
            f"no answer on {path} within {seconds:g} s ({detail})",
            seconds=seconds,
            detail=detail,
            last=last,
        )

    # --- one HTTP exchange ----------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self._parts.scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(self._parts.hostname, self._parts.port, timeout=self._socket_timeout())

    def _guarded(self, connection, body):
        """A streamed body whose every chunk is sent within the time left."""
        if body is None or isinstance(body, bytes | bytearray):
            return body

        def chunks():
            for chunk in body:
                self._tighten(connection)
                yield chunk

        return chunks()

    def _headers(self, content_type: str | None, length: int | None) -> dict:
        credentials = f"{self.username}:{self.password}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Accept": "application/xml, text/xml",
        }
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        return headers

    def _exchange(self, method: str, path: str, body, content_type, length) -> tuple[int, bytes]:
        connection = self._connection()
        try:
            connection.request(
                method,
                self._parts.path + path,
                body=self._guarded(connection, body),
                headers=self._headers(content_type, length),
            )
            self._tighten(connection)
            response = connection.getresponse()
            data = []
            while True:
                self._tighten(connection)
                chunk = response.read(65536)
                if not chunk:
                    return response.status, b"".join(data)
                data.append(chunk)
        finally:
            connection.close()

    # --- retries --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, make_body=None, content_type=None) -> Answer:
        """make_body() -> (body, length): called again for each attempt (a stream is used up).
        Past the deadline no attempt starts and no wait is slept: DeadlinePassed."""
        last: NcmecError | None = None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                wait = min(self.backoff * 2 ** (attempt - 2), self.backoff_max)
                left = self._left()
                if left is not None and wait >= left:
                    raise self._deadline_passed(path, attempt - 1, last)
                log.warning("CyberTipline %s: attempt %d in %.1fs (%s)", path, attempt, wait, last)
                self.sleep(wait)
            left = self._left()
            if left is not None and left <= 0:
                raise self._deadline_passed(path, attempt - 1, last)
            body, length = make_body() if make_body else (None, None)
            try:
                status, data = self._exchange(method, path, body, content_type, length)
            except (OSError, http.client.HTTPException) as exc:
                last = NcmecUnavailable(f"network error on {path}: {exc!r}")
                continue
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            if status >= 500:
                last = NcmecUnavailable(f"HTTP {status} on {path}", http_status=status)
                continue
            try:
                answer = parse_answer(data)
            except ValueError as exc:
                raise NcmecRejected(f"HTTP {status} on {path}: {exc}", http_status=status) from exc
            if answer.code == 0 and status < 400:
                return answer
            message = f"NCMEC {answer.code} on {path}: {answer.description or 'no description'}"
            if is_transient_code(answer.code):
                last = NcmecUnavailable(message, code=answer.code, http_status=status)
                continue
            raise NcmecRejected(message, code=answer.code, http_status=status)
        left = self._left()
        if left is not None and left <= 0:
            raise self._deadline_passed(path, self.attempts, last)
        raise last

    # --- the calls ------------------------------------------------------------------------------

    def status(self) -> Answer:
        return self._call("GET", "/status")

    def submit(self, report_xml: str) -> str:
        data = report_xml.encode("utf-8")
        answer = self._call("POST", "/submit", lambda: (data, len(data)), "text/xml; charset=utf-8")
        if not answer.report_id:
            raise NcmecRejected("NCMEC accepted the report but gave no reportId.", code=0)
        return answer.report_id

    def upload(
        self,
        report_id: str,
        chunks: Callable[[], Iterable[bytes]],
        size: int,
        filename: str = "file",
    ) -> Answer:
        """Upload one file: `chunks()` gives its bytes afresh (called once per attempt), `size`
        is their total. Returns the answer with fileId and NCMEC's MD5 (`hash`)."""
        boundary = "bakkme-" + secrets.token_hex(16)
        safe_name = "".join(c for c in filename if c.isalnum() or c in "._-") or "file"
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="id"\r\n\r\n'
            f"{report_id}\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def make_body():
            def stream() -> Iterator[bytes]:
                yield head
                sent = 0
                for chunk in chunks():
                    sent += len(chunk)
                    yield chunk
                if sent != size:
                    raise OSError(f"the file gave {sent} bytes, {size} expected")
                yield tail

            return stream(), len(head) + size + len(tail)

        answer = self._call(
            "POST", "/upload", make_body, f"multipart/form-data; boundary={boundary}"
        )
        if not answer.file_id:
            raise NcmecRejected("NCMEC accepted the upload but gave no fileId.", code=0)
        return answer

    def fileinfo(self, file_details_xml: str) -> Answer:
        data = file_details_xml.encode("utf-8")
        return self._call("POST", "/fileinfo", lambda: (data, len(data)), "text/xml; charset=utf-8")

    def _form(self, path: str, report_id: str) -> Answer:
        data = urlencode({"id": report_id}).encode()
        return self._call(
            "POST", path, lambda: (data, len(data)), "application/x-www-form-urlencoded"
        )

    def finish(self, report_id: str) -> Answer:
        return self._form("/finish", report_id)

    def retract(self, report_id: str) -> Answer:
        return self._form("/retract", report_id)
