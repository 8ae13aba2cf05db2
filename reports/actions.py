"""Intake: reports from the platform become rows in cases, exactly once per idempotency key."""

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from bakkme_safety.policy import Priority
from cases.actions import group_into_cases

from . import signals
from .acknowledgments import acknowledge_received
from .models import Integration, Report

# Concurrent intake of the same key or subject loses a unique-constraint race at most a few times.
_INTAKE_ATTEMPTS = 3


class IdempotencyConflict(Exception):
    """The key was used before for a different report."""


@dataclass(frozen=True)
class IntakeResult:
    report: Report
    created: bool

    def as_response(self) -> dict:
        """The answer the platform gets; the same body for a repeated key.

        priority and due_at are the ones the policy gives this report; the case may be more
        urgent because of its other reports.
        """
        return {
            "id": self.report.pk,
            "case": self.report.case_id,
            "priority": Priority(self.report.priority).label,
            "due_at": self.report.due_at.isoformat().replace("+00:00", "Z"),
        }


def payload_fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_report(integration: Integration, data: dict, fingerprint: str) -> Report:
    """An unsaved Report from validated API data (see reports.api.serializers)."""
    account = data.get("reported_account") or {}
    content = data.get("content") or {}
    reporter = data.get("reporter") or {}
    return Report(
        integration=integration,
        idempotency_key=data["idempotency_key"],
        payload_sha256=fingerprint,
        source=data["source"],
        category=data["category"],
        surface=data["surface"],
        received_at=data["received_at"],
        account_platform_id=account.get("platform_id", ""),
        account_username=account.get("username", ""),
        account_date_of_birth=account.get("date_of_birth"),
        account_age_band=account.get("age_band", ""),
        account_created_at=account.get("created_at"),
        content_platform_id=content.get("platform_id", ""),
        content_type=content.get("type", ""),
        content_text=content.get("text", ""),
        content_url=content.get("url", ""),
        reporter_platform_id=reporter.get("platform_id", ""),
        reporter_anonymous=reporter.get("anonymous", False),
        reporter_contact=reporter.get("contact", ""),
        description=data.get("description", ""),
    )


def ingest_reports(
    integration: Integration, reports: list[Report]
) -> list[IntakeResult | IdempotencyConflict]:
    """Store new reports and group them into cases, in one transaction.

    A key already used by this integration answers with the stored report and stores nothing;
    a key reused for a different report is a conflict. Results come in the order given.
    """
    for attempt in range(_INTAKE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _ingest(integration, reports)
        except IntegrityError:
            # Another request stored the same key or opened the same subject's case first.
            if attempt == _INTAKE_ATTEMPTS - 1:
                raise
            for report in reports:
                report.pk = None
                report.case = None
    raise AssertionError("unreachable")


def _ingest(integration, reports):
    keys = {r.idempotency_key for r in reports}
    stored = {
        r.idempotency_key: r
        for r in Report.objects.filter(integration=integration, idempotency_key__in=keys)
    }
    results: list[IntakeResult | IdempotencyConflict | None] = []
    new: dict[str, Report] = {}
    for report in reports:
        earlier = stored.get(report.idempotency_key) or new.get(report.idempotency_key)
        if earlier is None:
            new[report.idempotency_key] = report
            results.append(None)
        elif earlier.payload_sha256 != report.payload_sha256:
            results.append(
                IdempotencyConflict(
                    f"idempotency_key {report.idempotency_key!r} was used for a different report."
                )
            )
        else:
            results.append(IntakeResult(earlier, created=False))
    if new:
        stored_now = store_reports(list(new.values()), now=timezone.now())
        acknowledge_received(stored_now)
        # The detection app scans their texts (lexicon, blocked links): a few queries a batch.
        signals.reports_received.send(sender=Report, reports=stored_now)
    return [
        result if result is not None else IntakeResult(report, created=True)
        for result, report in zip(results, reports, strict=True)
    ]


def store_reports(reports: list[Report], *, now) -> list[Report]:
    """Store new (unsaved) reports, each in its case (cases.actions.group_into_cases opens or
    joins the case of its subject): the intake of the platform's reports and of the reports the
    back office files itself (behaviour rules, ban evasion). Call inside a transaction."""
    group_into_cases(reports, now=now)
    Report.objects.bulk_create(reports)
    return reports


def create_integration(name: str, *, actor=None) -> tuple[Integration, str]:
    """A new platform integration and its token; only the token's hash is kept."""
    integration = Integration(name=name)
    token = integration.set_new_token()
    integration._history_user = actor
    integration.save()
    return integration, token
