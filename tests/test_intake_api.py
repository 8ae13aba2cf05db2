import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from bakkme_safety import policy
from cases.models import Case, CaseEvent
from reports.models import Report

from .factories import report_payload

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/"
BATCH_URL = "/api/v1/reports/batch/"


def stored():
    return Report.objects.count(), Case.objects.count(), CaseEvent.objects.count()


def test_a_report_is_stored_and_answered_with_its_case_priority_and_due_at(api):
    payload = report_payload(
        category="grooming", received_at="2026-11-22T10:00:00Z", idempotency_key="r-1001"
    )
    response = api.post(URL, payload, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "case", "priority", "due_at"}
    assert body["priority"] == "P1"
    assert body["due_at"] == "2026-11-23T10:00:00Z"
    report = Report.objects.get(pk=body["id"])
    assert report.case_id == body["case"]
    assert report.reporter_contact == "reporter-contact-7"
    assert report.account_platform_id == payload["reported_account"]["platform_id"]


def test_reports_about_one_account_share_a_case_with_the_highest_priority_and_earliest_due(api):
    now = timezone.now()
    first = api.post(
        URL,
        report_payload(
            category="other",
            reported_account={"platform_id": "u-42"},
            received_at=(now - timedelta(hours=2)).isoformat(),
        ),
        format="json",
    ).json()
    second = api.post(
        URL,
        report_payload(
            category="grooming",
            reported_account={"platform_id": "u-42"},
            received_at=(now - timedelta(hours=1)).isoformat(),
        ),
        format="json",
    ).json()
    other = api.post(URL, report_payload(reported_account={"platform_id": "u-43"}), format="json")

    assert first["case"] == second["case"] != other.json()["case"]
    case = Case.objects.get(pk=first["case"])
    assert case.report_count == 2
    assert case.priority_label == "P1"
    assert case.category == "grooming"
    # P3 due in 72 h from two hours ago; P1 due in 24 h from one hour ago: the earlier wins.
    assert case.due_at == now - timedelta(hours=1) + timedelta(hours=24)


def test_without_an_account_reports_group_by_content(api):
    a = api.post(
        URL, report_payload(reported_account={}, content={"platform_id": "c-1"}), format="json"
    )
    b = api.post(
        URL, report_payload(reported_account={}, content={"platform_id": "c-1"}), format="json"
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["case"] == b.json()["case"]


def test_a_report_on_a_decided_case_reopens_it_with_a_new_window(api, senior):
    from cases.actions import DecisionInput, decide_case

    first = api.post(URL, report_payload(reported_account={"platform_id": "u-9"}), format="json")
    case = Case.objects.get(pk=first.json()["case"])
    decide_case(case, DecisionInput("no_violation", "nothing found"), actor=senior)

    received = timezone.now() - timedelta(minutes=1)
    again = api.post(
        URL,
        report_payload(reported_account={"platform_id": "u-9"}, received_at=received.isoformat()),
        format="json",
    )
    case.refresh_from_db()
    assert again.json()["case"] == case.pk
    assert case.state == "new"
    assert case.due_at == received + timedelta(hours=24)


def test_a_repeated_idempotency_key_answers_200_with_the_same_body_and_stores_nothing(api):
    payload = report_payload()
    first = api.post(URL, payload, format="json")
    before = stored()
    again = api.post(URL, payload, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert stored() == before


def test_the_same_key_for_another_report_is_a_conflict(api):
    payload = report_payload()
    api.post(URL, payload, format="json")
    before = stored()
    response = api.post(URL, {**payload, "category": "csam"}, format="json")
    assert response.status_code == 409
    assert "idempotency_key" in response.json()
    assert stored() == before


def test_idempotency_keys_are_per_integration(api, db):
    from reports.actions import create_integration

    payload = report_payload()
    api.post(URL, payload, format="json")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {create_integration('second')[1]}")
    assert other.post(URL, payload, format="json").status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"category": "not-a-category"}, "category"),
        ({"surface": "billboard"}, "surface"),
        ({"source": "carrier-pigeon"}, "source"),
        ({"received_at": "yesterday-ish"}, "received_at"),
        ({"received_at": 12}, "received_at"),
        ({"reported_account": "u-42"}, "reported_account"),
        ({"reporter": {"anonymous": "perhaps"}}, "reporter"),
        ({"content": {"platform_id": "m-1", "url": "not a url"}}, "content"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": ["r-1"]}, "idempotency_key"),
        ({"reported_account": {}, "content": {}}, "reported_account"),
    ],
)
def test_bad_fields_get_400_with_field_errors_and_store_nothing(api, change, field):
    response = api.post(URL, report_payload(**change), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize(
    "missing", ["idempotency_key", "source", "category", "surface", "received_at"]
)
def test_missing_fields_get_400_naming_the_field(api, missing):
    payload = report_payload()
    del payload[missing]
    response = api.post(URL, payload, format="json")
    assert response.status_code == 400
    assert response.json()[missing] == ["This field is required."]
    assert stored() == (0, 0, 0)


def test_received_at_in_the_future_is_refused(api):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = api.post(URL, report_payload(received_at=future), format="json")
    assert response.status_code == 400
    assert "future" in response.json()["received_at"][0]
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2", b"\xff\xfe"])
def test_malformed_json_gets_400(api, body):
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()
    assert stored() == (0, 0, 0)


def test_an_empty_body_gets_400_naming_the_required_fields(api):
    response = api.post(URL, b"", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["category"] == ["This field is required."]
    assert stored() == (0, 0, 0)


def test_a_json_array_instead_of_an_object_gets_400(api):
    response = api.post(URL, json.dumps([report_payload()]), content_type="application/json")
    assert response.status_code == 400
    assert stored() == (0, 0, 0)


def test_a_body_over_one_mebibyte_gets_413(api):
    payload = report_payload(description="x" * (settings.BAKKME_API_MAX_BODY_BYTES + 10))
    response = api.post(URL, json.dumps(payload), content_type="application/json")
    assert response.status_code == 413
    assert stored() == (0, 0, 0)


def test_another_content_type_gets_415(api):
    response = api.post(URL, "category=csam", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


@pytest.mark.parametrize("header", [None, "Token", "Token nope", "Bearer abc", "Token a b"])
def test_a_missing_or_unknown_token_gets_401(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post(URL, report_payload(), format="json")
    assert response.status_code == 401
    assert stored() == (0, 0, 0)


def test_a_deactivated_integration_gets_401(api, integration):
    integration.is_active = False
    integration.save()
    assert api.post(URL, report_payload(), format="json").status_code == 401


def test_a_batch_answers_per_item(api):
    good = report_payload()
    bad = report_payload(category="nope")
    response = api.post(BATCH_URL, {"reports": [good, bad, good, "text"]}, format="json")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 200, 400]
    assert "category" in results[1]["errors"]
    assert results[0]["id"] == results[2]["id"]
    assert Report.objects.count() == 1


def test_a_batch_of_many_reports_groups_them(api):
    reports = [report_payload(reported_account={"platform_id": f"u-{i % 10}"}) for i in range(50)]
    response = api.post(BATCH_URL, {"reports": reports}, format="json")
    assert all(r["status"] == 201 for r in response.json()["results"])
    assert Report.objects.count() == 50
    assert Case.objects.count() == 10
    assert sorted(Case.objects.values_list("report_count", flat=True)) == [5] * 10


def test_a_batch_over_the_limit_is_refused_whole(api, settings):
    settings.BAKKME_API_BATCH_MAX_REPORTS = 3
    response = api.post(BATCH_URL, {"reports": [report_payload() for _ in range(4)]}, format="json")
    assert response.status_code == 400
    assert "reports" in response.json()
    assert stored() == (0, 0, 0)


def test_a_batch_of_501_is_refused(api):
    response = api.post(
        BATCH_URL, {"reports": [report_payload() for _ in range(501)]}, format="json"
    )
    assert response.status_code == 400
    assert "at most 500" in response.json()["reports"][0]
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("body", [{}, {"reports": []}, {"reports": "many"}, [report_payload()]])
def test_a_batch_that_is_not_a_list_of_reports_gets_400(api, body):
    response = api.post(BATCH_URL, body, format="json")
    assert response.status_code == 400
    assert stored() == (0, 0, 0)


def test_get_is_not_allowed(api):
    assert api.get(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_a_second_p0_report_on_an_open_p0_case_is_stored_and_answered_201(api):
    account = {"platform_id": "u-danger", "username": "someone"}
    first = api.post(
        URL, report_payload(category="imminent_danger", reported_account=account), format="json"
    )
    second = api.post(
        URL, report_payload(category="imminent_danger", reported_account=account), format="json"
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["case"] == first.json()["case"]
    assert Report.objects.filter(case=first.json()["case"]).count() == 2
    # The case's own sweeps (two warnings and the deadline) are booked once.
    names = list(
        Schedule.objects.filter(
            name__startswith=f"sla-p0-case-{first.json()['case']}-"
        ).values_list("name", flat=True)
    )
    assert len(names) == len(set(names)) == 3


def test_intake_records_each_change_of_a_case_in_its_history(api):
    account = {"platform_id": "u-history", "username": "someone"}
    first = api.post(URL, report_payload(category="other", reported_account=account), format="json")
    api.post(URL, report_payload(category="grooming", reported_account=account), format="json")
    case = Case.objects.get(pk=first.json()["case"])
    rows = case.history.order_by("history_date", "history_id").values_list(
        "history_type", "priority", "category", "report_count", "due_at", "history_user"
    )
    p_other = policy.priority_for("other", "message", "in_app")
    p_grooming = policy.priority_for("grooming", "message", "in_app")
    assert p_grooming < p_other
    assert [row[:4] for row in rows] == [
        ("+", p_other, "other", 1),
        ("~", p_grooming, "grooming", 2),
    ]
    assert rows[1][4] == case.due_at  # the state after the change, as stored
    assert {row[5] for row in rows} == {None}  # an integration, not a person
