"""Reporter acknowledgments: what a reporter hears back, through the platform's webhook.

A report whose reporter left a contact and did not report anonymously gets a "received"
acknowledgment when it is stored, and a "decided" one (action taken / no violation) when its
case is decided. Anonymous reports get none. The acknowledgment names the reporter and the
report only: nothing about the reported party, and no enforcement payload names the reporter.
Delivery is cases/webhooks.py.
"""

from django.db import transaction

from bakkme_safety.policy import Violation

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
    from cases.webhooks import queue_delivery

    transaction.on_commit(queue_delivery, robust=True)
