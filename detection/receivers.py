"""The detection app's answers to what the lower apps announce, inside the sender's
transaction (connected in DetectionConfig.ready): what is scanned and matched at intake, and
what a decision means for the hash banks and the ban-evasion list."""

from bakkme_safety import policy
from cases import signals as case_signals
from cases.actions import record_event
from cases.models import CaseEvent
from evidence import signals as evidence_signals
from evidence.models import EvidenceKind
from reports import signals as report_signals

from . import banevasion, behaviour, hashbanks, matching, textsignals


def on_reports_received(sender, *, reports, **kwargs) -> None:
    """The lexicon and the blocked links over the new reports' texts."""
    textsignals.scan_reports(reports)


def on_account_events_received(sender, *, events, integration, **kwargs) -> None:
    """The behaviour rules over the batch's adults, and the ban-evasion list over the
    account_created and login events."""
    behaviour.evaluate_behaviour(integration, events)
    banevasion.check_events(events)


def on_item_collected(sender, *, item, plaintext, **kwargs) -> None:
    """Every item against the hash banks; a message log kept in memory against the lexicon and
    the blocked links."""
    matching.match_item(item)
    if item.kind == EvidenceKind.COMMUNICATION_LOG and plaintext is not None:
        textsignals.scan_message_log(item, plaintext)


def on_case_decided(sender, *, case, decision, actions, actor, **kwargs) -> None:
    """A permanent ban lists the account's identifiers (ban evasion); a CSAM decision adds the
    case's evidence hashes to the internal bank (README "Detection")."""
    if policy.ActionType.PERMANENT_BAN in actions:
        banevasion.list_banned_account(case)
    if decision.violation in policy.internal_bank_violations():
        added = hashbanks.bank_case_evidence(case)
        record_event(case, CaseEvent.Type.HASHES_BANKED, actor, added=added)


def connect() -> None:
    report_signals.reports_received.connect(on_reports_received, dispatch_uid="detection_reports")
    report_signals.account_events_received.connect(
        on_account_events_received, dispatch_uid="detection_account_events"
    )
    evidence_signals.item_collected.connect(on_item_collected, dispatch_uid="detection_items")
    case_signals.case_decided.connect(on_case_decided, dispatch_uid="detection_case_decided")
