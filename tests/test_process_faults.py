"""Faults between processes (issue 13, findings 6-8): a slow platform and two delivery runs, a
wrong evidence key at the start of a real server or worker, database connections that die
under a running server."""

import base64
import collections
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django.db import connection

from cases import actions
from cases import outbox as action_outbox
from cases.actions import DecisionInput
from cases.models import EnforcementAction
from deliveries import outbox
from evidence import crypto, vault
from evidence.checks import master_key_opens_the_vault
from evidence.models import EvidenceItem, EvidencePackage

from .factories import make_report

BASE_DIR = django_settings.BASE_DIR
ON_POSTGRESQL = connection.vendor == "postgresql"


# --- Finding 6: a slow platform, two runs at once ----------------------------------------------


class SlowPlatform:
    """A webhook receiver that answers after `delay` seconds and counts the calls it got for
    each Idempotency-Key."""

    def __init__(self, delay: float):
        self.delay = delay
        self.calls = collections.Counter()
        self.lock = threading.Lock()

    def handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with platform.lock:
                    platform.calls[self.headers["Idempotency-Key"]] += 1
                time.sleep(platform.delay)
                answer = json.dumps({"status": "received"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def slow_platform(settings):
    """Answers in 1 s; a call may take 2 s and a lease lasts 3 s (timeout + margin), so a run
    that leased every delivery at its start would see its leases run out half-way."""
    platform = SlowPlatform(delay=1.0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), platform.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.BAKKME_WEBHOOK_TIMEOUT_SECONDS = 2
    settings.BAKKME_WEBHOOK_LEASE_MARGIN_SECONDS = 1
    settings.BAKKME_PLATFORM_WEBHOOK_SECRET = "test-webhook-secret"
    # Not yet: the run queued by each decision must find nothing to send to.
    settings.BAKKME_PLATFORM_WEBHOOK_URL = ""
    yield platform, f"http://127.0.0.1:{server.server_port}/webhooks/bakkme"
    server.shutdown()
    server.server_close()


def pending_deliveries() -> int:
    return action_outbox.deliverable_actions().filter(status="pending").count()


def keep_delivering(errors: list, start: threading.Barrier, deadline: float) -> None:
    """One worker of the delivery schedule: a run, and another as soon as it ends, until
    nothing is left to send (the schedule runs every minute; here without the wait)."""
    try:
        start.wait()
        while pending_deliveries() and time.monotonic() < deadline:
            outbox.deliver_due()
            time.sleep(0.05)
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_slow_platform_gets_each_delivery_once_from_two_runs_at_once(
    slow_platform, senior, settings
):
    """PostgreSQL: row locks with SKIP LOCKED; SQLite: writers take turns (BEGIN IMMEDIATE).
    Either way a delivery whose lease another run took over is never called again."""
    platform, url = slow_platform
    for _ in range(3):  # remove content and ban each (the referral is not sent)
        case = make_report(category="grooming", reporter={"anonymous": True}).case
        actions.decide_case(
            case, DecisionInput(violation="grooming", rationale="placeholder"), actor=senior
        )
    expected = {
        action_outbox.action_idempotency_key(action)
        for action in action_outbox.deliverable_actions()
    }
    assert len(expected) == 6
    settings.BAKKME_PLATFORM_WEBHOOK_URL = url

    errors, start = [], threading.Barrier(2)
    deadline = time.monotonic() + 30
    runs = [
        threading.Thread(target=keep_delivering, args=(errors, start, deadline)) for _ in range(2)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(40)

    assert errors == []
    assert dict(platform.calls) == dict.fromkeys(expected, 1)
    statuses = action_outbox.deliverable_actions().values_list("status", flat=True)
    assert set(statuses) == {EnforcementAction.Status.SENT}
    assert set(action_outbox.deliverable_actions().values_list("attempts", flat=True)) == {1}


# --- Finding 7: a wrong evidence key stops every process ---------------------------------------


def collect_evidence(case) -> None:
    vault.collect(io.BytesIO(b"placeholder evidence bytes"), case=case, original_name="a.bin")


@pytest.mark.django_db
def test_the_vault_check_unwraps_a_data_key_of_every_key_in_use_by_items_and_packages(
    settings, legal
):
    right = crypto.current_key()
    assert master_key_opens_the_vault() == []  # nothing stored yet: passes
    case = make_report(category="grooming").case
    collect_evidence(case)
    assert master_key_opens_the_vault() == []

    # A package built under a key since dropped (its build ended after a rotation re-wrapped
    # the stored packages): it would never open again, so the start is refused.
    dropped = crypto.parse_key(crypto.new_key_text())
    package = EvidencePackage.objects.create(
        case=case,
        purpose="placeholder purpose",
        recipient="Placeholder Police",
        requested_by=legal,
        status=EvidencePackage.Status.READY,
        storage_name="packages/placeholder.zip.enc",
        wrapped_key=dropped.wrap(os.urandom(32)),
        key_id=dropped.key_id,
    )
    (error,) = master_key_opens_the_vault()
    assert error.id == "evidence.E002"
    assert dropped.key_id in error.msg and f"evidence package #{package.pk}" in error.msg
    settings.BAKKME_EVIDENCE_OLD_KEYS = [base64.urlsafe_b64encode(dropped.key).decode()]
    assert master_key_opens_the_vault() == []

    # A data key that carries the right key's id but does not open with it is refused too: the
    # id alone proves nothing.
    item = EvidenceItem.objects.get()
    EvidenceItem.objects.filter(pk=item.pk).update(wrapped_key=dropped.wrap(os.urandom(32)))
    (error,) = master_key_opens_the_vault()
    assert error.id == "evidence.E002"
    assert f"evidence item #{item.pk}" in error.msg and right.key_id in error.msg


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url_of_the_test(**options) -> str:
    """The running test's database, for a process started by the test."""
    db = connection.settings_dict
    if not ON_POSTGRESQL:
        return f"sqlite:///{db['NAME']}"
    password = urllib.parse.quote(db["PASSWORD"] or "", safe="")
    query = f"?{urllib.parse.urlencode(options)}" if options else ""
    return (
        f"postgres://{db['USER']}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}{query}"
    )


def process_env(evidence_key: str, evidence_root, **db_options) -> dict:
    """The production settings module on the test's database, as a server would run."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bakkme_safety.settings",
        "DATABASE_URL": database_url_of_the_test(**db_options),
        "BAKKME_SECRET_KEY": "test-only-secret-key",
        "BAKKME_EVIDENCE_KEY": evidence_key,
        "BAKKME_EVIDENCE_OLD_KEYS": "",
        "BAKKME_EVIDENCE_ROOT": str(evidence_root),
        "BAKKME_SECURE_SSL_REDIRECT": "0",  # plain http to a local port
        "BAKKME_Q_WORKERS": "1",
    }
    env.pop("BAKKME_DEBUG", None)
    return env


class Gunicorn:
    """gunicorn serving bakkme_safety.wsgi on a free local port, one sync worker."""

    def __init__(self, env: dict):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}"]
            + ["--workers", "1", "--timeout", "30", "--no-control-socket"]
            + ["bakkme_safety.wsgi:application"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def get(self, path: str, **headers) -> int | None:
        """The status of one GET, or None when nothing answered."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def wait_until_serving(self, path: str, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            status = self.get(path)
            if status is not None:
                return status
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not serve {path}:\n{self.stop()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output


@pytest.mark.django_db(transaction=True)
def test_no_process_starts_with_a_wrong_evidence_key(evidence_root):
    collect_evidence(make_report(category="grooming").case)
    wrong = crypto.new_key_text()

    # gunicorn runs no system checks: the application itself refuses to load, and gunicorn
    # exits without having served a request.
    server = Gunicorn(process_env(wrong, evidence_root))
    served = []
    while server.process.poll() is None:
        served.append(server.get("/admin/login/"))
        time.sleep(0.1)
        if len(served) > 200:  # 20 s: it is serving after all
            break
    output = server.stop()
    assert server.process.returncode not in (None, 0), output
    assert set(served) <= {None}, output
    assert "Worker failed to boot" in output and "BAKKME_EVIDENCE_OLD_KEYS do not hold" in output

    # The worker refuses at once (the system check).
    started = time.monotonic()
    try:
        worker = subprocess.run(
            [sys.executable, "manage.py", "qcluster"],
            cwd=BASE_DIR,
            env=process_env(wrong, evidence_root),
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"qcluster started with a wrong key: {exc.stderr}")
    assert worker.returncode != 0
    assert "evidence.E002" in worker.stderr
    assert time.monotonic() - started < 20

    # With the right key the same server serves.
    server = Gunicorn(process_env(django_settings.BAKKME_EVIDENCE_KEY, evidence_root))
    try:
        assert server.wait_until_serving("/admin/login/") == 200
    finally:
        server.stop()


# --- Finding 8: database connections under a server --------------------------------------------

# A session cookie makes the login page look the session up: each request queries the database.
SESSION_COOKIE = "sessionid=placeholder-session-key"


@pytest.mark.skipif(
    not ON_POSTGRESQL, reason="PostgreSQL only: SQLite has no server that drops connections"
)
@pytest.mark.django_db(transaction=True)
def test_a_request_after_the_database_dropped_the_servers_connection_is_answered(evidence_root):
    name = f"bakkme-faults-{os.getpid()}"
    env = process_env(django_settings.BAKKME_EVIDENCE_KEY, evidence_root, application_name=name)
    server = Gunicorn(env)
    try:
        assert server.wait_until_serving("/admin/login/") == 200
        assert server.get("/admin/login/", Cookie=SESSION_COOKIE) == 200
        with connection.cursor() as cursor:
            # The worker's persistent connection: dropped as a restart or failover would.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                [name],
            )
            assert [row[0] for row in cursor.fetchall()] == [True]
        assert server.get("/admin/login/", Cookie=SESSION_COOKIE) == 200
    finally:
        output = server.stop()
    assert "Internal Server Error" not in output


SHOW_DATABASE_SETTINGS = """
import sys
import django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(sys.argv[2], db["CONN_MAX_AGE"], db["CONN_HEALTH_CHECKS"])
"""


def test_make_run_serves_without_persistent_database_connections(tmp_path):
    """scripts/run-local.sh (what `make run` starts), with a stand-in .venv/bin/python that
    loads the settings in the environment each command gets and prints its database settings;
    a server started without the local script keeps its connections (with health checks)."""
    (tmp_path / "show_db.py").write_text(SHOW_DATABASE_SETTINGS)
    stand_in = tmp_path / ".venv" / "bin" / "python"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "show_db.py"} "$@"\n')
    stand_in.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BAKKME_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bakkme_safety.settings",
        PYTHONPATH=str(BASE_DIR),
        BAKKME_DEBUG="1",  # as `make run` sets them
        BAKKME_EVIDENCE_KEY=crypto.new_key_text(),
    )

    local = subprocess.run(
        ["bash", str(BASE_DIR / "scripts" / "run-local.sh"), "127.0.0.1", "8000"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert local.returncode == 0, local.stderr
    assert "runserver 0 True" in local.stdout.splitlines()

    server = subprocess.run(
        [str(stand_in), "wsgi", "gunicorn"], env=env, capture_output=True, text=True, timeout=30
    )
    assert server.stdout.splitlines() == ["gunicorn 60 True"], server.stderr
