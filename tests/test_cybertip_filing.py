"""Filing in the background (issue 14): "File" returns at once and a task files the report, the
report's page shows each step, a hanging NCMEC fails the report after the step's deadline with a
clear reason and the filer is told, a second delivery of the task does nothing; the practice
CyberTipline that `make run` starts, and where a filing goes. Placeholder data only."""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from evidence import crypto
from legal import actions, practice, tasks
from legal.cybertip_client import CyberTiplineClient, DeadlinePassed, NcmecRejected, target
from legal.models import CyberTiplineReport
from staff.models import Notification

from . import ncmec_server
from .test_cybertip import case_with_evidence

pytestmark = pytest.mark.django_db
Status = CyberTiplineReport.Status
BASE_DIR = django_settings.BASE_DIR
STEP = re.compile(r'<p id="filing-step"><strong>(.*?)</strong>', re.S)
REFRESH = 'http-equiv="refresh"'


@pytest.fixture
def ncmec(settings):
    server = ncmec_server.FakeNcmec().start()
    settings.BAKKME_CYBERTIP_URL = server.url
    settings.BAKKME_CYBERTIP_USERNAME = ncmec_server.USERNAME
    settings.BAKKME_CYBERTIP_PASSWORD = ncmec_server.PASSWORD
    settings.BAKKME_CYBERTIP_BACKOFF_SECONDS = 0.001
    settings.BAKKME_CYBERTIP_BACKOFF_MAX_SECONDS = 0.01
    settings.BAKKME_CYBERTIP_TIMEOUT_SECONDS = 5
    settings.BAKKME_CYBERTIP_REPORTER_EMAIL = "safety@bakkme.example"
    settings.BAKKME_CYBERTIP_REPORTER_PHONE = "+1 555 0100"
    yield server
    server.stop()


@pytest.fixture
def filer(db):
    from .factories import UserFactory

    return UserFactory(username="lena", roles=["legal"], email="lena@bakkme.example")


@pytest.fixture
def case(integration, cso, filer):
    return case_with_evidence(integration, cso, filer)


def report_page(client, report):
    return client.get(f"/admin/legal/cybertiplinereport/{report.pk}/change/")


def step_shown(page) -> str:
    found = STEP.search(page.content.decode())
    return found.group(1).strip() if found else ""


def press_file(client, case):
    return client.post(f"/admin/legal/cybertiplinereport/case/{case.pk}/file/", {"confirm": "on"})


# --- "File" returns at once; the task files -----------------------------------------------------


def test_file_returns_at_once_and_a_task_files_the_report(
    ncmec, case, filer, client, django_capture_on_commit_callbacks
):
    client.force_login(filer)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        answer = press_file(client, case)
    # The view answered before anything went to NCMEC: the filing is only queued.
    report = actions.current_report(case)
    assert answer.status_code == 302
    assert answer.url == f"/admin/legal/cybertiplinereport/{report.pk}/change/"
    assert ncmec.calls == [] and len(queued) == 1
    assert report.step == report.Step.QUEUED and not report.report_id
    page = report_page(client, report)
    assert b"Filing started" in page.content
    assert step_shown(page) == "Waiting for a worker" and REFRESH in page.content.decode()
    assert b"No worker has taken this filing yet" not in page.content
    a_while_ago = timezone.now() - timezone.timedelta(minutes=2)
    CyberTiplineReport.objects.filter(pk=report.pk).update(step_started_at=a_while_ago)
    assert b"No worker has taken this filing yet" in report_page(client, report).content

    queued[0]()  # the worker takes the task (Q_CLUSTER sync in tests: it runs here)
    report.refresh_from_db()
    assert report.status == Status.FINISHED and report.report_id in ncmec.reports
    assert ncmec.calls == ["/submit", "/upload", "/upload", "/fileinfo", "/fileinfo", "/finish"]
    page = report_page(client, report)
    assert step_shown(page) == f"Finished: NCMEC report {report.report_id}"
    assert REFRESH not in page.content.decode()


def test_the_page_shows_each_step_as_the_task_runs(
    ncmec, case, filer, client, monkeypatch, django_capture_on_commit_callbacks
):
    client.force_login(filer)
    seen = []

    def look(report):  # legal staff reload the report's page while the worker is at a step
        page = report_page(client, report)
        seen.append((step_shown(page), REFRESH in page.content.decode()))

    monkeypatch.setattr(actions, "_step_started", look)
    with django_capture_on_commit_callbacks(execute=True):
        press_file(client, case)
    assert seen == [
        ("Submitting the report", True),
        ("Uploading file 1 of 2", True),
        ("Uploading file 2 of 2", True),
        ("Describing file 1 of 2 (fileinfo)", True),
        ("Describing file 2 of 2 (fileinfo)", True),
        ("Finishing the report", True),
    ]
    report = actions.current_report(case)
    assert report.status == Status.FINISHED


# --- The step's deadline --------------------------------------------------------------------------


def test_a_hanging_ncmec_fails_the_report_after_the_step_deadline_and_tells_the_filer(
    ncmec, case, filer, client, settings, django_capture_on_commit_callbacks
):
    settings.BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS = 1.5
    settings.BAKKME_CYBERTIP_TIMEOUT_SECONDS = 30  # one call alone would block far longer
    settings.BAKKME_CYBERTIP_ATTEMPTS = 5
    # The first upload goes through; NCMEC then holds every upload unanswered.
    ncmec.fault("/upload", None, *[("hang",)] * 5)
    client.force_login(filer)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        started = time.monotonic()
        answer = press_file(client, case)
        answered_in = time.monotonic() - started
    assert answer.status_code == 302 and ncmec.calls == [] and answered_in < 1.5

    started = time.monotonic()
    queued[0]()
    took = time.monotonic() - started
    assert 1.5 <= took < 6, took  # the deadline, not 5 attempts of 30 s

    report = actions.current_report(case)
    assert report.status == Status.FAILED_NEEDS_REVIEW and report.step == report.Step.STOPPED
    assert report.ncmec_message.startswith(
        "NCMEC did not answer the upload of file 2 of 2 within 1.5 s ("
    )
    assert f"NCMEC report {report.report_id} and what it received before are kept" in (
        report.ncmec_message
    )
    assert ncmec.count("/finish") == 0 and ncmec.count("/fileinfo") == 0
    # The person who pressed File is told, with the reason and what to do.
    notice = Notification.objects.get(recipient=filer, kind=Notification.Kind.CYBERTIP_STOPPED)
    assert notice.case_id == case.pk and f"case #{case.pk} stopped" in notice.title
    assert report.ncmec_message in notice.body and "Continue the filing" in notice.body
    # The page says it plainly and stops reloading.
    page = report_page(client, report).content.decode()
    assert REFRESH not in page
    assert "did not answer the upload of file 2 of 2 within 1.5 s" in page
    assert 'id="filing-what-to-do"' in page

    # Filed again once NCMEC answers: it goes on from there, never a second submission.
    ncmec.faults.clear()
    with django_capture_on_commit_callbacks(execute=True):
        press_file(client, case)
    report.refresh_from_db()
    assert report.status == Status.FINISHED and report.ncmec_message == ""
    assert ncmec.count("/submit") == 1 and len(ncmec.reports) == 1


def test_a_hanging_submission_fails_without_a_report_id(ncmec, case, filer, settings):
    settings.BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS = 1
    settings.BAKKME_CYBERTIP_TIMEOUT_SECONDS = 30
    ncmec.fault("/submit", *[("hang",)] * 5)
    with pytest.raises(actions.FilingError, match="did not answer the submission") as raised:
        actions.file_report(case, filer)
    assert "No report id came back; NCMEC may still have received the report" in str(raised.value)
    report = actions.current_report(case)
    assert report.status == Status.FAILED_NEEDS_REVIEW and not report.report_id
    assert ncmec.calls == ["/submit"]  # the deadline passed during the first attempt


def test_the_deadline_caps_a_single_call_and_the_backoff(ncmec):
    ncmec.fault("/finish", ("hang",))
    client = CyberTiplineClient(timeout=30, attempts=3)
    client.set_deadline(0.5)
    started = time.monotonic()
    with pytest.raises(DeadlinePassed, match=r"no answer on /finish within 0.5 s"):
        client.finish("1")
    assert time.monotonic() - started < 2 and ncmec.count("/finish") == 1

    waits = []
    ncmec.fault("/retract", ("http", 503), ("http", 503))
    client = CyberTiplineClient(attempts=3, backoff=10, backoff_max=60, sleep=waits.append)
    client.set_deadline(5)  # the first wait (10 s) would end past it: no wait, no attempt 2
    with pytest.raises(DeadlinePassed, match="1 attempt; the last: HTTP 503"):
        client.retract("1")
    assert waits == [] and ncmec.count("/retract") == 1


# --- Twice at once, a dead run -------------------------------------------------------------------


def test_a_second_delivery_during_a_filing_does_nothing(
    ncmec, case, filer, monkeypatch, django_capture_on_commit_callbacks
):
    again = []

    def deliver_again(report):
        if report.step == report.Step.UPLOAD and not again:
            calls = list(ncmec.calls)
            again.append(tasks.file_cybertip_report(report.pk))
            assert ncmec.calls == calls  # it sent nothing
            # Nor can the filing be retracted under the worker's feet.
            with pytest.raises(ValidationError, match="being filed now"):
                actions.retract(report, filer, reason="placeholder")

    monkeypatch.setattr(actions, "_step_started", deliver_again)
    with django_capture_on_commit_callbacks(execute=True):
        actions.request_filing(case, filer)
    assert again == ["nothing to do"]
    report = actions.current_report(case)
    assert report.status == Status.FINISHED
    assert ncmec.count("/submit") == 1 and ncmec.count("/upload") == 2
    # And delivered again after it finished: nothing either.
    assert tasks.file_cybertip_report(report.pk) == "nothing to do"
    assert ncmec.count("/submit") == 1


@pytest.mark.django_db(transaction=True)
def test_the_lease_lives_as_long_as_its_run(ncmec, integration, cso, filer, settings):
    """A worker's filing outside any transaction, as in production: its lease (0.6 s here) is
    renewed while a slow upload (1.5 s) runs, so the task delivered again meanwhile does
    nothing."""
    settings.BAKKME_CYBERTIP_LEASE_SECONDS = 0.6
    case = case_with_evidence(integration, cso, filer)
    ncmec.fault("/upload", ("slow", 1.5))
    report = actions.request_filing(case, filer, queue=False)
    done = {}

    def worker():
        try:
            done["report"] = actions.run_filing(report.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    for _ in range(100):
        if ncmec.count("/upload"):
            break
        time.sleep(0.05)
    time.sleep(1.0)  # the lease, unrenewed, would have run out by now
    assert tasks.file_cybertip_report(report.pk) == "nothing to do"
    thread.join(timeout=30)
    assert done["report"].status == Status.FINISHED
    assert ncmec.count("/submit") == 1 and ncmec.count("/upload") == 2


def test_a_dead_run_is_taken_over_and_a_live_one_left_alone(ncmec, case, filer, monkeypatch):
    def crash(report, step):
        if step == "uploaded":
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(actions, "_checkpoint", crash)
    with pytest.raises(RuntimeError):
        actions.file_report(case, filer)
    monkeypatch.setattr(actions, "_checkpoint", lambda report, step: None)
    report = actions.current_report(case)
    # As if its worker had been killed mid-upload: the run's lease is still on the report.
    Report = CyberTiplineReport
    live = timezone.now() + timezone.timedelta(seconds=30)
    Report.objects.filter(pk=report.pk).update(
        step=Report.Step.UPLOAD, lease_token="a" * 32, lease_until=live
    )
    assert tasks.file_cybertip_report(report.pk) == "nothing to do"
    assert ncmec.count("/upload") == 1

    Report.objects.filter(pk=report.pk).update(lease_until=timezone.now())  # it ran out
    assert tasks.file_cybertip_report(report.pk).startswith("finished")
    assert ncmec.count("/submit") == 1 and ncmec.count("/upload") == 2


def test_a_report_id_from_one_endpoint_is_never_sent_to_another(
    ncmec, case, filer, settings, monkeypatch
):
    def crash(report, step):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(actions, "_checkpoint", crash)
    with pytest.raises(RuntimeError):
        actions.file_report(case, filer)
    monkeypatch.setattr(actions, "_checkpoint", lambda report, step: None)
    other = ncmec_server.FakeNcmec().start()
    try:
        settings.BAKKME_CYBERTIP_URL = other.url
        with pytest.raises(actions.FilingError, match="its report id means nothing there"):
            actions.file_report(case, filer)
        with pytest.raises(ValidationError, match="its report id means nothing there"):
            actions.retract(actions.current_report(case), filer, reason="placeholder")
        assert other.calls == []
    finally:
        other.stop()


# --- The command ---------------------------------------------------------------------------------


def test_cybertip_file_queues_unless_told_to_wait(
    ncmec, case, filer, django_capture_on_commit_callbacks
):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("cybertip_file", case.pk, "--user", filer.username, stdout=out)
    assert "queued" in out.getvalue() and ncmec.calls == [] and len(queued) == 1
    queued[0]()
    assert actions.current_report(case).status == Status.FINISHED


# --- Where a filing goes; the practice endpoint --------------------------------------------------


@pytest.mark.parametrize(
    "url, kind, label",
    [
        ("http://127.0.0.1:8010/ispws", "practice", "Practice (local, nothing reaches NCMEC)"),
        ("https://exttest.cybertip.org/ispws/", "ncmec_test", "NCMEC test environment"),
        ("https://report.cybertip.org/ispws", "ncmec_production", "NCMEC production"),
        (
            "http://127.0.0.1:9999/ispws",
            "other",
            "Other endpoint: http://127.0.0.1:9999/ispws",
        ),
    ],
)
def test_one_function_says_where_filing_goes(url, kind, label, settings):
    settings.BAKKME_CYBERTIP_PRACTICE_URL = "http://127.0.0.1:8010/ispws"
    settings.BAKKME_CYBERTIP_URL = url
    assert (target().kind, target().label) == (kind, label)


def practice_get(url, path="/", credentials=("practice", "practice")):
    request = urllib.request.Request(url.removesuffix("/ispws") + path)
    if credentials:
        token = b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (local server)
        return answer.status, answer.headers, answer.read().decode()


def test_the_practice_endpoint_validates_keeps_and_shows_what_it_received(
    case, filer, client, settings, django_capture_on_commit_callbacks
):
    server = practice.PracticeCyberTipline("practice", "practice").start()
    try:
        settings.BAKKME_CYBERTIP_PRACTICE_URL = server.url
        settings.BAKKME_CYBERTIP_URL = server.url
        settings.BAKKME_CYBERTIP_USERNAME = settings.BAKKME_CYBERTIP_PASSWORD = "practice"
        settings.BAKKME_CYBERTIP_REPORTER_EMAIL = "safety@bakkme.example"
        ncmec = CyberTiplineClient(attempts=1)
        with pytest.raises(NcmecRejected) as refused:
            ncmec.submit("<report><incidentSummary/></report>")
        assert refused.value.code == 4100 and "incidentType" in str(refused.value)
        with pytest.raises(NcmecRejected) as malformed:
            ncmec.submit("<report>")
        assert malformed.value.code == 4110

        client.force_login(filer)
        draft = client.get(f"/admin/legal/cybertiplinereport/case/{case.pk}/")
        assert b"Filing goes to: <strong>Practice (local, nothing reaches NCMEC)" in draft.content
        with django_capture_on_commit_callbacks(execute=True):
            press_file(client, case)
        report = actions.current_report(case)
        assert report.status == Status.FINISHED and report.endpoint == server.url
        page = report_page(client, report)
        assert b"Filed with: <strong>Practice (local, nothing reaches NCMEC)" in page.content

        status, headers, html = practice_get(server.url)
        assert status == 200 and headers["Content-Security-Policy"] == "default-src 'none'"
        assert "<script" not in html
        assert f"Report {report.report_id}: finished" in html
        for file in report.files.all():
            assert f"<code>{file.md5}</code>" in html
        assert "&lt;incidentType&gt;" in html  # the document it received, escaped
        assert "Refused documents" in html and "4110" in html and "4100" in html
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            practice_get(server.url, credentials=None)
        assert anonymous.value.code == 401
        assert practice_get(server.url, "/ispws/status")[2].count("<responseCode>0<") == 1
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_env(**extra) -> dict:
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
        BAKKME_LEDGER_KEY=crypto.new_key_text(),
        **extra,
    )
    return env


def test_the_practice_command_serves_the_api_and_its_page():
    port = free_port()
    command = [sys.executable, str(BASE_DIR / "manage.py"), "practice_cybertipline"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=local_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        url = f"http://127.0.0.1:{port}/ispws"
        assert f"Practice CyberTipline at {url}" in first, process.stderr.read()
        assert "<responseCode>0<" in practice_get(url, "/ispws/status")[2]
        assert "No report received yet" in practice_get(url)[2]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


SHOW_FILING_ENV = """
import os, sys
# One file per command (they run at the same time): its arguments and the endpoint it files to.
with open(f"started-{sys.argv[2]}.txt", "w") as out:
    env = os.environ.get
    out.write(" ".join(sys.argv[2:]) + " | " + " ".join(
        [env("BAKKME_CYBERTIP_URL", "-"), env("BAKKME_CYBERTIP_USERNAME", "-"),
         env("BAKKME_CYBERTIP_PRACTICE_URL", "-")]
    ))
if sys.argv[2] == "runserver":  # serves until the others have started (then Ctrl+C)
    import pathlib, time
    for _ in range(200):
        if len(list(pathlib.Path().glob("started-*.txt"))) == 3:
            break
        time.sleep(0.05)
"""


@pytest.mark.parametrize("operator_url", [None, "https://exttest.cybertip.org/ispws"])
def test_make_run_starts_the_practice_endpoint_and_points_filing_at_it(tmp_path, operator_url):
    """scripts/run-local.sh with a stand-in .venv/bin/python that prints, for each command it
    starts, the CyberTipline endpoint it would file to."""
    (tmp_path / "show.py").write_text(SHOW_FILING_ENV)
    stand_in = tmp_path / ".venv" / "bin" / "python"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "show.py"} "$@"\n')
    stand_in.chmod(0o755)
    extra = {}
    if operator_url:
        extra = {"BAKKME_CYBERTIP_URL": operator_url, "BAKKME_CYBERTIP_USERNAME": "esp-42"}
    local = subprocess.run(
        ["bash", str(BASE_DIR / "scripts" / "run-local.sh"), "127.0.0.1", "8000"],
        cwd=tmp_path,
        env=local_env(**extra),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert local.returncode == 0, local.stderr
    started = dict(path.read_text().split(" | ") for path in tmp_path.glob("started-*.txt"))
    practice_url = "http://127.0.0.1:8010/ispws"
    assert set(started) == {
        "practice_cybertipline --host 127.0.0.1 --port 8010",
        "qcluster",
        "runserver 127.0.0.1:8000",
    }
    # Filing goes to the practice endpoint, unless the operator named one (kept as it is).
    files_to = f"{operator_url} esp-42" if operator_url else f"{practice_url} practice"
    for command in ("qcluster", "runserver 127.0.0.1:8000"):
        assert started[command] == f"{files_to} {practice_url}"
