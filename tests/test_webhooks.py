"""Signed platform webhooks: enforcement actions and reporter acknowledgments, delivered by
the outbox (deliveries/outbox.py) against a local HTTP server that plays the platform."""

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.db import connection
from django_q.models import Schedule

from cases import actions
from cases.actions import DecisionInput
from cases.models import Case, EnforcementAction
from deliveries import outbox
from deliveries.signing import verify_signature
from reports.models import Acknowledgment
from staff.models import Notification

from .factories import make_report

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SECRET = "test-webhook-secret"
REPORTER = {"platform_id": "reporter-p-991", "anonymous": False, "contact": "kid@example.org"}


# --- The platform: a local HTTP server --------------------------------------------------------


class Platform:
    """Records every call; answers with `status` and `answer` (JSON), after `delay` seconds."""

    def __init__(self):
        self.calls = []
        self.status = 200
        self.answer = {"status": "received"}
        self.delay = 0.0
        self.lock = threading.Lock()

    def handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with platform.lock:
                    # Header names are case-insensitive: kept lower-case here.
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    platform.calls.append({"headers": headers, "body": body})
                if platform.delay:
                    time.sleep(platform.delay)
                answer = json.dumps(platform.answer).encode()
                self.send_response(platform.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        return Handler

    def payloads(self, type_=None):
        found = [json.loads(c["body"]) for c in self.calls]
        return [p for p in found if type_ is None or p["type"] == type_]

    def action_calls(self):
        return [c for c in self.calls if json.loads(c["body"])["type"] == "enforcement_action"]


@pytest.fixture
def platform(settings):
    platform = Platform()
    server = ThreadingHTTPServer(("127.0.0.1", 0), platform.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.BAKKME_PLATFORM_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/webhooks/bakkme"
    settings.BAKKME_PLATFORM_WEBHOOK_SECRET = SECRET
    yield platform
    server.shutdown()
    server.server_close()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def independent_verify(secret: str, headers: dict, body: bytes) -> bool:
    """The platform's check, written here from the documented scheme (not the project's code):
    HMAC-SHA256 over timestamp + "." + raw body, hex, in X-BakkMe-Signature as v1=<hex>."""
    timestamp = headers["x-bakkme-timestamp"].encode()
    expected = hmac.new(secret.encode(), timestamp + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("v1=" + expected, headers["x-bakkme-signature"])


def quiet_report(**fields):
    """A report from an anonymous reporter: no acknowledgments to count."""
    return make_report(reporter={"anonymous": True}, **fields)


def decide(case, senior, violation="grooming", **extra):
    return actions.decide_case(
        case, DecisionInput(violation=violation, rationale="placeholder", **extra), actor=senior
    )


def deliver():
    return outbox.deliver_due().as_dict()


# --- Signature, payload, answers ----------------------------------------------------------------


def test_actions_are_delivered_signed_and_verified_independently(platform, clock, senior):
    report = make_report(category="grooming", reporter=REPORTER)
    decide(report.case, senior)  # remove content, permanent ban, law-enforcement referral

    result = deliver()

    calls = [c for c in platform.calls if json.loads(c["body"])["type"] == "enforcement_action"]
    # The referral is the back office's, not sent; the reporter's two acknowledgments are.
    assert len(calls) == 2 and result["sent"] == 4
    for call in calls:
        headers, body = call["headers"], call["body"]
        assert independent_verify(SECRET, headers, body)
        assert not independent_verify("another secret", headers, body)
        assert int(headers["x-bakkme-timestamp"]) == int(T0.timestamp())
        payload = json.loads(body)
        assert headers["idempotency-key"] == payload["idempotency_key"]
        action = EnforcementAction.objects.get(pk=payload["action"]["id"])
        assert payload["action"] == {
            "id": action.pk,
            "type": action.type,
            "account_platform_id": report.account_platform_id,
            "content_platform_id": report.content_platform_id,
            "restricted_feature": "",
            "case": report.case_id,
            "created_at": action.created_at.isoformat(),
        }
        assert action.status == EnforcementAction.Status.SENT
        assert action.attempts == 1
        assert action.sent_at == T0
        assert action.last_response_code == 200
        assert json.loads(action.last_response_body) == {"status": "received"}
        assert action.in_flight_until is None
    referral = EnforcementAction.objects.get(type="law_enforcement_referral")
    assert referral.status == "pending" and referral.attempts == 0


def test_an_answer_saying_done_confirms_the_action(platform, clock, senior):
    platform.answer = {"status": "done", "note": "x" * 5000}
    decide(quiet_report(category="grooming").case, senior, "sexualizing_minors", severity="low")

    deliver()

    for action in EnforcementAction.objects.all():
        assert action.status == EnforcementAction.Status.CONFIRMED
        assert len(action.last_response_body) == 1000  # BAKKME_WEBHOOK_RESPONSE_EXCERPT_CHARS


def test_the_reference_verifier_rejects_old_timestamps_and_changed_bodies(settings):
    body = b'{"type":"enforcement_action"}'
    ts = str(int(T0.timestamp()))
    sig = "v1=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    tolerance = settings.BAKKME_WEBHOOK_TOLERANCE_SECONDS

    assert verify_signature(SECRET, ts, body, sig, T0)
    assert verify_signature(SECRET, ts, body, sig, T0 + timedelta(seconds=tolerance - 1))
    assert not verify_signature(SECRET, ts, body, sig, T0 + timedelta(seconds=tolerance + 1))
    assert not verify_signature(SECRET, ts, body, sig, T0 - timedelta(seconds=tolerance + 1))
    assert not verify_signature(SECRET, ts, body + b" ", sig, T0)
    assert not verify_signature("wrong", ts, body, sig, T0)
    assert not verify_signature(SECRET, "not a number", body, sig, T0)


# --- Retries, failure, the CSO ----------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_failed_after_the_give_up_time_and_the_cso_alerted(
    platform, clock, senior, cso, settings
):
    platform.status = 503
    case = quiet_report(category="underage_user").case
    decide(case, senior, "underage_user", restricted_feature="")
    action = case.actions.get(type="suspend_account")
    EnforcementAction.objects.exclude(pk=action.pk).update(status="cancelled")

    deliver()
    action.refresh_from_db()
    base = settings.BAKKME_WEBHOOK_BACKOFF_SECONDS
    assert (action.status, action.attempts, action.last_response_code) == ("pending", 1, 503)
    assert action.next_attempt_at == T0 + timedelta(seconds=base)

    clock.move_to(T0 + timedelta(seconds=base - 1))
    deliver()
    assert len(platform.calls) == 1  # not yet due

    clock.move_to(T0 + timedelta(seconds=base))
    deliver()
    action.refresh_from_db()
    assert len(platform.calls) == 2
    assert action.next_attempt_at == T0 + timedelta(seconds=base + 2 * base)

    give_up = T0 + timedelta(hours=settings.BAKKME_WEBHOOK_GIVE_UP_HOURS)
    times = [T0, T0 + timedelta(seconds=base)]
    while action.status == "pending":
        assert action.next_attempt_at <= give_up
        delay = action.next_attempt_at - action.last_attempt_at
        assert delay <= timedelta(seconds=settings.BAKKME_WEBHOOK_BACKOFF_MAX_SECONDS)
        clock.move_to(action.next_attempt_at)
        times.append(action.next_attempt_at)
        assert not Notification.objects.filter(kind="webhook_failed").exists()
        deliver()
        action.refresh_from_db()

    assert action.status == EnforcementAction.Status.FAILED
    assert action.last_attempt_at == give_up == times[-1]
    assert action.attempts == len(platform.calls) == len(times)
    # Each delay doubles until the cap.
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:4] == [base, 2 * base, 4 * base, 8 * base]
    assert max(gaps) == settings.BAKKME_WEBHOOK_BACKOFF_MAX_SECONDS
    (alert,) = Notification.objects.filter(kind=Notification.Kind.WEBHOOK_FAILED)
    assert alert.recipient == cso and alert.case_ids == [case.pk]
    deliver()
    assert len(platform.calls) == len(times)  # failed is final


def test_a_network_error_is_retried_like_a_5xx(platform, clock, senior, settings):
    settings.BAKKME_PLATFORM_WEBHOOK_URL = "http://127.0.0.1:9/closed"
    decide(quiet_report(category="grooming").case, senior, "sexualizing_minors", severity="low")
    result = deliver()
    assert result["retrying"] == 2
    action = EnforcementAction.objects.first()
    assert action.last_response_code is None and action.last_error
    assert action.next_attempt_at == T0 + timedelta(seconds=settings.BAKKME_WEBHOOK_BACKOFF_SECONDS)


def test_without_a_webhook_url_deliveries_wait(settings, clock, senior, client, cso):
    settings.BAKKME_PLATFORM_WEBHOOK_URL = ""
    decide(quiet_report(category="grooming").case, senior)
    result = deliver()
    assert result["waiting"] == 2 and result["sent"] == 0
    assert set(EnforcementAction.objects.values_list("attempts", flat=True)) == {0}
    client.force_login(cso)
    page = client.get("/admin/cases/enforcementaction/")
    assert page.status_code == 200
    assert "waiting: no platform webhook configured" in page.text


# --- Exactly once -----------------------------------------------------------------------------


def test_two_runs_one_after_the_other_deliver_each_action_once(platform, clock, senior):
    decide(quiet_report(category="grooming").case, senior)
    deliver()
    deliver()
    clock.shift(timedelta(hours=2))
    deliver()
    keys = [c["headers"]["idempotency-key"] for c in platform.calls]
    assert len(keys) == len(set(keys)) == 2


def test_a_call_whose_answer_was_lost_is_retried_with_the_same_key(platform, clock, senior):
    decide(quiet_report(category="grooming").case, senior, "sexualizing_minors", severity="low")
    action = EnforcementAction.objects.get(type="warn")
    EnforcementAction.objects.exclude(pk=action.pk).update(status="cancelled")
    # A run claimed it and died during the call: the lease holds it for a while.
    lease = T0 + timedelta(seconds=70)
    EnforcementAction.objects.filter(pk=action.pk).update(
        in_flight_until=lease, attempts=1, first_attempt_at=T0, last_attempt_at=T0
    )
    deliver()
    assert platform.calls == []  # in flight elsewhere
    clock.move_to(lease)
    deliver()
    (call,) = platform.calls
    assert call["headers"]["idempotency-key"] == f"bakkme-action-{action.pk}"
    action.refresh_from_db()
    assert (action.status, action.attempts) == ("sent", 2)


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_deliver_each_action_once(platform, senior, settings):
    """PostgreSQL: row locks with SKIP LOCKED; SQLite: its writers take turns (BEGIN
    IMMEDIATE), and the in-flight mark keeps the second run off the rows the first took."""
    platform.delay = 0.2
    url, settings.BAKKME_PLATFORM_WEBHOOK_URL = settings.BAKKME_PLATFORM_WEBHOOK_URL, ""
    for _ in range(3):  # committed: the run queued by each decision finds no webhook yet
        decide(quiet_report(category="grooming").case, senior)
    settings.BAKKME_PLATFORM_WEBHOOK_URL = url
    expected = EnforcementAction.objects.filter(
        type__in=["remove_content", "permanent_ban"]
    ).count()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(outbox.deliver_due().as_dict())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    keys = [c["headers"]["idempotency-key"] for c in platform.calls]
    assert len(keys) == len(set(keys)) == expected == 6
    assert sum(r["sent"] for r in results) == expected
    assert EnforcementAction.objects.filter(status="sent").count() == expected


# --- Order ------------------------------------------------------------------------------------


def test_removals_and_suspensions_for_p0_and_csam_go_first(platform, clock, senior):
    ordinary = quiet_report(category="grooming").case
    decide(ordinary, senior, "sexualizing_minors", severity="low")  # remove, warn
    csam = quiet_report(category="csam").case
    decide(csam, senior, "csam_distribution")  # remove, ban (+ ncmec, referral: not sent)
    p0 = quiet_report(category="imminent_danger").case
    assert p0.priority == 0
    decide(p0, senior, "underage_user")  # suspend, delete data

    deliver()

    sent = [(p["action"]["case"], p["action"]["type"]) for p in platform.payloads()]
    assert sent == [
        (csam.pk, "remove_content"),
        (csam.pk, "permanent_ban"),
        (p0.pk, "suspend_account"),
        (ordinary.pk, "remove_content"),
        (ordinary.pk, "warn"),
        (p0.pk, "delete_account_data"),
    ]


# --- Reporter acknowledgments -----------------------------------------------------------------


def test_a_report_with_a_contact_is_acknowledged_at_once(
    platform, clock, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        report = make_report(category="grooming", reporter=REPORTER)

    (ack,) = Acknowledgment.objects.filter(report=report)
    assert (ack.kind, ack.status) == ("received", "sent")
    (payload,) = platform.payloads("reporter_acknowledgment")
    assert payload["acknowledgment"]["kind"] == "received"
    assert payload["acknowledgment"]["reporter"] == {
        "platform_id": REPORTER["platform_id"],
        "contact": REPORTER["contact"],
    }
    assert payload["acknowledgment"]["report"]["id"] == report.pk
    body = platform.calls[0]["body"].decode()
    for about_the_reported_party in (
        report.account_platform_id,
        report.account_username,
        report.content_platform_id,
    ):
        assert about_the_reported_party not in body
    assert independent_verify(SECRET, platform.calls[0]["headers"], platform.calls[0]["body"])


@pytest.mark.parametrize(
    ("violation", "extra", "outcome"),
    [("grooming", {}, "action_taken"), ("no_violation", {}, "no_violation")],
)
def test_the_reporter_hears_the_outcome_when_the_case_is_decided(
    platform, clock, senior, violation, extra, outcome
):
    report = make_report(category="grooming", reporter=REPORTER)
    decide(report.case, senior, violation, **extra)
    deliver()

    decided = Acknowledgment.objects.get(report=report, kind="decided")
    assert (decided.outcome, decided.status) == (outcome, "sent")
    acks = platform.payloads("reporter_acknowledgment")
    assert [(a["acknowledgment"]["kind"], a["acknowledgment"]["outcome"]) for a in acks] == [
        ("received", None),
        ("decided", outcome),
    ]
    # The actions go before the acknowledgments.
    types = [p["type"] for p in platform.payloads()]
    assert types == sorted(types)


def test_anonymous_reports_and_reports_without_a_contact_get_no_acknowledgment(
    platform, clock, senior
):
    anonymous = make_report(reporter={"anonymous": True, "contact": "someone@example.org"})
    no_contact = make_report(reporter={"platform_id": "reporter-2", "anonymous": False})
    decide(anonymous.case, senior)
    decide(no_contact.case, senior)
    deliver()
    assert not Acknowledgment.objects.exists()
    assert platform.payloads("reporter_acknowledgment") == []


def test_no_enforcement_payload_carries_anything_about_the_reporter(platform, clock, senior):
    report = make_report(category="csam", reporter=REPORTER)
    make_report(
        category="csam",
        reported_account={"platform_id": report.account_platform_id},
        content={"platform_id": report.content_platform_id, "type": "image"},
        reporter={**REPORTER, "platform_id": "reporter-p-992", "contact": "two@example.org"},
    )
    decide(Case.objects.get(pk=report.case_id), senior, "csam_distribution")
    deliver()

    enforcement = [c["body"].decode() for c in platform.calls if b"enforcement_action" in c["body"]]
    assert len(enforcement) == 2
    for body in enforcement:
        for secret in ("reporter-p-991", "reporter-p-992", "kid@example.org", "two@example.org"):
            assert secret not in body
        assert "reporter" not in body


def test_the_delivery_runs_every_minute_from_a_schedule(settings):
    schedule = Schedule.objects.get(name="platform-webhooks")
    assert schedule.func == "deliveries.tasks.deliver"
    assert schedule.minutes == settings.BAKKME_WEBHOOK_SCHEDULE_MINUTES


def test_the_cso_can_send_a_failed_action_again(platform, clock, senior, cso, client):
    decide(quiet_report(category="grooming").case, senior, "sexualizing_minors", severity="low")
    action = EnforcementAction.objects.get(type="warn")
    EnforcementAction.objects.filter(pk=action.pk).update(
        status="failed", attempts=30, first_attempt_at=T0 - timedelta(days=1)
    )
    client.force_login(cso)
    response = client.post(
        "/admin/cases/enforcementaction/",
        {"action": "retry_delivery", "_selected_action": [action.pk]},
    )
    assert response.status_code == 302
    action.refresh_from_db()
    assert (action.status, action.first_attempt_at) == ("pending", None)
    # An action of a person: on the case's timeline with who did it.
    retried = action.case.events.get(type="delivery_retried")
    assert (retried.actor, retried.payload["action"]) == (cso, action.pk)
    deliver()
    action.refresh_from_db()
    assert action.status == "sent" and action.attempts == 31


def test_only_the_cso_sends_failed_actions_again(senior):
    from django.core.exceptions import PermissionDenied

    decide(quiet_report(category="grooming").case, senior, "sexualizing_minors", severity="low")
    action = EnforcementAction.objects.get(type="warn")
    EnforcementAction.objects.filter(pk=action.pk).update(status="failed")
    with pytest.raises(PermissionDenied):
        actions.retry_delivery(action, actor=senior)
    action.refresh_from_db()
    assert action.status == "failed"
