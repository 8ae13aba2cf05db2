"""Reporter acknowledgments: what a reporter hears back, through the platform's webhook.

A report whose reporter left a contact and did not report anonymously gets a "received"
acknowledgment when it is stored, and a "decided" one (action taken / no violation) when its
case is decided. Anonymous reports get none. The acknowledgment names the reporter and the
report only: nothing about the reported party, and no enforcement payload names the reporter.
Delivery is the outbox's (deliveries/outbox.py): ACKNOWLEDGMENTS is their kind, registered in
ReportsConfig.ready.
"""

from datetime import datetime

from django.db import transaction

from bakkme_safety.policy import Violation
from deliveries.outbox import DeliveryKind, due, queue_delivery

from .models import Acknowledgment, Report


def acknowledged_reports(qs):
    """The reports that get acknowledgments: a contact, not anonymous."""
    return qs.filter(reporter_anonymous=False).exclude(reporter_contact="")


def _eligible(report: Report) -> bool:
    return bool(report.reporter_contact) and not report.reporter_anonymous


def acknowledge_received(reports: list[Report]) -> list[Acknowledgment]:
    """A "received" acknowledgment for each new report that gets one; delivered after commit."""
    rows = [
        Acknowledgment(report_id=r.pk, kind=Acknowledgment.Kind.RECEIVED)
        for r in reports
        if r.pk and _eligible(r)
    ]
    if not rows:
        return []
    created = Acknowledgment.objects.bulk_create(rows, ignore_conflicts=True)
    _queue_delivery()
    return created


def acknowledge_decision(case, violation: str) -> int:
    """A "decided" acknowledgment, with the outcome, for each report of the decided case that
    gets one (once per report: a report already told of a decision is not told again)."""
    outcome = (
        Acknowledgment.Outcome.NO_VIOLATION
        if violation == Violation.NO_VIOLATION
        else Acknowledgment.Outcome.ACTION_TAKEN
    )
    report_ids = list(
        acknowledged_reports(Report.objects.filter(case=case)).values_list("pk", flat=True)
    )
    already = set(
        Acknowledgment.objects.filter(
            report_id__in=report_ids, kind=Acknowledgment.Kind.DECIDED
        ).values_list("report_id", flat=True)
    )
    rows = [
        Acknowledgment(report_id=pk, kind=Acknowledgment.Kind.DECIDED, outcome=outcome)
        for pk in report_ids
        if pk not in already
    ]
    Acknowledgment.objects.bulk_create(rows, ignore_conflicts=True)
    if rows:
        _queue_delivery()
    return len(rows)


def _queue_delivery() -> None:
    transaction.on_commit(queue_delivery, robust=True)


# --- Their delivery ---------------------------------------------------------------------------


def due_acknowledgments(now: datetime):
    return due(Acknowledgment.objects.all(), now).order_by("created_at", "pk")


def acknowledgment_idempotency_key(ack: Acknowledgment) -> str:
    return f"bakkme-ack-{ack.pk}"


def acknowledgment_payload(ack: Acknowledgment) -> dict:
    """What the platform passes on to a reporter: never anything about the reported party."""
    report = ack.report
    return {
        "type": "reporter_acknowledgment",
        "acknowledgment": {
            "id": ack.pk,
            "kind": ack.kind,
            "outcome": ack.outcome or None,
            "report": {"id": report.pk, "idempotency_key": report.idempotency_key},
            "reporter": {
                "platform_id": report.reporter_platform_id,
                "contact": report.reporter_contact,
            },
            "created_at": ack.created_at.isoformat(),
        },
        "idempotency_key": acknowledgment_idempotency_key(ack),
    }


ACKNOWLEDGMENTS = DeliveryKind(
    name="reporter_acknowledgment",
    model=Acknowledgment,
    due=due_acknowledgments,
    payload=acknowledgment_payload,
    key=acknowledgment_idempotency_key,
    case_id=lambda ack: ack.report.case_id,
    waiting=lambda: Acknowledgment.objects.filter(status="pending"),
    related=("report",),
    order=20,
)
