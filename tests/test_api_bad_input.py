"""Bad input to the intake API gets a clear 4xx, never a 500, and stores nothing it refuses
(issue 13, findings 9-11): over-long bodies, deep nesting, bodies that are not objects, null items
in batches, dates out of any plausible range. Placeholder ids and text only."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cases.models import Case
from evidence.models import EvidenceItem
from reports.api import urls as api_urls
from reports.models import AccountEvent, Report

from .factories import make_report, report_payload

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/reports/"
BATCH = "/api/v1/reports/batch/"
EVENTS = "/api/v1/events/"
MATCH = "/api/v1/match/"
JSON_ENDPOINTS = [REPORTS, BATCH, EVENTS, MATCH]


def event_payload(n=1, **overrides) -> dict:
    body = {
        "idempotency_key": f"e-{n}",
        "type": "message_sent",
        "occurred_at": (timezone.now() - timedelta(minutes=30)).isoformat(),
        "actor": {"platform_id": "adult-1", "age": 34},
        "target": {"platform_id": f"minor-{n}", "age_band": "13_15"},
        "surface": "message",
    }
    body.update(overrides)
    return body


def nothing_stored():
    return (Report.objects.count(), Case.objects.count(), AccountEvent.objects.count()) == (0, 0, 0)


def post_json(api, url, body: str | bytes, **extra):
    return api.post(url, body, content_type="application/json", **extra)


# --- Over-long bodies: 413 from the declared length, before the body is read ---------------------


class NeverRead:
    """A request body that records whether anything read it."""

    def __init__(self):
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        return b""

    def readline(self, *args):
        return self.read()


LIMITS = [
    (REPORTS, "BAKKME_API_MAX_BODY_BYTES"),
    (BATCH, "BAKKME_API_MAX_BATCH_BODY_BYTES"),
    (EVENTS, "BAKKME_API_MAX_BATCH_BODY_BYTES"),
    (MATCH, "BAKKME_API_MAX_BODY_BYTES"),
]


@pytest.mark.parametrize("url, limit_name", LIMITS)
@pytest.mark.parametrize("over", [1, 10 * 1024 * 1024])
def test_a_body_declared_longer_than_the_limit_gets_413_naming_it_unread(
    api, url, limit_name, over
):
    limit = getattr(settings, limit_name)
    body = NeverRead()
    response = post_json(api, url, b"{}", CONTENT_LENGTH=str(limit + over), **{"wsgi.input": body})
    assert response.status_code == 413, response.content
    assert response.json() == {"detail": f"The body is larger than the limit of {limit:,} bytes."}
    assert body.reads == 0
    assert nothing_stored()


def test_a_multipart_body_declared_longer_than_the_match_file_limit_gets_413_unread(api):
    limit = settings.BAKKME_MATCH_MAX_FILE_BYTES + settings.BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES
    body = NeverRead()
    response = api.post(
        MATCH,
        b"",
        content_type="multipart/form-data; boundary=placeholder",
        CONTENT_LENGTH=str(limit + 1),
        **{"wsgi.input": body},
    )
    assert response.status_code == 413, response.content
    assert f"{limit:,} bytes" in response.json()["detail"]
    assert body.reads == 0


def test_a_nine_megabyte_batch_gets_413_and_nothing_is_stored(api):
    limit = settings.BAKKME_API_MAX_BATCH_BODY_BYTES
    reports = [report_payload(description="placeholder " * 1000) for _ in range(800)]
    body = json.dumps({"reports": reports})
    assert len(body) > limit + 1024 * 1024
    response = post_json(api, BATCH, body)
    assert response.status_code == 413
    assert f"{limit:,} bytes" in response.json()["detail"]
    assert nothing_stored()


def test_a_content_length_that_is_not_a_number_gets_400(api):
    response = post_json(api, REPORTS, json.dumps(report_payload()), CONTENT_LENGTH="many")
    assert response.status_code == 400
    assert "Content-Length" in response.json()["detail"]
    assert nothing_stored()


def test_form_fields_over_djangos_memory_cap_get_413_naming_it(
    api, integration, settings, evidence_root
):
    """Django holds a multipart body's fields (not its files) in memory, up to
    DATA_UPLOAD_MAX_MEMORY_SIZE; past it the answer is 413, on every multipart endpoint."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    match = api.post(MATCH, {"signal_type": "md5", "hash": "0" * 2000}, format="multipart")
    assert match.status_code == 413, match.content
    assert match.json() == {"detail": "The body is larger than the limit of 1,000 bytes."}
    report = make_report(integration)
    upload = SimpleUploadedFile("placeholder.bin", b"placeholder")
    media = api.post(
        f"/api/v1/reports/{report.pk}/media/",
        {"file": upload, "kind": "m" * 2000},
        format="multipart",
    )
    assert media.status_code == 413, media.content
    assert not EvidenceItem.objects.exists()


def test_too_many_form_fields_get_400_naming_the_limit(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    fields = {f"field{i}": "placeholder" for i in range(5)}
    response = api.post(MATCH, fields, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json() == {"detail": "The form has more than 3 fields."}


def test_every_api_view_refuses_over_long_bodies_in_the_same_place():
    from reports.api.base import IntakeAPIView

    views = [pattern.callback.view_class for pattern in api_urls.urlpatterns]
    assert len(views) >= 5
    assert [v.__name__ for v in views if not issubclass(v, IntakeAPIView)] == []


# --- Nesting and strict JSON ----------------------------------------------------------------------


def nested(depth: int):
    value = "placeholder"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize("url", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 50_000 + "1" + "}" * 50_000,
        None,  # one level deeper than the limit
    ],
    ids=["unclosed", "closed", "objects", "limit+1"],
)
def test_nesting_deeper_than_the_limit_is_not_valid_json(api, url, body):
    depth = settings.BAKKME_API_MAX_JSON_DEPTH
    if body is None:
        body = json.dumps({"description": nested(depth)})
    response = post_json(api, url, body)
    assert response.status_code == 400, response.content
    assert response.json() == {
        "detail": f"The body is not valid JSON: nested deeper than {depth} levels."
    }
    assert nothing_stored()


def test_nesting_up_to_the_limit_is_parsed_and_answered_field_by_field(api):
    depth = settings.BAKKME_API_MAX_JSON_DEPTH
    at_limit = post_json(api, REPORTS, json.dumps({"description": nested(depth - 1)}))
    assert at_limit.status_code == 400
    assert "description" in at_limit.json()  # parsed: a field error, not "not valid JSON"
    over = post_json(api, REPORTS, json.dumps({"description": nested(depth)}))
    assert "nested deeper" in over.json()["detail"]
    # Brackets, quotes and backslashes inside strings are text, not nesting.
    text = '[{"\\' * 100 + '\\"' + "]}" * 100
    taken = api.post(REPORTS, report_payload(description=text), format="json")
    assert taken.status_code == 201, taken.content


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, constant):
    response = post_json(api, EVENTS, f'{{"idempotency_key": {constant}}}')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not valid JSON")


# --- Bodies that are not objects ------------------------------------------------------------------


@pytest.mark.parametrize("url", JSON_ENDPOINTS)
@pytest.mark.parametrize("body", ["null", "5", "true", '"placeholder"', "[{}]", "[]"])
def test_a_body_that_is_not_an_object_gets_400_with_field_errors(api, url, body):
    response = post_json(api, url, body)
    assert response.status_code == 400, response.content
    (message,) = response.json()["non_field_errors"]
    assert message.startswith("The body is ") and "JSON object" in message
    assert nothing_stored()


def test_a_batch_with_a_null_item_answers_it_and_stores_the_others(api):
    first, second = report_payload(), report_payload()
    response = api.post(BATCH, {"reports": [first, None, 5, [], second]}, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 400, 400, 201]
    for item in results[1:4]:
        assert item["errors"] == {"non_field_errors": ["Each report is a JSON object."]}
    stored = Report.objects.values_list("idempotency_key", flat=True)
    assert sorted(stored) == sorted([first["idempotency_key"], second["idempotency_key"]])


def test_events_with_a_null_item_are_refused_naming_it_and_none_is_stored(api):
    response = api.post(EVENTS, {"events": [event_payload(1), None]}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {
        "events": [{"index": 1, "errors": {"non_field_errors": ["Each event is a JSON object."]}}]
    }
    assert not AccountEvent.objects.exists()


# --- Dates out of any plausible range -------------------------------------------------------------


def past_words():
    return f"the API takes nothing older than {settings.BAKKME_API_MAX_PAST_DAYS} days"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_a_received_at_long_ago_is_refused_naming_the_bound(api, value):
    response = api.post(REPORTS, report_payload(received_at=value), format="json")
    assert response.status_code == 400, response.content
    (message,) = response.json()["received_at"]
    earliest = (timezone.now() - timedelta(days=settings.BAKKME_API_MAX_PAST_DAYS)).date()
    assert message.startswith(f"received_at is before {earliest:%Y-%m-%d}")
    assert past_words() in message
    assert nothing_stored()


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "2999-01-01T00:00:00Z"])
@pytest.mark.parametrize("url, field", [(REPORTS, "received_at"), (EVENTS, "occurred_at")])
def test_a_date_far_in_the_future_is_refused_naming_the_allowed_skew(api, url, field, value):
    body = report_payload(**{field: value}) if url == REPORTS else event_payload(**{field: value})
    response = api.post(url, body, format="json")
    assert response.status_code == 400, response.content
    skew = settings.BAKKME_RECEIVED_AT_MAX_SKEW_SECONDS
    assert response.json()[field] == [
        f"{field} is in the future (more than {skew} seconds ahead of our clock)."
    ]
    assert nothing_stored()


def test_the_oldest_received_at_taken_is_max_past_days_back(api, settings):
    settings.BAKKME_API_MAX_PAST_DAYS = 30
    now = timezone.now()
    inside = api.post(
        REPORTS, report_payload(received_at=(now - timedelta(days=29)).isoformat()), format="json"
    )
    assert inside.status_code == 201, inside.content
    outside = api.post(
        REPORTS, report_payload(received_at=(now - timedelta(days=31)).isoformat()), format="json"
    )
    assert outside.status_code == 400
    assert "nothing older than 30 days" in outside.json()["received_at"][0]
    assert Report.objects.count() == 1


def test_a_year_0001_report_in_a_batch_is_answered_alone_and_makes_no_breached_case(api):
    old = report_payload(category="imminent_danger", received_at="0001-01-01T00:00:00Z")
    good = report_payload()
    response = api.post(BATCH, {"reports": [old, good]}, format="json")
    results = response.json()["results"]
    assert [r["status"] for r in results] == [400, 201]
    assert "received_at" in results[0]["errors"]
    assert Report.objects.get().idempotency_key == good["idempotency_key"]
    assert not Case.objects.filter(due_at__lt=timezone.now()).exists()


def test_an_event_that_occurred_in_year_0001_is_refused_and_none_is_stored(api):
    body = {"events": [event_payload(1), event_payload(2, occurred_at="0001-01-01T00:00:00Z")]}
    response = api.post(EVENTS, body, format="json")
    assert response.status_code == 400, response.content
    (item,) = response.json()["events"]
    assert item["index"] == 1
    assert past_words() in item["errors"]["occurred_at"][0]
    assert not AccountEvent.objects.exists()


@pytest.mark.parametrize(
    "account, field, words",
    [
        ({"date_of_birth": "0001-01-01"}, "date_of_birth", "nobody is older than"),
        ({"date_of_birth": "1850-06-01"}, "date_of_birth", "nobody is older than"),
        ({"created_at": "0001-01-01"}, "created_at", "nothing older than"),
        ({"created_at": "9999-12-31"}, "created_at", "in the future"),
    ],
)
def test_account_dates_out_of_range_are_refused_with_the_field_named(api, account, field, words):
    body = report_payload(reported_account={"platform_id": "u-placeholder", **account})
    response = api.post(REPORTS, body, format="json")
    assert response.status_code == 400, response.content
    (message,) = response.json()["reported_account"][field]
    assert words in message
    assert nothing_stored()
    today = timezone.now().date()
    plausible = {
        "platform_id": "u-placeholder",
        "date_of_birth": "1950-03-01",
        "created_at": (today - timedelta(days=400)).isoformat(),
    }
    taken = api.post(REPORTS, report_payload(reported_account=plausible), format="json")
    assert taken.status_code == 201, taken.content
