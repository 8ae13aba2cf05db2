"""A local stand-in for NCMEC's CyberTipline reporting API (specs/ncmec/README.md): the calls,
their answers (reportResponse, reportDoneResponse) and error codes, HTTP Basic authentication,
and scripted faults (an NCMEC error code, an HTTP 5xx, a connection dropped mid-request)."""

import base64
import hashlib
import socket
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from lxml import etree

from legal import cybertip_xml

USERNAME = "esp-test"
PASSWORD = "placeholder-password"
PREFIX = "/ispws"


def response(code: int, description: str = "", **fields) -> bytes:
    parts = [f"<responseCode>{code}</responseCode>"]
    parts.append(f"<responseDescription>{escape(description or 'Success')}</responseDescription>")
    for name in ("reportId", "fileId", "hash"):
        if name in fields:
            parts.append(f"<{name}>{escape(str(fields[name]))}</{name}>")
    body = "".join(parts)
    return f"<?xml version='1.0' encoding='UTF-8'?><reportResponse>{body}</reportResponse>".encode()


class FakeNcmec:
    def __init__(self):
        self.calls: list[str] = []  # every request's path, in order (dropped ones too)
        self.reports: dict[str, dict] = {}
        self.faults: dict[str, list] = {}  # path -> faults for its next calls, in order
        self.documents: list[bytes] = []  # the XML documents received
        self._next_report = 70000
        self._next_file = 1
        self._lock = threading.Lock()

    def fault(self, path: str, *faults) -> None:
        """("code", 4100, "text"), ("http", 503), ("drop",), ("hash", "0"*32) for the next calls."""
        self.faults.setdefault(path, []).extend(faults)

    def count(self, path: str) -> int:
        return self.calls.count(path)

    # --- the server -----------------------------------------------------------------------------

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, body: bytes, status: int = 200):
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _authorized(self) -> bool:
                token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
                return self.headers.get("Authorization") == f"Basic {token}"

            def do_GET(self):
                path = self.path.removeprefix(PREFIX)
                fake.calls.append(path)
                if not self._authorized():
                    return self._reply(response(2000, "Authentication required"), 401)
                self._reply(response(0))

            def do_POST(self):
                path = self.path.removeprefix(PREFIX)
                with fake._lock:
                    fake.calls.append(path)
                    fault = fake.faults.get(path, [None]).pop(0) if fake.faults.get(path) else None
                length = int(self.headers.get("Content-Length", "0"))
                if fault and fault[0] == "drop":
                    self.rfile.read(min(length, 1024))  # part of the body, then hang up
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                body = self.rfile.read(length)
                if not self._authorized():
                    return self._reply(response(2000, "Authentication required"), 401)
                if fault and fault[0] == "http":
                    return self._reply(b"unavailable", fault[1])
                if fault and fault[0] == "code":
                    return self._reply(response(fault[1], fault[2]))
                handler = {
                    "/submit": fake.submit,
                    "/upload": fake.upload,
                    "/fileinfo": fake.fileinfo,
                    "/finish": fake.finish,
                    "/retract": fake.retract,
                }.get(path)
                if handler is None:
                    return self._reply(response(1210, "Resource not found"), 404)
                self._reply(handler(self.headers, body, fault))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # --- the calls ------------------------------------------------------------------------------

    def _valid(self, body: bytes):
        self.documents.append(body)
        problems = cybertip_xml.validate(body)
        if problems:
            return None, response(4100, "Validation failed: " + "; ".join(map(str, problems)))
        return etree.fromstring(body), None

    def submit(self, headers, body, fault):
        _, error = self._valid(body)
        if error:
            return error
        with self._lock:
            self._next_report += 1
            report_id = str(self._next_report)
        self.reports[report_id] = {"files": {}, "described": set(), "state": "open"}
        return response(0, reportId=report_id)

    def upload(self, headers, body, fault):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        fields = {}
        for part in message.iter_parts():
            fields[part.get_param("name", header="content-disposition")] = part.get_payload(
                decode=True
            )
        report_id = (fields.get("id") or b"").decode()
        report = self.reports.get(report_id)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] != "open":
            return response(5102, "Report already finished")
        data = fields.get("file")
        if not data:
            return response(4200, "Malformed file")
        with self._lock:
            file_id = f"file-{self._next_file}"
            self._next_file += 1
        md5 = hashlib.md5(data).hexdigest()  # noqa: S324 (NCMEC's own choice of hash)
        report["files"][file_id] = md5
        if fault and fault[0] == "hash":
            md5 = fault[1]
        return response(0, reportId=report_id, fileId=file_id, hash=md5)

    def fileinfo(self, headers, body, fault):
        root, error = self._valid(body)
        if error:
            return error
        report = self.reports.get(root.findtext("reportId"))
        if report is None:
            return response(5001, "Report does not exist")
        if root.findtext("fileId") not in report["files"]:
            return response(5002, "File does not exist")
        report["described"].add(root.findtext("fileId"))
        return response(0, reportId=root.findtext("reportId"))

    def _form_report(self, body):
        report_id = parse_qs(body.decode()).get("id", [""])[0]
        return report_id, self.reports.get(report_id)

    def finish(self, headers, body, fault):
        report_id, report = self._form_report(body)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] == "finished":
            return response(5102, "Report already finished")
        if report["state"] == "retracted":
            return response(5101, "Report already retracted")
        report["state"] = "finished"
        files = "".join(f"<fileId>{f}</fileId>" for f in report["files"])
        return (
            "<?xml version='1.0' encoding='UTF-8'?><reportDoneResponse><responseCode>0"
            f"</responseCode><reportId>{report_id}</reportId><files>{files}</files>"
            "</reportDoneResponse>"
        ).encode()

    def retract(self, headers, body, fault):
        report_id, report = self._form_report(body)
        if report is None:
            return response(5001, "Report does not exist")
        if report["state"] == "retracted":
            return response(5101, "Report already retracted")
        if report["state"] == "finished":
            return response(5102, "Report already finished")
        report["state"] = "retracted"
        return response(0, reportId=report_id)
