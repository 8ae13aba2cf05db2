"""Ban evasion (README "Detection").

A permanent_ban action (cases.actions.decide_case) lists the banned account's identifiers known
from its account_created and login events. A later account_created or login event of another
account carrying one of them opens a P1 case for that account linked to the original case (a
note naming it) with a ban_evasion detection, and, per BAKKME_BAN_EVASION_AUTO_TERMINATE, a
permanent_ban action (the termination DESIGN.md prescribes) at once, pending human review:
overturning the detection undoes it, confirming it lists the evading account's identifiers too
(cases.actions.review_detection). Once per evading account and original case. An IP matches
only within BAKKME_BAN_EVASION_IP_DAYS of the banned account's last use of it.
"""

import hashlib
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bakkme_safety.policy import ActionType, Category, Source, Surface
from cases.actions import create_action, record_event
from cases.models import Case, CaseEvent
from deliveries.outbox import queue_delivery
from reports.actions import store_reports
from reports.models import AccountEvent, Report

from .models import BanEvasionIdentifier, Detection, DetectionMethod

K = BanEvasionIdentifier.Kind
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
IDENTIFIER_EVENTS = (AccountEvent.Type.ACCOUNT_CREATED, AccountEvent.Type.LOGIN)


def normalise_email(email: str) -> str:
    """Lower case; for gmail.com and googlemail.com the dots and a +tag of the local part go
    (both domains are one mailbox: gmail.com)."""
    local, _, domain = email.strip().lower().rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def identifiers_of(raw: dict) -> set[tuple[str, str]]:
    """(kind, value) pairs as listed: e-mails and phones hashed, normalised first."""
    found = set()
    if raw.get("device_fingerprint"):
        found.add((K.DEVICE, raw["device_fingerprint"].strip()))
    if raw.get("email"):
        found.add((K.EMAIL_HASH, _sha256(normalise_email(raw["email"]))))
    if raw.get("phone"):
        digits = re.sub(r"[^\d+]", "", raw["phone"])
        if digits:
            found.add((K.PHONE_HASH, _sha256(digits)))
    if raw.get("ip"):
        found.add((K.IP, raw["ip"].strip().lower()))
    return found


def search_pairs(term: str) -> set[tuple[str, str]]:
    """The (kind, value) pairs a looked-up value could be listed as: itself as a device or an
    IP, and as an e-mail or a phone number its normalised hash."""
    term = term.strip()
    raw = {"device_fingerprint": term, "ip": term}
    if "@" in term:
        raw["email"] = term
    elif re.fullmatch(r"\+?[\d\s().-]{6,}", term):
        raw["phone"] = term
    return identifiers_of(raw)


def list_banned_account(case) -> int:
    """Add the identifiers of the case's account (from its account events) to the list, each
    with when the account last used it; listing again refreshes that."""
    if not case.account_platform_id:
        return 0
    last_seen: dict[tuple[str, str], object] = {}
    for raw, occurred_at in AccountEvent.objects.filter(
        actor_platform_id=case.account_platform_id, type__in=IDENTIFIER_EVENTS
    ).values_list("identifiers", "occurred_at"):
        for pair in identifiers_of(raw or {}):
            last_seen[pair] = max(last_seen.get(pair, occurred_at), occurred_at)
    rows = [
        BanEvasionIdentifier(
            kind=kind,
            value=value,
            account_platform_id=case.account_platform_id,
            source_case=case,
            last_seen_at=last_seen[(kind, value)],
        )
        for kind, value in sorted(last_seen)
    ]
    BanEvasionIdentifier.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["kind", "value", "source_case"],
        update_fields=["last_seen_at"],
    )
    return len(rows)


def _still_matches(row: BanEvasionIdentifier, event: AccountEvent) -> bool:
    """An IP is the banned account's only for a while; the other identifiers for good."""
    if row.kind != K.IP:
        return True
    seen = row.last_seen_at or row.created_at
    return abs(event.occurred_at - seen) <= timedelta(days=settings.BAKKME_BAN_EVASION_IP_DAYS)


def check_events(events: list[AccountEvent]) -> list:
    """New account_created and login events against the list: one query for the batch."""
    of_event = {
        e.pk: identifiers_of(e.identifiers or {})
        for e in events
        if e.type in IDENTIFIER_EVENTS and e.identifiers
    }
    pairs = set().union(*of_event.values()) if of_event else set()
    if not pairs:
        return []
    where = Q()
    for kind in {k for k, _ in pairs}:
        where |= Q(kind=kind, value__in=[v for k, v in pairs if k == kind])
    listed: dict[tuple[str, str], list[BanEvasionIdentifier]] = {}
    for row in BanEvasionIdentifier.objects.filter(where).select_related("source_case"):
        listed.setdefault((row.kind, row.value), []).append(row)
    hits: dict[tuple[str, int], dict] = {}  # (evading account, original case) -> detail
    by_pk = {e.pk: e for e in events}
    for pk, found in of_event.items():
        event = by_pk[pk]
        for pair in sorted(found):
            for row in listed.get(pair, []):
                if row.account_platform_id == event.actor_platform_id:
                    continue  # the banned account itself
                if not _still_matches(row, event):
                    continue
                hit = hits.setdefault(
                    (event.actor_platform_id, row.source_case_id),
                    {"row": row, "event": event, "kinds": set()},
                )
                hit["kinds"].add(row.kind)
    if not hits:
        return []
    integration = events[0].integration
    keys = {f"ban_evasion:{actor}:{case_id}": (actor, case_id) for actor, case_id in hits}
    done = set(
        Report.objects.filter(integration=integration, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    now = timezone.now()
    reports = []
    for key, (actor, case_id) in sorted(keys.items()):
        if key in done:
            continue
        hit = hits[(actor, case_id)]
        reports.append(
            Report(
                integration=integration,
                idempotency_key=key[:200],
                payload_sha256=_sha256(key),
                source=Source.AUTOMATED,
                category=Category.OTHER_CHILD_SAFETY,
                surface=Surface.PROFILE,
                received_at=now,
                account_platform_id=actor,
                description=(
                    f"Ban evasion: {hit['event'].get_type_display().lower()} matching "
                    f"{', '.join(sorted(hit['kinds']))} of the account banned in case {case_id}."
                ),
            )
        )
        hit["report"] = reports[-1]
    if not reports:
        return []
    store_reports(reports, now=now)  # P1: other child safety
    actions, detections = [], []
    for report in reports:
        actor = report.account_platform_id
        hit = next(h for h in hits.values() if h.get("report") is report)
        case = Case.objects.get(pk=report.case_id)
        original = hit["row"].source_case
        kinds = sorted(hit["kinds"])
        record_event(
            case,
            CaseEvent.Type.NOTE_ADDED,
            None,
            text=f"Ban evasion: matches the identifiers of the account banned in case "
            f"{original.pk} ({original.account_platform_id}).",
            ban_evasion_of_case=original.pk,
            matched=kinds,
            account_event=hit["event"].pk,
        )
        action = None
        if settings.BAKKME_BAN_EVASION_AUTO_TERMINATE:
            action = create_action(
                case,
                ActionType.PERMANENT_BAN,
                actor=None,
                account_platform_id=actor,
                automatic="ban_evasion",
            )
            actions.append(action)
        detections.append(
            Detection(
                case=case,
                report=report,
                method=DetectionMethod.BAN_EVASION,
                matched={
                    "original_case": original.pk,
                    "banned_account": original.account_platform_id,
                    "kinds": kinds,
                    "account_event": hit["event"].pk,
                    "action": action.pk if action else None,
                },
            )
        )
    Detection.objects.bulk_create(detections)
    if actions:
        transaction.on_commit(queue_delivery, robust=True)
    return actions
