"""The CyberTipline documents: a <report> and a <fileDetails> per uploaded file, built from the
draft legal staff edit (legal/draft.py), and their validation against NCMEC's schema
(legal/schemas/cyber_tipline.xsd, NCMEC's /xsd).

What legal staff do not edit comes from the case when the document is built: the platform and
our reporter contact (settings), the internet details (the case's surface and its reports'
URLs), and the dates the reported accounts were suspended or banned (the case's actions).

Nothing is sent that does not validate; the problems are given field by field: each Problem has
the element's path and, where the element came from a field of the draft, that field's name
(`incident_type`, `ip_events.2.ip_address`, `files.0.classification` ...) so the form can show
it next to the field.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.dateparse import parse_datetime
from lxml import etree

from bakkme_safety.policy import ActionType, AgeBand, Violation
from evidence.models import CustodyEvent, EvidenceItem

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "cyber_tipline.xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"

# Custody actions meaning a person saw the file itself (a blurred preview is not a viewing).
VIEWED_ACTIONS = (CustodyEvent.Action.VIEW, CustodyEvent.Action.DOWNLOAD)


@dataclass(frozen=True)
class Problem:
    """One reason a document does not validate. `field` names the draft's field the element
    came from ("" when it came from none: shown at the top of the form)."""

    path: str
    message: str
    field: str = ""

    def __str__(self):
        return f"{self.path}: {self.message}"


class InvalidDocument(Exception):
    """A document that does not validate against the XSD; `problems` lists them by field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@lru_cache(maxsize=1)
def _schema_tree():
    return etree.parse(str(SCHEMA_PATH))


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(_schema_tree())


@lru_cache(maxsize=32)
def enumeration(simple_type: str) -> tuple[str, ...]:
    """The values NCMEC's schema allows for a named simple type (e.g. "ipCaptureType")."""
    found = _schema_tree().xpath(
        "/xs:schema/xs:simpleType[@name=$name]/xs:restriction/xs:enumeration/@value",
        namespaces={"xs": XS[1:-1]},
        name=simple_type,
    )
    return tuple(str(value) for value in found)


@lru_cache(maxsize=32)
def flags(complex_type: str) -> tuple[str, ...]:
    """The element names of a named <xs:all> of true-only flags (e.g. "fileAnnotations")."""
    found = _schema_tree().xpath(
        "/xs:schema/xs:complexType[@name=$name]/xs:all/xs:element/@name",
        namespaces={"xs": XS[1:-1]},
        name=complex_type,
    )
    return tuple(str(value) for value in found)


def _parse(xml: str | bytes):
    data = xml.encode() if isinstance(xml, str) else xml
    return etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))


def validate(xml: str | bytes) -> list[Problem]:
    """The document's problems against the XSD ([] when valid)."""
    try:
        document = _parse(xml)
    except etree.XMLSyntaxError as exc:
        return [Problem("/", f"not well-formed XML: {exc}")]
    return _problems(document, {})


def check(xml: str | bytes) -> None:
    problems = validate(xml)
    if problems:
        raise InvalidDocument(problems)


def _problems(document, fields: dict[str, str]) -> list[Problem]:
    """Validate a built tree; each error is given the field of its element, or of the nearest
    element above it that came from a field."""
    xsd = schema()
    if xsd.validate(document):
        return []
    problems = []
    for error in xsd.error_log:
        path = error.path or "/"
        problems.append(Problem(path, error.message, _field_of(path, fields, error.message)))
    return problems


_EXPECTED = re.compile(r"Expected is \( ?([A-Za-z]+)")


def _field_of(path: str, fields: dict[str, str], message: str = "") -> str:
    # A required element left out is told at its parent ("Missing child element(s)") or at the
    # sibling found in its place ("This element is not expected"): the field is the missing one's.
    expected = _EXPECTED.search(message)
    if expected:
        parent = path if "Missing child" in message else path.rsplit("/", 1)[0]
        missing = f"{parent}/{expected.group(1)}"
        if missing in fields:
            return fields[missing]
    while path and path != "/":
        if path in fields:
            return fields[path]
        path = path.rsplit("/", 1)[0]
    return ""


# Characters XML 1.0 cannot carry (control characters but tab and line breaks, lone surrogates,
# U+FFFE/U+FFFF): pasted text may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
UNFIT_TEXT = "Contains a control character XML cannot carry: remove it."


class _Builder:
    """Builds one document and remembers which draft field each element came from."""

    def __init__(self, tag: str):
        self.root = etree.Element(tag)
        self._fields: list[tuple[object, str]] = []
        self._expected: list[tuple[object, str, str]] = []
        self._unfit: list[tuple[object, str]] = []

    def sub(self, parent, tag: str, text=None, *, field: str = "", **attrs):
        element = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
        if text is not None:
            text = str(text)
            if _NOT_XML.search(text):  # lxml would refuse it: a problem of the field instead
                self._unfit.append((element, field))
                text = _NOT_XML.sub("", text)
            element.text = text
        if field:
            self._fields.append((element, field))
        return element

    def expect(self, parent, tag: str, field: str) -> None:
        """An element left out because its field is empty: a problem about it is the field's."""
        self._expected.append((parent, tag, field))

    def fields(self) -> dict[str, str]:
        tree = self.root.getroottree()
        found = {f"{tree.getpath(parent)}/{tag}": field for parent, tag, field in self._expected}
        found.update({tree.getpath(element): field for element, field in self._fields})
        return found

    def result(self) -> tuple[str, list[Problem]]:
        """The document and its problems against the XSD (and any text XML cannot carry)."""
        tree = self.root.getroottree()
        unfit = [
            Problem(tree.getpath(element), UNFIT_TEXT, field) for element, field in self._unfit
        ]
        return _serialize(self.root), unfit + _problems(self.root, self.fields())


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _when(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _when_text(value: str) -> str:
    """A draft's ISO date-time as NCMEC's xs:dateTime (seconds, with the offset); an empty or
    unreadable value is left as it is, for the schema to refuse next to its field."""
    parsed = parse_datetime(value or "")
    return _when(parsed) if parsed and parsed.tzinfo else (value or "")


def _serialize(root) -> str:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()


# --- What the case gives (also used by legal/draft.py for the initial draft) -------------------


def decision_of(case):
    return case.decisions.order_by("-created_at", "-pk").first()


def incident_type(case, decision=None) -> str:
    """From the decided violation; for an undecided case, the draft its reports' categories give
    (the case's own category first). "" when there is none: the draft will not validate."""
    if decision is not None:
        return settings.BAKKME_CYBERTIP_INCIDENT_TYPES.get(decision.violation, "")
    by_category = settings.BAKKME_CYBERTIP_CATEGORY_INCIDENT_TYPES
    categories = [case.category, *case.reports.order_by("pk").values_list("category", flat=True)]
    return next((by_category[c] for c in categories if c in by_category), "")


def is_ai_generated(case, decision) -> bool:
    if decision is not None:
        return decision.violation == Violation.AI_GENERATED_CSAE
    return case.reports.filter(category="ai_generated_csae").exists() or (
        case.category == "ai_generated_csae"
    )


def report_items(case) -> list[EvidenceItem]:
    """The evidence a report carries: every item of the case still held in the vault."""
    return list(
        EvidenceItem.objects.filter(case=case, purged_at__isnull=True).order_by(
            "collected_at", "pk"
        )
    )


def _current_draft(case) -> dict:
    from .draft import current_draft  # the draft module builds on this one

    return current_draft(case)


# --- <report> ------------------------------------------------------------------------------------


def _incident_summary(b: _Builder, data: dict) -> None:
    summary = b.sub(b.root, "incidentSummary")
    b.sub(summary, "incidentType", data.get("incident_type", ""), field="incident_type")
    b.sub(summary, "platform", settings.BAKKME_CYBERTIP_PLATFORM)
    if data.get("escalate_reason"):
        b.sub(summary, "escalateToHighPriority", data["escalate_reason"], field="escalate_reason")
    if data.get("report_annotations"):
        element = b.sub(summary, "reportAnnotations", field="report_annotations")
        for name in data["report_annotations"]:
            b.sub(element, name, "true")
    b.sub(
        summary,
        "incidentDateTime",
        _when_text(data.get("incident_date_time", "")),
        field="incident_date_time",
    )
    if data.get("incident_date_time_description"):
        b.sub(
            summary,
            "incidentDateTimeDescription",
            data["incident_date_time_description"],
            field="incident_date_time_description",
        )


def _internet_details(b: _Builder, case) -> None:
    urls = sorted({url for url in case.reports.values_list("content_url", flat=True) if url})
    surface_note = f"{settings.BAKKME_CYBERTIP_PLATFORM} {case.get_surface_display()}"
    details = b.sub(b.root, "internetDetails")
    if case.surface in settings.BAKKME_CYBERTIP_CHAT_SURFACES:
        chat = b.sub(details, "chatImIncident")
        b.sub(chat, "chatClient", settings.BAKKME_CYBERTIP_PLATFORM)
        b.sub(chat, "additionalInfo", surface_note)
    else:
        web = b.sub(details, "webPageIncident", thirdPartyHostedContent="false")
        for url in urls:
            b.sub(web, "url", url)
        b.sub(web, "additionalInfo", surface_note)


def _reporter(b: _Builder) -> None:
    reporter = b.sub(b.root, "reporter")
    person = b.sub(reporter, "reportingPerson")
    if settings.BAKKME_CYBERTIP_REPORTER_FIRST_NAME:
        b.sub(person, "firstName", settings.BAKKME_CYBERTIP_REPORTER_FIRST_NAME)
    if settings.BAKKME_CYBERTIP_REPORTER_LAST_NAME:
        b.sub(person, "lastName", settings.BAKKME_CYBERTIP_REPORTER_LAST_NAME)
    if settings.BAKKME_CYBERTIP_REPORTER_PHONE:
        b.sub(person, "phone", settings.BAKKME_CYBERTIP_REPORTER_PHONE, type="Business")
    if settings.BAKKME_CYBERTIP_REPORTER_EMAIL:
        b.sub(person, "email", settings.BAKKME_CYBERTIP_REPORTER_EMAIL, type="Business")
    if settings.BAKKME_CYBERTIP_LEGAL_URL:
        b.sub(reporter, "legalURL", settings.BAKKME_CYBERTIP_LEGAL_URL)


def _ip_event(b: _Builder, parent, event: dict, field: str) -> None:
    element = b.sub(parent, "ipCaptureEvent", field=f"{field}.ip_address")
    if event.get("ip_address"):
        b.sub(element, "ipAddress", event["ip_address"], field=f"{field}.ip_address")
    else:
        b.expect(element, "ipAddress", f"{field}.ip_address")
    if event.get("event_name"):
        b.sub(element, "eventName", event["event_name"], field=f"{field}.event_name")
    if event.get("date_time"):
        b.sub(element, "dateTime", _when_text(event["date_time"]), field=f"{field}.date_time")


def _disabled(b: _Builder, person, actions: list, account_id: str) -> None:
    """The suspension and the ban the case's actions record for the account (as told to NCMEC:
    the user was not notified by us of the report)."""
    mine = [a for a in actions if a.account_platform_id in ("", account_id)]
    suspended = [a for a in mine if a.type == ActionType.SUSPEND_ACCOUNT]
    banned = [a for a in mine if a.type == ActionType.PERMANENT_BAN]
    if suspended:
        b.sub(
            person,
            "accountTemporarilyDisabled",
            "true",
            disabledDate=_when(suspended[0].created_at),
            userNotified="false",
        )
    if banned:
        b.sub(
            person,
            "accountPermanentlyDisabled",
            "true",
            disabledDate=_when(banned[0].created_at),
            userNotified="false",
        )


def _reported_people(b: _Builder, case, data: dict) -> None:
    actions = list(
        case.actions.filter(
            type__in=[ActionType.SUSPEND_ACCOUNT, ActionType.PERMANENT_BAN]
        ).exclude(status="cancelled")
    )
    events = list(enumerate(data.get("ip_events", [])))
    for i, row in enumerate(data.get("reported_people", [])):
        field = f"reported_people.{i}"
        person = b.sub(b.root, "personOrUserReported", field=f"{field}.esp_id")
        if row.get("emails"):
            details = b.sub(person, "personOrUserReportedPerson", field=f"{field}.emails")
            for email in row["emails"]:
                b.sub(details, "email", email, field=f"{field}.emails")
        if row.get("esp_id"):
            b.sub(person, "espIdentifier", row["esp_id"], field=f"{field}.esp_id")
            b.sub(person, "espService", settings.BAKKME_CYBERTIP_PLATFORM)
        if row.get("screen_name"):
            b.sub(person, "screenName", row["screen_name"], field=f"{field}.screen_name")
        for j, event in events:
            if row.get("esp_id") and event.get("account") == row["esp_id"]:
                _ip_event(b, person, event, f"ip_events.{j}")
        if row.get("esp_id"):
            _disabled(b, person, actions, row["esp_id"])
        if row.get("additional_info"):
            b.sub(
                person, "additionalInfo", row["additional_info"], field=f"{field}.additional_info"
            )


def _account(b: _Builder, element, row: dict, field: str) -> None:
    """espIdentifier, espService and screenName of an intended recipient or a victim."""
    if row.get("esp_id"):
        b.sub(element, "espIdentifier", row["esp_id"], field=f"{field}.esp_id")
        b.sub(element, "espService", settings.BAKKME_CYBERTIP_PLATFORM)
    if row.get("screen_name"):
        b.sub(element, "screenName", row["screen_name"], field=f"{field}.screen_name")


def _intended_recipients(b: _Builder, data: dict) -> None:
    for i, row in enumerate(data.get("intended_recipients", [])):
        field = f"intended_recipients.{i}"
        recipient = b.sub(b.root, "intendedRecipient", field=f"{field}.esp_id")
        if row.get("email"):
            person = b.sub(recipient, "intendedRecipientPerson", field=f"{field}.email")
            b.sub(person, "email", row["email"], field=f"{field}.email")
        _account(b, recipient, row, field)
        if row.get("additional_info"):
            b.sub(
                recipient,
                "additionalInfo",
                row["additional_info"],
                field=f"{field}.additional_info",
            )


def _victims(b: _Builder, data: dict) -> None:
    """Only the victims legal staff confirmed or entered; a name only when they typed it. The
    schema has no age range: an estimated one goes into the victim's additionalInfo."""
    bands = dict(AgeBand.choices)
    for i, row in enumerate(data.get("victims", [])):
        field = f"victims.{i}"
        victim = b.sub(b.root, "victim", field=f"{field}.esp_id")
        person = b.sub(victim, "victimPerson", field=f"{field}.age")
        if row.get("first_name"):
            b.sub(person, "firstName", row["first_name"], field=f"{field}.first_name")
        if row.get("last_name"):
            b.sub(person, "lastName", row["last_name"], field=f"{field}.last_name")
        if row.get("age") is not None:
            b.sub(person, "age", row["age"], field=f"{field}.age")
        _account(b, victim, row, field)
        notes = []
        if row.get("estimated_age"):
            label = bands.get(row["estimated_age"], row["estimated_age"])
            notes.append(f"Estimated age range: {label} (the platform's age band).")
        if row.get("additional_info"):
            notes.append(row["additional_info"])
        if notes:
            b.sub(victim, "additionalInfo", " ".join(notes), field=f"{field}.additional_info")


def render_report(case, data: dict) -> tuple[str, list[Problem]]:
    """The <report> a draft gives, in the XSD's order, and its problems field by field."""
    b = _Builder("report")
    _incident_summary(b, data)
    _internet_details(b, case)
    _reporter(b)
    _reported_people(b, case, data)
    _intended_recipients(b, data)
    _victims(b, data)
    if data.get("additional_info"):
        b.sub(b.root, "additionalInfo", data["additional_info"], field="additional_info")
    return b.result()


def build_report(case, data: dict | None = None) -> str:
    """The <report> of a draft; without one, of the case's saved draft (or its initial one)."""
    return render_report(case, _current_draft(case) if data is None else data)[0]


# --- <fileDetails> -------------------------------------------------------------------------------


def render_file_details(
    item: EvidenceItem, entry: dict, *, report_id: str, file_id: str, field: str = ""
) -> tuple[str, list[Problem]]:
    """The <fileDetails> of one file from its draft entry (legal/draft.py), in the XSD's order.
    `field` prefixes the entry's field names in the problems ("files.0")."""

    def name(key):
        return f"{field}.{key}" if field else key

    b = _Builder("fileDetails")
    root = b.root
    b.sub(root, "reportId", str(report_id))
    b.sub(root, "fileId", file_id)
    if item.original_name:
        b.sub(root, "originalFileName", item.original_name)
    b.sub(root, "fileViewedByEsp", _bool(entry.get("viewed_by_esp")), field=name("viewed_by_esp"))
    b.sub(root, "exifViewedByEsp", "false")
    b.sub(
        root,
        "publiclyAvailable",
        _bool(entry.get("publicly_available")),
        field=name("publicly_available"),
    )
    if entry.get("relevance"):
        b.sub(root, "fileRelevance", entry["relevance"], field=name("relevance"))
    if entry.get("annotations"):
        element = b.sub(root, "fileAnnotations", field=name("annotations"))
        for flag in entry["annotations"]:
            b.sub(element, flag, "true")
    if entry.get("classification"):
        b.sub(root, "industryClassification", entry["classification"], field=name("classification"))
    b.sub(root, "originalFileHash", item.md5, hashType="MD5")
    if entry.get("additional_info"):
        b.sub(root, "additionalInfo", entry["additional_info"], field=name("additional_info"))
    return b.result()


def build_file_details(
    case, item: EvidenceItem, *, report_id: str, file_id: str, draft: dict | None = None
) -> str:
    """The <fileDetails> of an uploaded file, from the draft's entry for it (the case's saved
    draft when none is given; an item the draft does not list gets its derived entry)."""
    from .draft import file_entry

    data = _current_draft(case) if draft is None else draft
    entry = file_entry(case, item, data)
    return render_file_details(item, entry, report_id=report_id, file_id=file_id)[0]
