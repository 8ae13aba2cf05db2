"""The CyberTipline draft legal staff review and edit before filing (Child Safety Standards §6.3;
18 U.S.C. 2258A). It is stored on the report (CyberTiplineReport.draft, a JSON object); the
<report> and each <fileDetails> are built from it (legal/cybertip_xml.py) and validated against
NCMEC's schema on every save. Nothing reaches NCMEC that is not in the draft legal staff saw.

The draft's shape (version 1; dates are ISO 8601 with their offset, "" when not known):

    incident_type                   one of the XSD's incidentType values ("" when none fits)
    incident_date_time              when the incident happened
    incident_date_time_description  free text about that time
    escalate_reason                 escalateToHighPriority (set for P0 cases; "" = no escalation)
    report_annotations              names from the XSD's reportAnnotations (sextortion ...)
    additional_info                 the report's additionalInfo
    reported_people   [{esp_id, screen_name, emails: [..], additional_info}]
    ip_events         [{account (a reported person's esp_id), ip_address,
                        event_name (XSD ipCaptureType), date_time}]
    victims           [{esp_id, screen_name, first_name, last_name, age (int or None),
                        estimated_age (a minor AgeBand), additional_info, suggestion}]
    suggested_victims [{key, esp_id, age, age_band, sources: [..]}]   never in the XML
    intended_recipients [{esp_id, screen_name, email, additional_info}]
    files             [{item (EvidenceItem pk), relevance, classification (A1/A2/B1/B2 or ""),
                        annotations: [XSD fileAnnotations names], publicly_available,
                        viewed_by_esp, additional_info}]

The initial draft is what the case gives plus our own data about the reported accounts: their
login / account_created events become IP capture events, the e-mail the platform sent with them
fills the reported person, and the minors they contacted (account events) or who appear in the
case's message logs are *suggested* victims: kept apart until legal staff confirm them, so a
victim is only reported when a person decided it. A victim's name is never filled in by us.
"""

import json
from collections import defaultdict
from datetime import UTC

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q

from bakkme_safety.policy import AgeBand, Priority, Violation
from detection.rules import MINOR_BANDS, is_minor
from evidence import vault
from evidence.models import EvidenceItem, EvidenceKind
from reports.models import AccountEvent

from . import cybertip_xml
from .models import CyberTiplineReport

VERSION = 1
Status = CyberTiplineReport.Status

# The account events that carry identifiers (reports.AccountEvent), as NCMEC's ipCaptureType.
IP_EVENT_NAMES = {
    AccountEvent.Type.LOGIN: "Login",
    AccountEvent.Type.ACCOUNT_CREATED: "Registration",
}
# Statuses in which the draft may still change: nothing was sent, or the sending failed
# before NCMEC gave a report id; and not while a filing is queued or running (the steps of
# CyberTiplineReport.step until it is done or stopped): it sends the draft as it was reviewed.
EDITABLE_STATUSES = (Status.DRAFT, Status.FAILED_NEEDS_REVIEW)
FILING_STEPS = ("queued", "submit", "upload", "fileinfo", "finish")

_ROW_KEYS = {
    "reported_people": ("esp_id", "screen_name", "emails", "additional_info"),
    "ip_events": ("account", "ip_address", "event_name", "date_time"),
    "victims": (
        "esp_id",
        "screen_name",
        "first_name",
        "last_name",
        "age",
        "estimated_age",
        "additional_info",
        "suggestion",
    ),
    "intended_recipients": ("esp_id", "screen_name", "email", "additional_info"),
    "files": (
        "item",
        "relevance",
        "classification",
        "annotations",
        "publicly_available",
        "viewed_by_esp",
        "additional_info",
    ),
}
_TEXT_KEYS = (
    "incident_type",
    "incident_date_time",
    "incident_date_time_description",
    "escalate_reason",
    "additional_info",
)


class DraftRefused(cybertip_xml.InvalidDocument):
    """The edit would give a document NCMEC's schema refuses: nothing was saved. `problems`
    name their fields; `xml` is the refused <report>, for the page to show."""

    def __init__(self, problems, xml: str = ""):
        self.xml = xml
        super().__init__(problems)


def _iso(value) -> str:
    """A time as the draft keeps it: ISO 8601 in UTC ("" for none)."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


# --- The initial draft ---------------------------------------------------------------------------


def _reported_accounts(case, reports) -> dict[str, str]:
    """{platform id: username} of the accounts the case's reports name (the case's first)."""
    accounts: dict[str, str] = {}
    if case.account_platform_id:
        accounts[case.account_platform_id] = case.account_username
    for r in reports:
        if r.account_platform_id and not accounts.get(r.account_platform_id):
            accounts[r.account_platform_id] = r.account_username
    return accounts


def _events_of(case, account_id: str):
    """The account's events on the platform the case's reports came from."""
    return AccountEvent.objects.filter(
        actor_platform_id=account_id, integration__in=case.reports.values("integration")
    )


def _preserved_ip_events(case) -> list[dict]:
    """The IP events the platform sent in answer to a legal freeze of the case's account
    (legal.records): as the account's own events, they become IP capture events."""
    from .records import ip_capture_events  # the freeze's answers, when there are any

    return [
        {"ip_address": e["ip"], "event_name": e["event"], "date_time": _iso(e["at"])}
        for e in ip_capture_events(case)
        if e["ip"] and e["at"]
    ]


def _identifiers(case, account_id: str) -> tuple[list[dict], list[str]]:
    """The account's most recent IP capture events, oldest first: its login / account_created
    events and (for the case's account) the platform's answers to a legal freeze, at most
    BAKKME_CYBERTIP_DRAFT_IP_EVENTS; and the e-mail addresses it used, most recent first."""
    limit = settings.BAKKME_CYBERTIP_DRAFT_IP_EVENTS
    events = _events_of(case, account_id).filter(type__in=list(IP_EVENT_NAMES))
    recent = events.order_by("-occurred_at", "-pk")
    found = [
        {"ip_address": str(ids.get("ip") or "").strip(), "event_name": IP_EVENT_NAMES[kind],
         "date_time": _iso(at)}
        for kind, at, ids in recent.filter(identifiers__has_key="ip").values_list(
            "type", "occurred_at", "identifiers"
        )[:limit]
    ]  # fmt: skip
    if account_id == case.account_platform_id:
        found += _preserved_ip_events(case)
    by_key = {}
    for event in found:
        if event["ip_address"]:
            by_key.setdefault((event["ip_address"], event["event_name"], event["date_time"]), event)
    # ISO 8601 in UTC, all of them: the text sorts as the times do.
    latest = sorted(by_key.values(), key=lambda e: e["date_time"], reverse=True)[:limit]
    ip_events = [{"account": account_id, **event} for event in reversed(latest)]
    emails: list[str] = []
    for identifiers in recent.filter(identifiers__has_key="email").values_list(
        "identifiers", flat=True
    )[:limit]:
        email = str(identifiers.get("email") or "").strip()
        if email and email.lower() not in {e.lower() for e in emails}:
            emails.append(email)
    return ip_events, emails


def _default_file_entry(case, item: EvidenceItem, decision) -> dict:
    annotations = []
    if item.kind == EvidenceKind.MEDIA and case.surface == "live_stream":
        annotations.append("liveStreaming")
    if item.kind == EvidenceKind.MEDIA and cybertip_xml.is_ai_generated(case, decision):
        annotations.append("generativeAi")
    return {
        "item": item.pk,
        "relevance": "Reported" if item.kind == EvidenceKind.MEDIA else "Supplemental Reported",
        "classification": "",
        "annotations": annotations,
        "publicly_available": case.surface in settings.BAKKME_CYBERTIP_PUBLIC_SURFACES,
        "viewed_by_esp": item.custody.filter(action__in=cybertip_xml.VIEWED_ACTIONS).exists(),
        "additional_info": "",
    }


def files_of(case, data: dict) -> list[dict]:
    """One entry per item the report carries now (cybertip_xml.report_items): the draft's entry
    for it, or the one the case gives for an item the draft does not list yet."""
    saved = {entry.get("item"): entry for entry in data.get("files", [])}
    decision = cybertip_xml.decision_of(case)
    return [
        saved.get(item.pk) or _default_file_entry(case, item, decision)
        for item in cybertip_xml.report_items(case)
    ]


def with_current_files(case, data: dict) -> dict:
    """The draft as the form shows it: a row for each file the report carries now."""
    return {**data, "files": files_of(case, data)}


def file_entry(case, item: EvidenceItem, data: dict) -> dict:
    for entry in data.get("files", []):
        if entry.get("item") == item.pk:
            return entry
    return _default_file_entry(case, item, cybertip_xml.decision_of(case))


def _report_annotations(case, reports, decision) -> list[str]:
    categories = {r.category for r in reports} | {case.category}
    annotations = []
    if "sextortion" in categories:
        annotations.append("sextortion")
    if (decision and decision.violation == Violation.SOLICITATION_OF_MINOR) or (
        decision is None and "solicitation_of_minor" in categories
    ):
        annotations.append("csamSolicitation")
    return annotations


def initial_draft(case, *, suggestions: bool = True, actor=None) -> dict:
    """The draft the case gives: the incident from its decision (or its reports' categories),
    the reported accounts with their IP capture events and e-mail from their account events,
    the evidence files, and (with `suggestions`) the minors offered as victims.

    Reads message logs from the vault (`actor` is the person it is read for): call it outside
    transaction.atomic, as every vault read."""
    decision = cybertip_xml.decision_of(case)
    reports = list(case.reports.order_by("received_at", "pk"))
    accounts = _reported_accounts(case, reports)
    people, ip_events = [], []
    for account_id, username in accounts.items():
        events, emails = _identifiers(case, account_id)
        ip_events += events
        people.append(
            {"esp_id": account_id, "screen_name": username, "emails": emails, "additional_info": ""}
        )
    first = reports[0].received_at if reports else case.sla_started_at
    escalate = ""
    if case.priority == Priority.P0:
        escalate = "Imminent risk to a child: handled under our emergency protocol (P0)."
    return {
        "version": VERSION,
        "incident_type": cybertip_xml.incident_type(case, decision),
        "incident_date_time": _iso(first),
        "incident_date_time_description": "",
        "escalate_reason": escalate,
        "report_annotations": _report_annotations(case, reports, decision),
        "additional_info": f"{settings.BAKKME_CYBERTIP_PLATFORM} safety case #{case.pk}",
        "reported_people": people,
        "ip_events": ip_events,
        "victims": [],
        "suggested_victims": suggest_victims(case, accounts, actor=actor) if suggestions else [],
        "intended_recipients": [],
        "files": files_of(case, {}),
    }


# --- Suggested victims -------------------------------------------------------------------------


def _age(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _band(value) -> str:
    return value if value in AgeBand.values else ""


class _Minors:
    """The minors found, once each by platform id, with where they were found."""

    def __init__(self, reported: set[str]):
        self.reported = reported
        self.found: dict[str, dict] = {}

    def add(self, esp_id, age, band, source: str) -> None:
        esp_id = str(esp_id or "").strip()
        if not esp_id or esp_id in self.reported or not is_minor(age, band):
            return
        entry = self.found.setdefault(
            esp_id,
            {"key": f"account:{esp_id}", "esp_id": esp_id, "age": None, "age_band": "",
             "sources": []},
        )  # fmt: skip
        entry["age"] = entry["age"] if age is None else age
        entry["age_band"] = band or entry["age_band"]
        if source not in entry["sources"]:
            entry["sources"].append(source)


def _minors_in_events(case, accounts, minors: _Minors) -> None:
    """The minors the reported accounts acted on (messages, follow requests, gifts, invites),
    the most recently contacted first; counted in the database (an account may have many)."""
    minor = Q(target_age__lt=18) | Q(target_age__isnull=True, target_age_band__in=MINOR_BANDS)
    limit = settings.BAKKME_CYBERTIP_DRAFT_SUGGESTED_VICTIMS
    labels = dict(AccountEvent.Type.choices)
    for account_id in accounts:
        events = _events_of(case, account_id).exclude(target_platform_id="").filter(minor)
        targets = list(
            events.values("target_platform_id")
            .annotate(n=Count("pk"), first=Min("occurred_at"), last=Max("occurred_at"))
            .order_by("-last", "target_platform_id")[:limit]
        )
        kinds = defaultdict(set)
        ids = [t["target_platform_id"] for t in targets]
        for target, kind in (
            events.filter(target_platform_id__in=ids)
            .values_list("target_platform_id", "type")
            .order_by()  # no ordering column in the DISTINCT
            .distinct()
        ):
            kinds[target].add(labels.get(kind, kind).lower())
        for t in targets:
            target = t["target_platform_id"]
            # The age the platform gave last is the one to offer.
            age, band = (
                events.filter(target_platform_id=target)
                .order_by("-occurred_at", "-pk")
                .values_list("target_age", "target_age_band")
                .first()
            )
            source = (
                f"{t['n']} account event(s) of {account_id} ({', '.join(sorted(kinds[target]))}), "
                f"{t['first']:%Y-%m-%d} to {t['last']:%Y-%m-%d}"
            )
            minors.add(target, age, band, source)


_PARTIES = ("from", "to", "sender", "recipient")


def _participants(message: dict):
    """(platform id, age, age band) of the people a message names: "from" / "to" / "sender" /
    "recipient" as an id (with "<role>_age" / "<role>_age_band" beside it) or as an object
    {platform_id or id, age, age_band}, and "participants": a list of such objects."""
    for role in _PARTIES:
        value = message.get(role)
        if isinstance(value, dict):
            yield (
                value.get("platform_id") or value.get("id"),
                value.get("age"),
                value.get("age_band"),
            )
        elif isinstance(value, str):
            yield value, message.get(f"{role}_age"), message.get(f"{role}_age_band")
    for value in message.get("participants") or []:
        if isinstance(value, dict):
            yield (
                value.get("platform_id") or value.get("id"),
                value.get("age"),
                value.get("age_band"),
            )


def _minors_in_logs(case, minors: _Minors, actor) -> None:
    """The minors named in the case's message logs (JSON the platform sent: a list of messages,
    as detection.textsignals.scan_message_log reads them). Only logs small enough to read in
    memory; a log that is not such JSON is left alone; a log failing its integrity check is
    skipped (the vault records the failure and tells the CSO)."""
    logs = EvidenceItem.objects.filter(
        case=case,
        kind=EvidenceKind.COMMUNICATION_LOG,
        purged_at__isnull=True,
        size__lte=settings.BAKKME_EVIDENCE_ANALYSE_MAX_BYTES,
    ).order_by("collected_at", "pk")
    for item in logs:
        try:
            raw = vault.read_bytes(
                item, actor=actor, purpose="CyberTipline draft: minors named in the message log"
            )
            messages = json.loads(raw)
        except vault.EvidenceIntegrityError:
            continue
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(messages, dict):
            messages = messages.get("messages")
        if not isinstance(messages, list):
            continue
        for message in messages:
            if isinstance(message, dict):
                for esp_id, age, band in _participants(message):
                    minors.add(esp_id, _age(age), _band(band), f"message log (evidence #{item.pk})")


def suggest_victims(case, accounts, *, actor=None) -> list[dict]:
    """The minors our data links to the reported accounts, offered as victims for legal staff to
    confirm (at most BAKKME_CYBERTIP_DRAFT_SUGGESTED_VICTIMS). No names: an id and an age."""
    minors = _Minors(set(accounts))
    _minors_in_events(case, accounts, minors)
    _minors_in_logs(case, minors, actor)
    return list(minors.found.values())[: settings.BAKKME_CYBERTIP_DRAFT_SUGGESTED_VICTIMS]


def _victim_from(suggestion: dict) -> dict:
    age = suggestion.get("age")
    band = suggestion.get("age_band", "")
    return {
        "esp_id": suggestion.get("esp_id", ""),
        "screen_name": "",
        "first_name": "",
        "last_name": "",
        "age": age,
        "estimated_age": band if age is None and band in MINOR_BANDS else "",
        "additional_info": "",
        "suggestion": suggestion.get("key", ""),
    }


# --- Reading, checking and saving --------------------------------------------------------------


def _current(case, *, lock: bool = False) -> CyberTiplineReport | None:
    reports = CyberTiplineReport.objects.filter(case=case).exclude(status=Status.RETRACTED)
    return (reports.select_for_update() if lock else reports).first()


def current_draft(case) -> dict:
    """The case's saved draft, or (none saved yet) the initial one without suggestions."""
    report = _current(case)
    if report is not None and report.draft:
        return report.draft
    return initial_draft(case, suggestions=False)


def editable(report: CyberTiplineReport | None) -> bool:
    """A draft changes until it is sent: not while a filing is queued or under way, never once
    a report id is stored."""
    if report is None:
        return True
    filing = getattr(report, "step", "") in FILING_STEPS
    return not report.report_id and report.status in EDITABLE_STATUSES and not filing


def _may_edit(actor, case) -> None:
    from .actions import may_file

    if not may_file(actor, case):
        raise PermissionDenied("You may not edit this CyberTipline draft.")


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _row(kind: str, row: dict) -> dict | None:
    keys = _ROW_KEYS[kind]
    clean = {}
    for key in keys:
        value = row.get(key)
        if key == "annotations":
            known = cybertip_xml.flags("fileAnnotations")
            clean[key] = [v for v in (value or []) if v in known]
        elif key == "emails":
            clean[key] = [_text(v) for v in (value or []) if _text(v)]
        elif key in ("publicly_available", "viewed_by_esp"):
            clean[key] = bool(value)
        elif key in ("age", "item"):
            clean[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
        else:
            clean[key] = _text(value)
    filled = any(v not in ("", None, [], False) for k, v in clean.items() if k != "suggestion")
    return clean if filled or kind == "files" else None


def normalise(data: dict) -> dict:
    """The draft's known keys only, text trimmed, empty rows dropped."""
    clean: dict = {"version": VERSION}
    for key in _TEXT_KEYS:
        clean[key] = _text(data.get(key))
    # Flags are element names: only those NCMEC's schema defines.
    known = cybertip_xml.flags("reportAnnotations")
    clean["report_annotations"] = [v for v in data.get("report_annotations") or [] if v in known]
    for kind in _ROW_KEYS:
        rows = [_row(kind, row) for row in data.get(kind) or [] if isinstance(row, dict)]
        clean[kind] = [row for row in rows if row is not None]
    clean["suggested_victims"] = list(data.get("suggested_victims") or [])
    return clean


def check(case, data: dict) -> tuple[str, list[cybertip_xml.Problem]]:
    """The <report> of a draft and every problem of it and of its <fileDetails>, by field."""
    problems = []
    people = {row.get("esp_id") for row in data.get("reported_people", []) if row.get("esp_id")}
    for j, event in enumerate(data.get("ip_events", [])):
        if event.get("account") not in people:
            problems.append(
                cybertip_xml.Problem(
                    "/report/personOrUserReported",
                    "Choose the ESP id of one of the reported people for this IP address.",
                    f"ip_events.{j}.account",
                )
            )
    xml, report_problems = cybertip_xml.render_report(case, data)
    problems += report_problems
    # Every file the report carries now, as the form lists them (an item collected since the
    # draft was saved has its derived entry). The real ids come from NCMEC at upload: stand-ins
    # of the right type meanwhile.
    items = {item.pk: item for item in cybertip_xml.report_items(case)}
    for i, entry in enumerate(files_of(case, data)):
        _, file_problems = cybertip_xml.render_file_details(
            items[entry["item"]], entry, report_id="0", file_id="draft", field=f"files.{i}"
        )
        problems += file_problems
    return xml, problems


def _apply_suggestions(saved: list[dict], confirm, dismiss) -> tuple[list[dict], list[dict]]:
    """(the suggestions still open, the victims confirmed now). Keys come from the form; the
    suggestions themselves only from the saved draft."""
    confirm, dismiss = set(confirm), set(dismiss)
    remaining, victims = [], []
    for suggestion in saved:
        key = suggestion.get("key")
        if key in confirm:
            victims.append(_victim_from(suggestion))
        elif key not in dismiss:
            remaining.append(suggestion)
    return remaining, victims


def save_draft(
    report: CyberTiplineReport, data: dict, *, actor, confirm=(), dismiss=()
) -> CyberTiplineReport:
    """Save legal staff's edit of the draft, with `confirm` / `dismiss` the keys of suggested
    victims they accepted as victims or set aside. The XML is rebuilt and validated: when NCMEC's
    schema would refuse it (or an IP address names no reported person), DraftRefused with the
    problems by field, and nothing is saved. Each save is a history row of the report, by the
    actor. Raises ValidationError once the report was sent (its draft no longer changes) and
    PermissionDenied for someone who may not file the case."""
    _may_edit(actor, report.case)
    with transaction.atomic():
        report = CyberTiplineReport.objects.select_for_update().get(pk=report.pk)
        if not editable(report):
            raise ValidationError(
                f"This report is {report.get_status_display().lower()}: its draft can no longer "
                "change."
            )
        data = normalise(data)
        saved = report.draft.get("suggested_victims", []) if report.draft else []
        data["suggested_victims"], confirmed = _apply_suggestions(saved, confirm, dismiss)
        data["victims"] += confirmed
        data["files"] = files_of(report.case, data)
        xml, problems = check(report.case, data)
        if problems:
            raise DraftRefused(problems, xml)
        report.draft = data
        report.xml = xml
        report._history_user = actor
        report._change_reason = "CyberTipline draft edited"
        report.save()
    return report


def open_draft(case, *, actor) -> CyberTiplineReport:
    """The case's report with its draft, as legal staff open it: the record is created when the
    case has none yet, and the initial draft filled in when none was saved (history by the
    actor). A report already sent is returned as it is."""
    _may_edit(actor, case)
    report = _current(case)
    if report is not None and (report.draft or not editable(report)):
        return report
    data = initial_draft(case, actor=actor)  # before the transaction: it reads the vault
    with transaction.atomic():
        report = _current(case, lock=True)
        if report is None:
            try:
                with transaction.atomic():
                    report = CyberTiplineReport(case=case, status=Status.DRAFT)
                    report._history_user = actor
                    report.save()
            except IntegrityError:  # opened by someone else at the same moment
                report = _current(case, lock=True)
        if report.draft or not editable(report):
            return report
        report.draft = data
        report.xml = cybertip_xml.render_report(case, data)[0]
        report._history_user = actor
        report._change_reason = "CyberTipline draft prepared from the case's data"
        report.save()
    return report
