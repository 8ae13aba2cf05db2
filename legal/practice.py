"""A practice CyberTipline: NCMEC's reporting API (specs/ncmec/README.md) served on this machine,
so legal staff can file end to end and nothing reaches NCMEC.

`make run` starts it beside the web server (`manage.py practice_cybertipline`) and points filing
at it. It speaks the same protocol: HTTP Basic authentication; GET /status and /xsd; POST
/submit, /upload, /fileinfo, /finish and /retract with NCMEC's answers (reportResponse,
reportDoneResponse) and response codes (4110 malformed XML, 4100 validation failed against the
schema, 5001 no such report, 5002 no such file, 5101 already retracted, 5102 already finished,
2000 authentication required, 1210 no such call). Every document is validated against NCMEC's
schema (legal/schemas/cyber_tipline.xsd), as NCMEC does.

It keeps what it received, in memory, for as long as it runs: each report's document, each
file's name, size and MD5 (never the file itself), each fileinfo document, and the documents it
refused with the reason; its root page (/) lists them (plain HTML, no script; the same
credentials). The tests use it as their stand-in NCMEC and script faults into it (`fault`).
"""

import base64
import hashlib
import hmac
import html
import socket
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from django.utils import timezone
from lxml import etree

from . import cybertip_xml

PREFIX = "/ispws"
# A fault holds its request unanswered for at most this long (seconds), or until stop().
HANG_SECONDS = 600


def response(code: int, description: str = "", **fields) -> bytes:
    """A <reportResponse> as NCMEC gives it."""
    parts = [f"<responseCode>{code}</responseCode>"]
    parts.append(f"<responseDescription>{escape(description or 'Success')}</responseDescription>")
    for name in ("reportId", "fileId", "hash"):
        if name in fields:
            parts.append(f"<{name}>{escape(str(fields[name]))}</{name}>")
    body = "".join(parts)
    return f"<?xml version='1.0' encoding='UTF-8'?><reportResponse>{body}</reportResponse>".encode()


class PracticeCyberTipline:
    """The practice endpoint: its state (what it received) and its HTTP server.

    `reports` maps a report id to {"state": "open" | "finished" | "retracted", "files": {file
    id: MD5}, "described": {file ids}, ...}; `calls` lists every request's path in order.
    """

    def __init__(self, username: str, password: str, *, first_report_id: int = 70001):
        self.username = username
        self.password = password
        self.calls: list[str] = []
        self.reports: dict[str, dict] = {}
        self.refused: list[dict] = []  # documents refused: when, call, code, reason, document
        self.faults: dict[str, list] = {}  # path -> faults for its next calls, in order
        self._next_report = first_report_id
        self._next_file = 1
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- scripted faults (tests) ----------------------------------------------------------------

    def fault(self, path: str, *faults) -> None:
        """Faults for the next calls of `path`, in order: ("code", 4100, "text") an NCMEC error
        code, ("http", 503) an HTTP status, ("drop",) the connection cut mid-request, ("hash",
        "0" * 32) a wrong MD5 in the upload's answer, ("slow", seconds) the answer that late,
        ("hang",) the request held unanswered (until stop(), or ("hang", seconds)). None: no
        fault for that call."""
        with self._lock:
            self.faults.setdefault(path, []).extend(faults)

    def count(self, path: str) -> int:
        return self.calls.count(path)

    # --- serving --------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        """Bind the server (port 0: any free port) and set `url` (the API's base URL)."""
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        bound_host, bound_port = self.server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}{PREFIX}"
        return self.server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "PracticeCyberTipline":
        """Serve from a thread of its own (tests)."""
        server = self.serve(host, port)
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # held requests end
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def authorized(self, header: str | None) -> bool:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest((header or "").encode(), f"Basic {token}".encode())

    def _handler(self):
        practice = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "PracticeCyberTipline"

            def log_message(self, *args):
                pass

            def _reply(self, body: bytes, status: int = 200, content_type="text/xml"):
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                if content_type == "text/html":
                    self.send_header("Content-Security-Policy", "default-src 'none'")
                    self.send_header("X-Content-Type-Options", "nosniff")
                    self.send_header("Cache-Control", "no-store")
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="Practice CyberTipline"')
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _authorized(self) -> bool:
                return practice.authorized(self.headers.get("Authorization"))

            def do_GET(self):
                if self.path in ("/", "/index.html"):
                    if not self._authorized():
                        return self._reply(b"Authentication required", 401, "text/plain")
                    return self._reply(practice.page().encode(), content_type="text/html")
                path = self.path.removeprefix(PREFIX)
                with practice._lock:
                    practice.calls.append(path)
                if not self._authorized():
                    return self._reply(response(2000, "Authentication required"), 401)
                if path == "/xsd":
                    return self._reply(cybertip_xml.SCHEMA_PATH.read_bytes())
                if path == "/status":
                    return self._reply(response(0))
                self._reply(response(1210, "Resource not found"), 404)

            def do_POST(self):
                path = self.path.removeprefix(PREFIX)
                with practice._lock:
                    practice.calls.append(path)
                    queued = practice.faults.get(path)
                    fault = queued.pop(0) if queued else None
                length = int(self.headers.get("Content-Length", "0"))
                if fault and fault[0] == "drop":
                    self.rfile.read(min(length, 1024))  # part of the body, then hang up
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                body = self.rfile.read(length)
                if fault and fault[0] == "hang":
                    practice._stopping.wait(fault[1] if len(fault) > 1 else HANG_SECONDS)
                    self.close_connection = True
                    return  # never answered
                if fault and fault[0] == "slow":
                    practice._stopping.wait(fault[1])
                if not self._authorized():
                    return self._reply(response(2000, "Authentication required"), 401)
                if fault and fault[0] == "http":
                    return self._reply(b"unavailable", fault[1])
                if fault and fault[0] == "code":
                    return self._reply(response(fault[1], fault[2]))
                call = {
                    "/submit": practice.submit,
                    "/upload": practice.upload,
                    "/fileinfo": practice.fileinfo,
                    "/finish": practice.finish,
                    "/retract": practice.retract,
                }.get(path)
                if call is None:
                    return self._reply(response(1210, "Resource not found"), 404)
                self._reply(call(self.headers, body, fault))

        return Handler

    # --- the calls ------------------------------------------------------------------------------

    def _document(self, call: str, body: bytes):
        """The document parsed and valid against the schema, or the error answer (kept)."""
        try:
            root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError as exc:
            return None, self._refuse(call, body, 4110, f"Malformed XML: {exc}")
        problems = cybertip_xml.validate(body)
        if problems:
            reason = "Validation failed: " + "; ".join(map(str, problems))
            return None, self._refuse(call, body, 4100, reason)
        return root, None

    def _refuse(self, call: str, body: bytes, code: int, reason: str) -> bytes:
        with self._lock:
            self.refused.append(
                {
                    "at": timezone.now(),
                    "call": call,
                    "code": code,
                    "reason": reason,
                    "document": body,
                }
            )
        return response(code, reason)

    def submit(self, headers, body, fault=None) -> bytes:
        _, error = self._document("/submit", body)
        if error:
            return error
        with self._lock:
            report_id = str(self._next_report)
            self._next_report += 1
            self.reports[report_id] = {
                "state": "open",
                "files": {},
                "described": set(),
                "document": body,
                "received_at": timezone.now(),
                "uploads": {},
                "file_details": {},
            }
        return response(0, reportId=report_id)

    def upload(self, headers, body, fault=None) -> bytes:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + headers.get("Content-Type", "").encode() + b"\r\n\r\n" + body
        )
        fields, names = {}, {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[name] = part.get_payload(decode=True)
                names[name] = part.get_filename() or ""
        report_id = (fields.get("id") or b"").decode(errors="replace")
        report = self.reports.get(report_id)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] != "open":
            return response(5102 if report["state"] == "finished" else 5101, "Report is closed")
        data = fields.get("file")
        if not data:
            return response(4200, "Malformed file")
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324 (NCMEC's own choice of hash)
        with self._lock:
            file_id = f"file-{self._next_file}"
            self._next_file += 1
            report["files"][file_id] = md5
            report.setdefault("uploads", {})[file_id] = {
                "name": names.get("file", ""),
                "size": len(data),
                "received_at": timezone.now(),
            }
        if fault and fault[0] == "hash":
            md5 = fault[1]
        return response(0, reportId=report_id, fileId=file_id, hash=md5)

    def fileinfo(self, headers, body, fault=None) -> bytes:
        root, error = self._document("/fileinfo", body)
        if error:
            return error
        report_id, file_id = root.findtext("reportId"), root.findtext("fileId")
        report = self.reports.get(report_id)
        if report is None:
            return response(5001, "Report does not exist")
        if file_id not in report["files"]:
            return response(5002, "File does not exist")
        with self._lock:
            report["described"].add(file_id)
            report.setdefault("file_details", {})[file_id] = body
        return response(0, reportId=report_id)

    def _form_report(self, body: bytes):
        report_id = parse_qs(body.decode(errors="replace")).get("id", [""])[0]
        return report_id, self.reports.get(report_id)

    def finish(self, headers, body, fault=None) -> bytes:
        report_id, report = self._form_report(body)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] == "finished":
            return response(5102, "Report already finished")
        if report["state"] == "retracted":
            return response(5101, "Report already retracted")
        report["state"] = "finished"
        report["finished_at"] = timezone.now()
        files = "".join(f"<fileId>{escape(f)}</fileId>" for f in report["files"])
        return (
            "<?xml version='1.0' encoding='UTF-8'?><reportDoneResponse><responseCode>0"
            f"</responseCode><reportId>{escape(report_id)}</reportId><files>{files}</files>"
            "</reportDoneResponse>"
        ).encode()

    def retract(self, headers, body, fault=None) -> bytes:
        report_id, report = self._form_report(body)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] == "retracted":
            return response(5101, "Report already retracted")
        if report["state"] == "finished":
            return response(5102, "Report already finished")
        report["state"] = "retracted"
        report["retracted_at"] = timezone.now()
        return response(0, reportId=report_id)

    # --- the page -------------------------------------------------------------------------------

    def page(self) -> str:
        """What it received, newest report first: plain HTML, everything escaped."""
        e = html.escape
        rows = []
        with self._lock:
            reports = sorted(self.reports.items(), key=lambda kv: kv[0], reverse=True)
            refused = list(reversed(self.refused))
        for report_id, report in reports:
            uploads = report.get("uploads", {})
            details = report.get("file_details", {})
            files = "".join(
                f"<tr><td>{e(file_id)}</td><td>{e(uploads.get(file_id, {}).get('name', ''))}</td>"
                f"<td>{uploads.get(file_id, {}).get('size', '')}</td><td><code>{e(md5)}</code></td>"
                f"<td>{'yes' if file_id in report['described'] else 'no'}</td></tr>"
                for file_id, md5 in report["files"].items()
            )
            described = "".join(
                f"<h4>fileinfo of {e(file_id)}</h4><pre>{e(_pretty(doc))}</pre>"
                for file_id, doc in details.items()
            )
            when = " ".join(
                f"{label} {_when(report[key])}."
                for key, label in (
                    ("received_at", "Received"),
                    ("finished_at", "Finished"),
                    ("retracted_at", "Retracted"),
                )
                if report.get(key)
            )
            rows.append(
                f'<section id="report-{e(report_id)}"><h2>Report {e(report_id)}: '
                f"{e(report['state'])}</h2><p>{when}</p>"
                "<table><thead><tr><th>file id</th><th>name</th><th>bytes</th><th>MD5</th>"
                f"<th>described</th></tr></thead><tbody>{files}</tbody></table>"
                f"<h3>The report</h3><pre>{e(_pretty(report.get('document', b'')))}</pre>"
                f"{described}</section>"
            )
        refusals = "".join(
            f"<li>{_when(r['at'])} {e(r['call'])}: {r['code']} {e(r['reason'])}"
            f"<pre>{e(_pretty(r['document']))}</pre></li>"
            for r in refused
        )
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Practice CyberTipline</title></head><body>"
            "<h1>Practice CyberTipline</h1>"
            "<p>A local stand-in for NCMEC's CyberTipline reporting API: nothing sent here "
            f"reaches NCMEC. API: <code>{e(self.url)}</code>. What it received since it started "
            "(kept in memory; files by their MD5 only):</p>"
            + ("".join(rows) or "<p>No report received yet.</p>")
            + (f"<h2>Refused documents</h2><ul>{refusals}</ul>" if refusals else "")
            + "</body></html>"
        )


def _pretty(document: bytes) -> str:
    try:
        root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        return document.decode("utf-8", errors="replace")
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"
