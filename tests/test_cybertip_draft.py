"""The CyberTipline draft legal staff edit (legal/draft.py, legal/forms.py, the draft page): the
form saves and the XML validates after edits; an edit NCMEC's schema would refuse is refused
next to its field; the draft is filled from our own data (IP capture events and the e-mail from
the reported account's events, minors offered as victims for legal to confirm). Placeholder
data only: documentation IP ranges, example.com addresses, generated images."""

import io
import json
from datetime import timedelta

import lxml.html
import pytest
from django.utils import timezone

from evidence import access, vault
from evidence.models import EvidenceKind
from evidence.samples import pattern_png
from legal import actions, cybertip_xml
from legal.models import CyberTiplineReport

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

REPORTED = "u-reported"
EVENTS = "/api/v1/events/"


@pytest.fixture
def filer(db):
    """Legal staff; each test grants them its case."""
    return UserFactory(username="lena", roles=["legal"])


def draft_url(case) -> str:
    return f"/admin/legal/cybertiplinereport/case/{case.pk}/"


def make_case(integration, cso, filer, *, category="grooming", surface="message"):
    report = make_report(
        integration,
        category=category,
        surface=surface,
        reported_account={"platform_id": REPORTED, "username": "someone-reported"},
    )
    case = report.case
    vault.collect(io.BytesIO(pattern_png(seed=3)), case=case, report=report, original_name="a.png")
    access.grant(case, filer, by=cso, reason="placeholder reason")
    return case


def send_events(api, *events) -> None:
    response = api.post(EVENTS, {"events": list(events)}, format="json")
    assert response.status_code == 201, response.json()


_keys = iter(range(1, 10**6))


def event(kind, actor=REPORTED, *, minutes_ago=60, target=None, **extra) -> dict:
    body = {
        "idempotency_key": f"draft-e-{next(_keys)}",
        "type": kind,
        "occurred_at": (timezone.now() - timedelta(minutes=minutes_ago)).isoformat(),
        "actor": {"platform_id": actor, "age": 30},
        "surface": "message",
        **extra,
    }
    if target is not None:
        body["target"] = target
    return body


def page_values(page) -> dict[str, list[str]]:
    """What a browser would send from the page's draft form, as it stands."""
    form = lxml.html.fromstring(page.content).get_element_by_id("cybertip-draft")
    values: dict[str, list[str]] = {}
    for name, value in form.form_values():
        values.setdefault(name, []).append(value)
    return values


def set_field(values, name, value) -> None:
    values[name] = value if isinstance(value, list) else [value]


def open_page(client, user, case):
    client.force_login(user)
    page = client.get(draft_url(case))
    assert page.status_code == 200
    return page


def saved(case) -> CyberTiplineReport:
    return actions.current_report(case)


# --- The form ------------------------------------------------------------------------------------


def test_the_form_saves_and_the_xml_validates_after_edits(integration, cso, filer, client):
    case = make_case(integration, cso, filer)
    page = open_page(client, filer, case)
    assert b'id="cybertip-draft"' in page.content and b'type="datetime-local"' in page.content
    values = page_values(page)
    set_field(values, "draft-incident_date_time", "2026-03-04T05:06:07")
    set_field(values, "draft-additional_info", "Placeholder note for NCMEC.")
    set_field(values, "intended_recipients-0-esp_id", "u-recipient")
    set_field(values, "intended_recipients-0-email", "recipient@example.com")
    set_field(values, "files-0-classification", "A1")
    set_field(values, "files-0-annotations", ["potentialMeme", "viral"])
    values.pop("files-0-viewed_by_esp", None)  # unticked

    done = client.post(draft_url(case), values)
    assert done.status_code == 302, done.context["editor"].top_errors
    report = saved(case)
    xml, problems = actions.draft(case)
    assert problems == [] and xml == report.xml
    assert "<incidentDateTime>2026-03-04T05:06:07+00:00</incidentDateTime>" in xml
    assert "<additionalInfo>Placeholder note for NCMEC.</additionalInfo>" in xml
    assert "<espIdentifier>u-recipient</espIdentifier>" in xml
    assert "<email>recipient@example.com</email>" in xml
    # The file's details as they will be sent after its upload, from the saved draft.
    item = case.evidence.get()
    details = cybertip_xml.build_file_details(case, item, report_id="42", file_id="f-1")
    assert cybertip_xml.validate(details) == []
    assert "<industryClassification>A1</industryClassification>" in details
    assert "<potentialMeme>true</potentialMeme>" in details and "<viral>true</viral>" in details
    assert "<fileViewedByEsp>false</fileViewedByEsp>" in details
    # The page shows the saved draft and says it validates.
    again = client.get(draft_url(case))
    assert b"The report validates." in again.content and b"u-recipient" in again.content


@pytest.mark.parametrize(
    "field, value, where",
    [
        # NCMEC's schema refuses these; the form lets the schema decide (one source of rules).
        ("draft-incident_type", "", ("form", "incident_type")),
        ("ip_events-0-ip_address", "", ("ip_events", "ip_address")),
        # Pasted text with a control character XML cannot carry.
        ("draft-additional_info", "placeholder\x0bnote", ("form", "additional_info")),
        # The form itself refuses an ambiguous date (day and month either way round).
        ("draft-incident_date_time", "03/04/2026 05:06", ("form", "incident_date_time")),
    ],
)
def test_an_edit_that_would_not_validate_is_refused_next_to_its_field_and_nothing_is_saved(
    field, value, where, integration, cso, filer, client, api
):
    send_events(api, event("login", identifiers={"ip": "192.0.2.10"}))
    case = make_case(integration, cso, filer)
    page = open_page(client, filer, case)
    before = saved(case)
    history = before.history.count()
    values = page_values(page)
    set_field(values, field, value)
    if field == "ip_events-0-ip_address":  # the row keeps its time: only the address is gone
        assert values["ip_events-0-date_time"][0]

    refused = client.post(draft_url(case), values)
    assert refused.status_code == 400
    editor = refused.context["editor"]
    part, name = where
    form = editor.form if part == "form" else editor.formsets[part].forms[0]
    assert form.errors.get(name), (form.errors, editor.top_errors)
    assert f'id="id_{field}"'.encode() in refused.content
    after = saved(case)
    assert after.draft == before.draft and after.xml == before.xml
    assert after.history.count() == history


def test_a_draft_that_does_not_validate_shows_its_problems_next_to_their_fields(
    integration, cso, filer, client
):
    # An under-13 user is no CyberTipline incident: the initial draft has no incident type.
    case = make_case(integration, cso, filer, category="underage_user")
    page = open_page(client, filer, case)
    editor = page.context["editor"]
    assert editor.form.errors["incident_type"] == [
        "NCMEC's schema accepts only the values listed here."
    ]
    assert b'id="id_draft-incident_type_error"' in page.content
    assert b"File the report" not in page.content


# --- Enrichment from our own data ----------------------------------------------------------------


def test_ip_capture_events_come_from_the_reported_accounts_login_and_registration_events(
    integration, cso, filer, client, api
):
    send_events(
        api,
        event("account_created", minutes_ago=300, identifiers={"ip": "192.0.2.11"}),
        event("login", minutes_ago=120, identifiers={"ip": "192.0.2.10"}),
        event("login", actor="u-someone-else", identifiers={"ip": "198.51.100.7"}),
        event("message_sent", target={"platform_id": "u-adult", "age": 40}),
    )
    case = make_case(integration, cso, filer)
    open_page(client, filer, case)

    events = saved(case).draft["ip_events"]
    assert [(e["ip_address"], e["event_name"], e["account"]) for e in events] == [
        ("192.0.2.11", "Registration", REPORTED),
        ("192.0.2.10", "Login", REPORTED),
    ]
    xml, problems = actions.draft(case)
    assert problems == []
    person = xml.split("<personOrUserReported>")[1].split("</personOrUserReported>")[0]
    assert "<ipAddress>192.0.2.10</ipAddress>" in person
    assert "<eventName>Login</eventName>" in person
    assert "<eventName>Registration</eventName>" in person
    assert f"<dateTime>{events[1]['date_time']}</dateTime>" in person
    assert "198.51.100.7" not in xml


def test_ip_events_the_platform_sent_after_a_freeze_join_the_accounts_own(
    integration, cso, filer, client, api, monkeypatch
):
    from legal import records

    send_events(api, event("login", minutes_ago=30, identifiers={"ip": "192.0.2.10"}))
    at = timezone.now() - timedelta(days=2)
    answered = [
        {"ip": "2001:db8::7", "at": at, "event": "Upload"},
        {"ip": "192.0.2.10", "at": at + timedelta(minutes=1), "event": "Login"},
    ]
    monkeypatch.setattr(records, "ip_capture_events", lambda case: answered)
    case = make_case(integration, cso, filer)
    open_page(client, filer, case)
    events = saved(case).draft["ip_events"]
    assert [(e["ip_address"], e["event_name"]) for e in events] == [
        ("2001:db8::7", "Upload"),
        ("192.0.2.10", "Login"),  # the freeze answer's login, two days ago
        ("192.0.2.10", "Login"),  # the login event, half an hour ago
    ]
    xml, problems = actions.draft(case)
    assert problems == [] and "<ipAddress>2001:db8::7</ipAddress>" in xml


def test_the_email_the_platform_sent_fills_the_reported_person(
    integration, cso, filer, client, api
):
    send_events(
        api,
        event("login", identifiers={"ip": "192.0.2.10", "email": "reported@example.com"}),
        event("login", actor="u-someone-else", identifiers={"email": "other@example.com"}),
    )
    case = make_case(integration, cso, filer)
    page = open_page(client, filer, case)
    assert b"reported@example.com" in page.content  # in the form, to be seen and edited
    xml, _ = actions.draft(case)
    assert "<personOrUserReportedPerson>\n      <email>reported@example.com</email>" in xml, xml
    assert "other@example.com" not in xml


def _case_with_minors(integration, cso, filer, api):
    send_events(
        api,
        event("message_sent", target={"platform_id": "u-minor-a", "age_band": "13_15"}),
        event("follow_request", target={"platform_id": "u-minor-a", "age_band": "13_15"}),
        event("message_sent", target={"platform_id": "u-adult", "age": 35}),
        event(
            "message_sent", actor="u-someone-else", target={"platform_id": "u-minor-x", "age": 12}
        ),
    )
    case = make_case(integration, cso, filer)
    log = [
        {"from": REPORTED, "text": "placeholder one"},
        {
            "from": REPORTED,
            "to": {"platform_id": "u-minor-c", "age": 14, "name": "Placeholder Name"},
            "text": "placeholder two",
        },
    ]
    vault.collect(
        io.BytesIO(json.dumps(log).encode()), case=case, kind=EvidenceKind.COMMUNICATION_LOG
    )
    return case


def _suggestion_row(page, esp_id) -> int:
    rows = {name: rows for name, _, _, rows in page.context["editor"].parts()}
    for index, (_, about) in enumerate(rows["suggested_victims"]):
        if about.startswith(f"{esp_id},"):
            return index
    raise AssertionError(f"{esp_id} is not offered")


def test_minors_from_events_and_message_logs_are_offered_but_not_sent_until_confirmed(
    integration, cso, filer, client, api
):
    case = _case_with_minors(integration, cso, filer, api)
    page = open_page(client, filer, case)
    offered = {s["esp_id"]: s for s in saved(case).draft["suggested_victims"]}
    assert set(offered) == {"u-minor-a", "u-minor-c"}  # not the adult, not another's contact
    assert offered["u-minor-a"]["age_band"] == "13_15" and offered["u-minor-c"]["age"] == 14
    assert b"u-minor-a" in page.content and b"u-minor-c" in page.content
    xml, problems = actions.draft(case)
    assert problems == [] and "<victim>" not in xml and "u-minor" not in xml

    values = page_values(page)
    set_field(values, f"suggested_victims-{_suggestion_row(page, 'u-minor-a')}-decision", "confirm")
    assert client.post(draft_url(case), values).status_code == 302

    xml, problems = actions.draft(case)
    assert problems == []
    victim = xml.split("<victim>")[1].split("</victim>")[0]
    assert "<espIdentifier>u-minor-a</espIdentifier>" in victim
    assert "Estimated age range: 13-15" in victim
    assert "u-minor-c" not in xml  # still only offered
    assert [s["esp_id"] for s in saved(case).draft["suggested_victims"]] == ["u-minor-c"]


def test_a_victim_name_is_only_there_if_legal_typed_it(integration, cso, filer, client, api):
    case = _case_with_minors(integration, cso, filer, api)
    page = open_page(client, filer, case)
    values = page_values(page)
    set_field(values, f"suggested_victims-{_suggestion_row(page, 'u-minor-c')}-decision", "confirm")
    assert client.post(draft_url(case), values).status_code == 302
    xml, _ = actions.draft(case)
    assert "<age>14</age>" in xml and "<espIdentifier>u-minor-c</espIdentifier>" in xml
    assert "<firstName>" not in xml.split("<victim>")[1]
    assert "Placeholder Name" not in xml and "Placeholder Name" not in json.dumps(saved(case).draft)

    values = page_values(client.get(draft_url(case)))
    set_field(values, "victims-0-first_name", "Typedbylegal")
    assert client.post(draft_url(case), values).status_code == 302
    xml, problems = actions.draft(case)
    assert problems == []
    assert "<victimPerson>\n      <firstName>Typedbylegal</firstName>" in xml


def test_each_save_is_in_the_history(integration, cso, filer, client):
    case = make_case(integration, cso, filer)
    page = open_page(client, filer, case)
    report = saved(case)
    assert report.history.count() >= 1 and report.history.first().history_user == filer
    for n in (1, 2):
        values = page_values(page)
        set_field(values, "draft-additional_info", f"Placeholder edit {n}")
        assert client.post(draft_url(case), values).status_code == 302
        page = client.get(draft_url(case))
    rows = list(report.history.order_by("-history_date", "-history_id")[:2])
    assert [r.draft["additional_info"] for r in rows] == [
        "Placeholder edit 2",
        "Placeholder edit 1",
    ]
    assert all(r.history_user == filer for r in rows)
    assert rows[0].history_change_reason == "CyberTipline draft edited"


# --- Access --------------------------------------------------------------------------------------


def test_legal_not_granted_the_case_gets_404_and_auditors_cannot_save(
    integration, cso, filer, legal, auditor, client
):
    case = make_case(integration, cso, filer)
    client.force_login(legal)  # legal staff, not granted this case
    assert client.get(draft_url(case)).status_code == 404
    assert client.post(draft_url(case), {}).status_code == 404
    assert not CyberTiplineReport.objects.filter(case=case).exists()

    values = page_values(open_page(client, filer, case))
    set_field(values, "draft-additional_info", "Placeholder by an auditor")
    before = saved(case).draft

    client.force_login(auditor)
    page = client.get(draft_url(case))
    assert page.status_code == 200 and b"Save the draft" not in page.content
    assert b"File the report" not in page.content
    assert client.post(draft_url(case), values).status_code == 403
    assert saved(case).draft == before
