"""The CyberTipline documents: a <report> from a case, a <fileDetails> per uploaded file, and
their validation against NCMEC's schema (legal/schemas/cyber_tipline.xsd, NCMEC's /xsd).

Nothing is sent that does not validate; the problems are given field by field (path, message).
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from lxml import etree

from bakkme_safety.policy import ActionType, Priority, Violation
from evidence.models import CustodyEvent, EvidenceItem, EvidenceKind

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "cyber_tipline.xsd"

# Custody actions meaning a person saw the file itself (a blurred preview is not a viewing).
VIEWED_ACTIONS = (CustodyEvent.Action.VIEW, CustodyEvent.Action.DOWNLOAD)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self):
        return f"{self.path}: {self.message}"


class InvalidDocument(Exception):
    """A document that does not validate against the XSD; `problems` lists them by field."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def validate(xml: str | bytes) -> list[Problem]:
    """The document's problems against the XSD ([] when valid)."""
    data = xml.encode() if isinstance(xml, str) else xml
    try:
        document = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        return [Problem("/", f"not well-formed XML: {exc}")]
    xsd = schema()
    if xsd.validate(document):
        return []
    return [Problem(e.path or "/", e.message) for e in xsd.error_log]


def check(xml: str | bytes) -> None:
    problems = validate(xml)
    if problems:
        raise InvalidDocument(problems)


def _sub(parent, tag: str, text=None, **attrs):
    element = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _when(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _serialize(root) -> str:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()


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


def _is_ai_generated(case, decision) -> bool:
    if decision is not None:
        return decision.violation == Violation.AI_GENERATED_CSAE
    return case.reports.filter(category="ai_generated_csae").exists() or (
        case.category == "ai_generated_csae"
    )


def _internet_details(report, case, reports) -> None:
    urls = sorted({r.content_url for r in reports if r.content_url})
    surface_note = f"{settings.BAKKME_CYBERTIP_PLATFORM} {case.get_surface_display()}"
    details = _sub(report, "internetDetails")
    if case.surface in settings.BAKKME_CYBERTIP_CHAT_SURFACES:
        chat = _sub(details, "chatImIncident")
        _sub(chat, "chatClient", settings.BAKKME_CYBERTIP_PLATFORM)
        _sub(chat, "additionalInfo", surface_note)
    else:
        web = _sub(details, "webPageIncident", thirdPartyHostedContent="false")
        for url in urls:
            _sub(web, "url", url)
        _sub(web, "additionalInfo", surface_note)


def _reporter(report) -> None:
    reporter = _sub(report, "reporter")
    person = _sub(reporter, "reportingPerson")
    if settings.BAKKME_CYBERTIP_REPORTER_FIRST_NAME:
        _sub(person, "firstName", settings.BAKKME_CYBERTIP_REPORTER_FIRST_NAME)
    if settings.BAKKME_CYBERTIP_REPORTER_LAST_NAME:
        _sub(person, "lastName", settings.BAKKME_CYBERTIP_REPORTER_LAST_NAME)
    if settings.BAKKME_CYBERTIP_REPORTER_PHONE:
        _sub(person, "phone", settings.BAKKME_CYBERTIP_REPORTER_PHONE, type="Business")
    if settings.BAKKME_CYBERTIP_REPORTER_EMAIL:
        _sub(person, "email", settings.BAKKME_CYBERTIP_REPORTER_EMAIL, type="Business")
    if settings.BAKKME_CYBERTIP_LEGAL_URL:
        _sub(reporter, "legalURL", settings.BAKKME_CYBERTIP_LEGAL_URL)


def _reported_users(report, case, reports) -> None:
    """One personOrUserReported per account the case's reports name (the case's first)."""
    accounts: dict[str, str] = {}
    if case.account_platform_id:
        accounts[case.account_platform_id] = case.account_username
    for r in reports:
        if r.account_platform_id and not accounts.get(r.account_platform_id):
            accounts[r.account_platform_id] = r.account_username
    actions = list(
        case.actions.filter(
            type__in=[ActionType.SUSPEND_ACCOUNT, ActionType.PERMANENT_BAN]
        ).exclude(status="cancelled")
    )
    for account_id, username in accounts.items():
        person = _sub(report, "personOrUserReported")
        _sub(person, "espIdentifier", account_id)
        _sub(person, "espService", settings.BAKKME_CYBERTIP_PLATFORM)
        if username:
            _sub(person, "screenName", username)
        mine = [a for a in actions if a.account_platform_id in ("", account_id)]
        suspended = [a for a in mine if a.type == ActionType.SUSPEND_ACCOUNT]
        banned = [a for a in mine if a.type == ActionType.PERMANENT_BAN]
        if suspended:
            _sub(
                person,
                "accountTemporarilyDisabled",
                "true",
                disabledDate=_when(suspended[0].created_at),
                userNotified="false",
            )
        if banned:
            _sub(
                person,
                "accountPermanentlyDisabled",
                "true",
                disabledDate=_when(banned[0].created_at),
                userNotified="false",
            )


def build_report(case) -> str:
    """The <report> for a case: from its decision when decided, otherwise the draft from its
    reports' categories."""
    decision = decision_of(case)
    reports = list(case.reports.order_by("received_at", "pk"))
    root = etree.Element("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", incident_type(case, decision))
    _sub(summary, "platform", settings.BAKKME_CYBERTIP_PLATFORM)
    if case.priority == Priority.P0:
        _sub(
            summary,
            "escalateToHighPriority",
            "Imminent risk to a child: handled under our emergency protocol (P0).",
        )
    categories = {r.category for r in reports} | {case.category}
    annotations = []
    if "sextortion" in categories:
        annotations.append("sextortion")
    if (decision and decision.violation == Violation.SOLICITATION_OF_MINOR) or (
        decision is None and "solicitation_of_minor" in categories
    ):
        annotations.append("csamSolicitation")
    if annotations:
        element = _sub(summary, "reportAnnotations")
        for name in annotations:
            _sub(element, name, "true")
    first = reports[0].received_at if reports else case.sla_started_at
    _sub(summary, "incidentDateTime", _when(first))
    _internet_details(root, case, reports)
    _reporter(root)
    _reported_users(root, case, reports)
    _sub(root, "additionalInfo", f"{settings.BAKKME_CYBERTIP_PLATFORM} safety case #{case.pk}")
    return _serialize(root)


def report_items(case) -> list[EvidenceItem]:
    """The evidence a report carries: every item of the case still held in the vault."""
    return list(
        EvidenceItem.objects.filter(case=case, purged_at__isnull=True).order_by(
            "collected_at", "pk"
        )
    )


def build_file_details(case, item: EvidenceItem, *, report_id: str, file_id: str) -> str:
    decision = decision_of(case)
    root = etree.Element("fileDetails")
    _sub(root, "reportId", str(report_id))
    _sub(root, "fileId", file_id)
    if item.original_name:
        _sub(root, "originalFileName", item.original_name)
    viewed = item.custody.filter(action__in=VIEWED_ACTIONS).exists()
    _sub(root, "fileViewedByEsp", _bool(viewed))
    _sub(root, "exifViewedByEsp", "false")
    _sub(root, "publiclyAvailable", _bool(case.surface in settings.BAKKME_CYBERTIP_PUBLIC_SURFACES))
    relevance = "Reported" if item.kind == EvidenceKind.MEDIA else "Supplemental Reported"
    _sub(root, "fileRelevance", relevance)
    annotations = []
    if item.kind == EvidenceKind.MEDIA and case.surface == "live_stream":
        annotations.append("liveStreaming")
    if item.kind == EvidenceKind.MEDIA and _is_ai_generated(case, decision):
        annotations.append("generativeAi")
    if annotations:
        element = _sub(root, "fileAnnotations")
        for name in annotations:
            _sub(element, name, "true")
    _sub(root, "originalFileHash", item.md5, hashType="MD5")
    return _serialize(root)
