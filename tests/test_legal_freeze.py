"""A legal freeze (Child Safety Standards §6.4: preserve, never tell the subject): the account
frozen on the platform, its records asked for, a legal hold; the platform's answer over the API
preserved as evidence; the freeze lifted with a reason. The platform is played by a local HTTP
server (tests/test_webhooks.py)."""

import io
import json
import threading
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cases import actions
from cases.actions import DecisionInput
from cases.models import CaseEvent, EnforcementAction
from deliveries import outbox
from evidence import holds, vault
from evidence.access import grant
from evidence.models import CustodyEvent, EvidenceItem, EvidenceKind, LegalHold
from evidence.samples import pattern_png
from evidence.storage import evidence_storage
from legal import freeze, records
from legal.models import LegalDuty, PreservationRequest, RecordsAnswer
from reports.actions import create_integration

from .factories import UserFactory, make_report
from .test_webhooks import SECRET, Platform, independent_verify

pytestmark = pytest.mark.django_db

RECORDS = "/api/v1/records/"
ACCOUNT = "u-frz-41"
REASON = "placeholder reason text 5521"
LIFT_REASON = "placeholder lift reason 8830"
# Nothing the platform receives in this flow may say why (§6.4: the subject is never told).
TELLING_WORDS = [
    "ncmec",
    "cybertip",
    "preserv",
    "law enforcement",
    "law_enforcement",
    "legal",
    "hold",
    "csam",
    "investigation",
    REASON.lower(),
    LIFT_REASON.lower(),
]


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
def case(integration):
    report = make_report(
        integration,
        category="csam",
        surface="message",
        reported_account={"platform_id": ACCOUNT, "username": "placeholder-user"},
        reporter={"anonymous": True},
        description="placeholder case text 7710",
    )
    return report.case


@pytest.fixture
def granted(case, legal, cso):
    grant(case, legal, by=cso, reason="placeholder grant")
    return legal


def period():
    now = timezone.now()
    return now - timedelta(days=30), now - timedelta(minutes=1)


def do_freeze(case, actor, **extra):
    since, until = period()
    return freeze.freeze_account(
        case, actor=actor, since=since, until=until, reason=REASON, **extra
    )


def answer_body(request, key="answer-1", **records_overrides):
    body_records = {
        "ip_addresses": [
            {"ip": "192.0.2.10", "at": (timezone.now() - timedelta(days=3)).isoformat(),
             "event": "login"},
            {"ip": "2001:db8::7", "at": (timezone.now() - timedelta(days=9)).isoformat(),
             "event": "registration"},
        ],
        "device_identifiers": [{"type": "device_fingerprint", "value": "placeholder-dev-1"}],
        "communication_logs": [
            {"at": (timezone.now() - timedelta(days=2)).isoformat(), "from": ACCOUNT,
             "to": "u-other-2", "text": "placeholder message 4471"},
        ],
    }  # fmt: skip
    body_records.update(records_overrides)
    return {"request": request.pk, "idempotency_key": key, "records": body_records}


# --- The freeze: one action, one transaction ----------------------------------------------------


def test_a_freeze_creates_the_action_the_request_and_the_hold_together(case, granted):
    request = do_freeze(case, granted)

    action = request.freeze_action
    assert action.type == "freeze_account" and action.status == "pending"
    assert action.decision is None and action.account_platform_id == ACCOUNT
    assert action.history.first().history_user == granted  # a person's action, not automatic
    assert request.status == "pending" and request.requested_by == granted
    assert request.record_types == ["ip_addresses", "device_identifiers", "communication_logs"]
    assert request.integration == case.reports.get().integration
    hold = request.hold
    assert hold.authority == LegalHold.Authority.LEGAL_FREEZE and hold.is_active()
    assert hold.account_platform_id == ACCOUNT and hold.case == case
    assert hold.placed_by == granted
    event = case.events.get(type=CaseEvent.Type.ACCOUNT_FROZEN)
    assert event.actor == granted and event.payload["reason"] == REASON
    assert event.payload["freeze"] == request.pk and event.payload["hold"] == hold.pk
    # Evidence already there is held from now on.
    item = vault.collect(io.BytesIO(pattern_png(seed=3)), case=case)
    assert holds.is_held(item)


def test_a_failure_in_the_middle_of_a_freeze_leaves_nothing(case, granted, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("storage went away")

    monkeypatch.setattr(freeze.holds, "place", broken)
    with pytest.raises(RuntimeError):
        do_freeze(case, granted)

    assert not EnforcementAction.objects.filter(case=case, type="freeze_account").exists()
    assert not PreservationRequest.objects.exists()
    assert not LegalHold.objects.exists()
    assert not case.events.filter(type=CaseEvent.Type.ACCOUNT_FROZEN).exists()


def test_one_freeze_of_a_case_at_a_time_and_only_a_frozen_one_is_lifted(case, granted):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as not_frozen:
        freeze.lift_freeze(case, actor=granted, reason=LIFT_REASON)
    assert "not frozen" in str(not_frozen.value)
    do_freeze(case, granted)
    with pytest.raises(ValidationError) as twice:
        do_freeze(case, granted)
    assert "frozen already" in str(twice.value)
    assert PreservationRequest.objects.count() == 1


def test_a_freeze_needs_a_reason_and_a_period_in_the_past(case, granted):
    from django.core.exceptions import ValidationError

    now = timezone.now()
    with pytest.raises(ValidationError) as refused:
        freeze.freeze_account(
            case, actor=granted, since=now, until=now + timedelta(days=1), reason=" "
        )
    assert set(refused.value.message_dict) == {"until", "reason"}
    assert not PreservationRequest.objects.exists()


# --- What reaches the platform -----------------------------------------------------------------


def test_the_platform_gets_the_freeze_and_the_request_signed_and_nothing_of_why(
    platform, case, senior, granted
):
    actions.decide_case(  # a CyberTipline report and a referral follow: neither is sent
        case,
        DecisionInput(violation="csam_distribution", rationale="placeholder rationale"),
        actor=senior,
    )
    request = do_freeze(case, granted)
    outbox.deliver_due()
    freeze.lift_freeze(case, actor=granted, reason=LIFT_REASON)
    outbox.deliver_due()

    sent = [json.loads(c["body"]) for c in platform.calls]
    assert [p["action"]["type"] for p in sent if p["type"] == "enforcement_action"] == [
        "remove_content",
        "permanent_ban",
        "freeze_account",
        "unfreeze_account",
    ]
    (asked,) = [p for p in sent if p["type"] == "account_records_request"]
    assert asked == {
        "type": "account_records_request",
        "request": {
            "id": request.pk,
            "account_platform_id": ACCOUNT,
            "record_types": ["ip_addresses", "device_identifiers", "communication_logs"],
            "since": request.since.isoformat(),
            "until": request.until.isoformat(),
            "answer_path": RECORDS,
            "created_at": request.requested_at.isoformat(),
        },
        "idempotency_key": f"bakkme-records-{request.pk}",
    }
    for call in platform.calls:
        assert independent_verify(SECRET, call["headers"], call["body"])
        assert call["headers"]["idempotency-key"] == json.loads(call["body"])["idempotency_key"]
        text = call["body"].decode().lower()
        assert [word for word in TELLING_WORDS if word in text] == []
        assert "7710" not in text  # the case's text
    request.refresh_from_db()
    assert request.status == "sent" and request.attempts == 1


def test_lifting_sends_unfreeze_with_the_reason_only_in_the_timeline(platform, case, granted):
    request = do_freeze(case, granted)
    outbox.deliver_due()

    freeze.lift_freeze(case, actor=granted, reason=LIFT_REASON)
    outbox.deliver_due()

    unfreeze = [
        c for c in platform.calls if b'"unfreeze_account"' in c["body"]
    ]  # the last delivery
    assert len(unfreeze) == 1 and LIFT_REASON.encode() not in unfreeze[0]["body"]
    assert json.loads(unfreeze[0]["body"])["action"]["account_platform_id"] == ACCOUNT
    event = case.events.get(type=CaseEvent.Type.FREEZE_LIFTED)
    assert event.payload["reason"] == LIFT_REASON and event.actor == granted
    request.refresh_from_db()
    assert request.lifted_by == granted and request.unfreeze_action.status == "sent"
    assert request.hold.is_active()  # the hold stays until it is released on its own


def test_lifting_a_freeze_that_never_reached_the_platform_cancels_it(platform, case, granted):
    request = do_freeze(case, granted)

    freeze.lift_freeze(case, actor=granted, reason=LIFT_REASON)
    outbox.deliver_due()

    request.refresh_from_db()
    assert request.freeze_action.status == "cancelled" and request.unfreeze_action is None
    types = [json.loads(c["body"]).get("action", {}).get("type") for c in platform.calls]
    assert "freeze_account" not in types and "unfreeze_account" not in types


def test_without_a_webhook_the_request_waits_and_is_counted(case, granted, settings):
    settings.BAKKME_PLATFORM_WEBHOOK_URL = ""
    do_freeze(case, granted)

    result = outbox.deliver_due()

    assert result.waiting == 2  # the freeze and the request for records


# --- The platform's answer ---------------------------------------------------------------------


def test_the_answer_is_stored_as_encrypted_evidence_with_a_custody_event(
    api, case, granted, integration
):
    request = do_freeze(case, granted)
    body = answer_body(request)

    response = api.post(RECORDS, body, format="json")

    assert response.status_code == 201, response.content
    answer = RecordsAnswer.objects.get()
    item = answer.item
    assert item.kind == EvidenceKind.PLATFORM_RECORDS and item.case == case
    assert item.media_type == "application/json" and item.collected_via == integration
    assert response.json() == {
        "id": answer.pk,
        "request": request.pk,
        "sha256": item.sha256,
        "received": {"ip_addresses": 2, "device_identifiers": 1, "communication_logs": 1},
    }
    with evidence_storage().open(item.storage_name, "rb") as stored:
        assert b"placeholder message 4471" not in stored.read()  # encrypted at rest
    assert json.loads(vault.read_bytes(item)) == body
    (collected,) = item.custody.filter(action=CustodyEvent.Action.COLLECT)
    assert collected.actor_name == f"integration:{integration.name}"
    assert holds.is_held(item)
    request.refresh_from_db()
    assert request.status == "answered" and request.answered_at is not None
    assert case.events.filter(type=CaseEvent.Type.PLATFORM_RECORDS, payload__item=item.pk)
    duty = LegalDuty.objects.get(kind=LegalDuty.Kind.PRESERVATION_CHECK)
    assert duty.case == case and duty.preservation_request == request and duty.done_at is None


def test_the_same_answer_again_gives_200_and_another_body_409(api, case, granted):
    request = do_freeze(case, granted)
    body = answer_body(request)
    first = api.post(RECORDS, body, format="json")

    again = api.post(RECORDS, body, format="json")
    other = api.post(RECORDS, answer_body(request, communication_logs=[]), format="json")

    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 409 and "idempotency_key" in other.json()
    assert RecordsAnswer.objects.count() == 1
    assert EvidenceItem.objects.filter(kind=EvidenceKind.PLATFORM_RECORDS).count() == 1
    assert LegalDuty.objects.filter(kind=LegalDuty.Kind.PRESERVATION_CHECK).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["records"]["ip_addresses"][0].update(ip="not-an-ip"), "ip_addresses"),
        (lambda b: b["records"]["ip_addresses"][0].update(event="teleport"), "ip_addresses"),
        (lambda b: b["records"]["communication_logs"][0].pop("from"), "communication_logs"),
        (
            lambda b: b["records"]["communication_logs"][0].update(at="2999-01-01T00:00:00Z"),
            "communication_logs",
        ),
        (
            lambda b: b["records"].update(device_identifiers=[{"type": "imei"}]),
            "device_identifiers",
        ),
        (lambda b: b.pop("records"), "records"),
        (lambda b: b.update(idempotency_key=""), "idempotency_key"),
        (lambda b: b.update(request="twelve"), "request"),
    ],
)
def test_a_bad_answer_gets_400_with_field_errors_and_nothing_is_stored(
    api, case, granted, evidence_root, change, field
):
    request = do_freeze(case, granted)
    body = answer_body(request)
    change(body)

    response = api.post(RECORDS, body, format="json")

    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors or field in errors.get("records", {}), errors
    assert not RecordsAnswer.objects.exists() and not EvidenceItem.objects.exists()
    assert not [p for p in evidence_root.rglob("*") if p.is_file()]
    request.refresh_from_db()
    assert request.status == "pending"


def test_an_answer_that_fails_after_its_file_was_stored_leaves_no_file(
    case, granted, integration, evidence_root, monkeypatch
):
    request = do_freeze(case, granted)
    body = answer_body(request)

    def broken(**kwargs):
        raise RuntimeError("the desk is away")

    monkeypatch.setattr(records.duties, "open_duty", broken)
    with pytest.raises(RuntimeError):
        records.receive_answer(
            integration,
            request_id=request.pk,
            idempotency_key=body["idempotency_key"],
            body=body,
            records={},
        )

    assert not RecordsAnswer.objects.exists() and not EvidenceItem.objects.exists()
    assert not [p for p in evidence_root.rglob("*") if p.is_file()]
    request.refresh_from_db()
    assert request.status == "pending"


def test_a_body_that_is_not_an_object_gets_400(api):
    response = api.post(RECORDS, [1, 2], format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["The body is one answer, a JSON object."]}


def test_another_integrations_request_is_not_found_and_nothing_is_stored(api, case, granted):
    request = do_freeze(case, granted)
    _, other_token = create_integration("another-platform")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {other_token}")

    theirs = other.post(RECORDS, answer_body(request), format="json")
    unknown = api.post(RECORDS, {**answer_body(request), "request": request.pk + 99}, format="json")
    anonymous = APIClient().post(RECORDS, answer_body(request), format="json")

    assert theirs.status_code == 404 and unknown.status_code == 404
    assert theirs.json() == {"detail": "No such request."}
    assert anonymous.status_code == 401
    assert not RecordsAnswer.objects.exists() and not EvidenceItem.objects.exists()


def test_ip_capture_events_come_from_the_answers(api, case, granted):
    request = do_freeze(case, granted)
    body = answer_body(request)
    api.post(RECORDS, body, format="json")
    # A second answer repeats the first one's events and adds one.
    later = answer_body(request, key="answer-2")
    later["records"]["ip_addresses"] = body["records"]["ip_addresses"] + [
        {"ip": "198.51.100.4", "at": (timezone.now() - timedelta(days=1)).isoformat(),
         "event": "upload"}
    ]  # fmt: skip
    assert api.post(RECORDS, later, format="json").status_code == 201

    events = records.ip_capture_events(case)

    # Oldest first, each once, in NCMEC's words (ipCaptureEvent/eventName).
    assert [(e["ip"], e["event"]) for e in events] == [
        ("2001:db8::7", "Registration"),
        ("192.0.2.10", "Login"),
        ("198.51.100.4", "Upload"),
    ]
    sent = body["records"]["ip_addresses"][0]["at"]
    assert events[1]["at"].isoformat() == sent and events[1]["at"].tzinfo is not None


# --- The pages ----------------------------------------------------------------------------------


def freeze_url(case):
    return reverse("admin:legal_preservationrequest_freeze", args=[case.pk])


def form_data(**extra):
    since, until = period()
    return {
        "since": since.strftime("%Y-%m-%d %H:%M"),
        "until": until.strftime("%Y-%m-%d %H:%M"),
        "record_types": ["ip_addresses", "communication_logs"],
        "reason": REASON,
        **extra,
    }


def test_legal_staff_not_granted_the_case_get_404_on_the_freeze_page(client, case, legal):
    client.force_login(legal)

    assert client.get(freeze_url(case)).status_code == 404
    assert client.post(freeze_url(case), form_data(confirm="yes")).status_code == 404
    assert not PreservationRequest.objects.exists()


def test_a_reviewer_holding_the_case_may_not_freeze_it(client, case, reviewer):
    assert actions.claim_next_case(reviewer) == case
    client.force_login(reviewer)

    assert client.get(freeze_url(case)).status_code == 403
    assert client.post(freeze_url(case), form_data(confirm="yes")).status_code == 403


def test_the_freeze_page_shows_what_will_happen_before_anything_is_done(client, case, granted):
    client.force_login(granted)
    page = client.get(freeze_url(case))
    assert page.status_code == 200 and b"Review the freeze" in page.content

    review = client.post(freeze_url(case), form_data())

    assert review.status_code == 200
    text = review.content.decode()
    assert f"freezes account {ACCOUNT}" in text and "ip addresses, communication logs" in text
    assert "legal hold" in text and "told nothing of why" in text
    assert not PreservationRequest.objects.exists()

    done = client.post(freeze_url(case), form_data(confirm="yes"))

    assert done.status_code == 302
    request = PreservationRequest.objects.get()
    assert request.record_types == ["ip_addresses", "communication_logs"]
    assert request.requested_by == granted and request.reason == REASON
    frozen = client.get(freeze_url(case)).content.decode()
    assert f"Account {ACCOUNT} is frozen" in frozen and "Lift the freeze" in frozen


def test_lifting_from_the_page_needs_a_reason(client, case, granted):
    do_freeze(case, granted)
    client.force_login(granted)
    lift = reverse("admin:legal_preservationrequest_lift", args=[case.pk])

    refused = client.post(lift, {"reason": ""})
    lifted = client.post(lift, {"reason": LIFT_REASON})

    assert refused.status_code == 200 and b"This field is required" in refused.content
    assert lifted.status_code == 302
    assert PreservationRequest.objects.get().lift_reason == LIFT_REASON
    assert client.get(lift).status_code == 404  # POST only


def test_the_case_page_links_to_the_freeze_page(client, case, granted, reviewer):
    client.force_login(granted)
    page = client.get(reverse("admin:cases_case_change", args=[case.pk]))
    assert page.status_code == 200 and freeze_url(case).encode() in page.content

    assert actions.claim_next_case(reviewer) == case
    client.force_login(reviewer)
    page = client.get(reverse("admin:cases_case_change", args=[case.pk]))
    assert page.status_code == 200 and freeze_url(case).encode() not in page.content


def test_the_freeze_list_shows_status_and_answers_only_for_the_persons_cases(
    client, api, case, granted, legal
):
    request = do_freeze(case, granted)
    assert api.post(RECORDS, answer_body(request), format="json").status_code == 201
    item = RecordsAnswer.objects.get().item
    change = reverse("admin:legal_preservationrequest_change", args=[request.pk])
    client.force_login(granted)

    listing = client.get(reverse("admin:legal_preservationrequest_changelist"))
    page = client.get(change)

    assert listing.status_code == 200 and b"Answered" in listing.content
    item_url = reverse("admin:evidence_evidenceitem_change", args=[item.pk])
    assert page.status_code == 200 and item_url.encode() in page.content
    other = UserFactory(username="lou", roles=["legal"])
    assert other != legal
    client.force_login(other)
    assert client.get(change).status_code == 404
    listing = client.get(reverse("admin:legal_preservationrequest_changelist"))
    assert listing.status_code == 200 and f"#{request.pk}".encode() not in listing.content
