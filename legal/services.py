"""Legal staff's business rules: filing a CyberTipline report (a resumable state machine),
retracting one, law-enforcement referrals, and the holds a preservation request places.

Filing (18 U.S.C. 2258A): submit -> upload each file -> fileinfo each file -> finish. Each step
is saved as soon as NCMEC answers it, before the next one starts, so a filing interrupted by a
crash continues from its last completed step when it is filed again: a report id once stored is
never submitted again, a file with a file id is never uploaded again. The subject is never told:
nothing here reaches the platform.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from bakkme_safety.policy import ActionType, Priority
from cases.models import Case, sees_every_case
from cases.services import complete_actions
from cases.visibility import visible_case_ids
from evidence import custody, holds, vault
from evidence.models import CustodyEvent

from . import cybertip_xml
from .cybertip_client import CyberTiplineClient, NcmecError, NcmecRejected
from .models import CyberTiplineFile, CyberTiplineReport, LawEnforcementReferral
from .models import LawEnforcementRequest as LERequest

log = logging.getLogger(__name__)

FILE_PERMISSION = "legal.file_cybertiplinereport"
Status = CyberTiplineReport.Status

# NCMEC's codes meaning the step was done already (a crash after NCMEC's answer, before ours).
ALREADY_FINISHED = 5102
ALREADY_RETRACTED = 5101


class FilingError(Exception):
    """The filing stopped; the report (if any) is back with legal staff with this message."""

    def __init__(self, message: str, report: CyberTiplineReport | None = None):
        self.report = report
        super().__init__(message)


class InvalidDraft(cybertip_xml.InvalidDocument):
    """The case's report does not validate against the XSD: nothing was sent."""


def visible_cases(user):
    return Case.objects.visible_to(user)


def visible_requests(user):
    """The law-enforcement requests `user` may see: those linking no case outside the person's
    cases (a request names a case legal staff were not granted: it stays invisible to them)."""
    requests = LERequest.objects.all()
    if sees_every_case(user):
        return requests
    hidden = LERequest.cases.through.objects.filter(lawenforcementrequest=OuterRef("pk")).exclude(
        case__in=visible_case_ids(user)
    )
    return requests.exclude(Exists(hidden))


def may_file(user, case: Case) -> bool:
    """Legal staff and the CSO, on the cases visible to them."""
    return user.has_perm(FILE_PERMISSION) and visible_cases(user).filter(pk=case.pk).exists()


def current_report(case: Case) -> CyberTiplineReport | None:
    """The case's report that is not retracted (there is at most one)."""
    return CyberTiplineReport.objects.filter(case=case).exclude(status=Status.RETRACTED).first()


def draft(case: Case) -> tuple[str, list[cybertip_xml.Problem]]:
    """The <report> the case gives now, and its problems against the XSD, field by field."""
    xml = cybertip_xml.build_report(case)
    return xml, cybertip_xml.validate(xml)


def _checkpoint(report: CyberTiplineReport, step: str) -> None:
    """Called after each completed (and saved) step; a test makes it raise to simulate a crash."""


def _save(report: CyberTiplineReport, user, **fields) -> None:
    for name, value in fields.items():
        setattr(report, name, value)
    report._history_user = user
    report.save()


def _start(case: Case, user) -> CyberTiplineReport:
    """The report to continue, or a new one ready to submit (its XML validated, its files
    listed), marked "submitting" in its own transaction before anything is sent."""
    with transaction.atomic():
        report = (
            CyberTiplineReport.objects.select_for_update()
            .filter(case=case)
            .exclude(status=Status.RETRACTED)
            .first()
        )
        if report is not None and report.report_id:
            return report
        if report is not None and report.status == Status.SUBMITTING:
            raise FilingError(
                "A submission of this case is under way, or was interrupted before NCMEC's "
                "answer was saved (NCMEC may hold a report without its id here). Check with "
                "NCMEC, then retract this filing here before filing the case again.",
                report,
            )
        xml, problems = draft(case)
        if problems:
            raise InvalidDraft(problems)
        if report is None:
            report = CyberTiplineReport(case=case)
        _save(report, user, xml=xml, status=Status.SUBMITTING, filed_by=user, ncmec_message="")
        # Nothing was uploaded without a report id: the files are the case's evidence now.
        report.files.all().delete()
        CyberTiplineFile.objects.bulk_create(
            CyberTiplineFile(report=report, item=item, md5=item.md5.lower())
            for item in cybertip_xml.report_items(case)
        )
    return report


def _submit(report: CyberTiplineReport, user, client: CyberTiplineClient) -> None:
    cybertip_xml.check(report.xml)  # never send an invalid document
    report_id = client.submit(report.xml)
    _save(
        report,
        user,
        report_id=report_id,
        status=Status.SUBMITTED,
        submitted_at=timezone.now(),
        ncmec_message="",
    )


def _hold(report: CyberTiplineReport, user) -> None:
    """The preservation a completed report asks for (18 U.S.C. 2258A(h): 1 year)."""
    days = settings.BAKKME_NCMEC_HOLD_DAYS
    with transaction.atomic():
        hold = holds.place(
            by=None,
            system="cybertip",
            reason=f"CyberTipline report {report.report_id}: preserved {days} days "
            "(18 U.S.C. 2258A(h)).",
            authority="ncmec_report",
            authority_reference=report.report_id,
            case=report.case,
            expires_at=timezone.now() + timedelta(days=days),
        )
        _save(report, user, hold=hold)


def _upload(report: CyberTiplineReport, file: CyberTiplineFile, user, client) -> None:
    item = file.item
    purpose = f"CyberTipline report {report.report_id}"
    if report.status != Status.UPLOADING:
        _save(report, user, status=Status.UPLOADING)
    answer = client.upload(
        report.report_id,
        lambda: vault.read_verified(item, actor=user, purpose=purpose),
        item.size,
        filename=item.original_name or f"evidence-{item.pk}",
    )
    if answer.hash != file.md5:
        raise NcmecRejected(
            f"MD5 mismatch on evidence #{item.pk}: NCMEC computed {answer.hash or 'none'}, "
            f"ours is {file.md5} (NCMEC file id {answer.file_id}). Not described or finished.",
            code=0,
        )
    with transaction.atomic():
        file.file_id = answer.file_id
        file.ncmec_md5 = answer.hash
        file.uploaded_at = timezone.now()
        file.save()
        custody.record(
            item,
            CustodyEvent.Action.TRANSFER,
            actor=user,
            purpose=purpose,
            detail={
                "recipient": "NCMEC",
                "report_id": report.report_id,
                "file_id": file.file_id,
                "md5": file.ncmec_md5,
            },  # fmt: skip
        )


def _fileinfo(report: CyberTiplineReport, file: CyberTiplineFile, client) -> None:
    xml = cybertip_xml.build_file_details(
        report.case, file.item, report_id=report.report_id, file_id=file.file_id
    )
    cybertip_xml.check(xml)
    client.fileinfo(xml)
    file.fileinfo_sent = True
    file.save(update_fields=["fileinfo_sent"])


def _finish(report: CyberTiplineReport, user, client) -> None:
    _save(report, user, status=Status.FINISHING)
    try:
        client.finish(report.report_id)
    except NcmecRejected as exc:
        if exc.code != ALREADY_FINISHED:  # finished before a crash: nothing more to do
            raise
    _save(report, user, status=Status.FINISHED, finished_at=timezone.now(), ncmec_message="")
    complete_actions(report.case, ActionType.NCMEC_REPORT, actor=user)


def file_report(case: Case, user, *, client: CyberTiplineClient | None = None):
    """File the case's CyberTipline report, or continue its interrupted filing.

    Raises InvalidDraft (field by field; nothing sent), FilingError (NCMEC refused, could not be
    reached, or a hash did not match: the report is "failed_needs_review" with the message), or
    PermissionDenied."""
    if not may_file(user, case):
        raise PermissionDenied("You may not file a CyberTipline report for this case.")
    try:
        report = _start(case, user)
    except IntegrityError as exc:  # another filing of the case started at the same moment
        raise FilingError("This case is being filed by someone else.") from exc
    if report.status == Status.FINISHED:
        return report
    client = client or CyberTiplineClient()
    try:
        if not report.report_id:
            _submit(report, user, client)
            _checkpoint(report, "submitted")
        if report.hold_id is None:
            _hold(report, user)
        for file in report.files.filter(file_id="").select_related("item"):
            _upload(report, file, user, client)
            _checkpoint(report, "uploaded")
        for file in report.files.filter(fileinfo_sent=False).select_related("item"):
            _fileinfo(report, file, client)
            _checkpoint(report, "described")
        _finish(report, user, client)
    except (NcmecError, cybertip_xml.InvalidDocument, vault.EvidenceIntegrityError) as exc:
        message = str(exc)
        log.warning("CyberTipline filing of case #%s stopped: %s", case.pk, message)
        _save(report, user, status=Status.FAILED_NEEDS_REVIEW, ncmec_message=message)
        raise FilingError(message, report) from exc
    return report


def retract(
    report: CyberTiplineReport, user, *, reason: str = "", client: CyberTiplineClient | None = None
):
    """Abandon a filing that was not finished: NCMEC retracts the report (if it has an id).
    The evidence hold stays (release it in the holds admin if it should go)."""
    if not may_file(user, report.case):
        raise PermissionDenied("You may not retract this CyberTipline report.")
    with transaction.atomic():
        report = CyberTiplineReport.objects.select_for_update().get(pk=report.pk)
        if report.status == Status.FINISHED:
            raise ValidationError("A finished report cannot be retracted.")
        if report.status == Status.RETRACTED:
            raise ValidationError("This report was already retracted.")
    if report.report_id:
        try:
            (client or CyberTiplineClient()).retract(report.report_id)
        except NcmecRejected as exc:
            if exc.code != ALREADY_RETRACTED:
                _save(report, user, ncmec_message=str(exc))
                raise FilingError(str(exc), report) from exc
        except NcmecError as exc:
            _save(report, user, ncmec_message=str(exc))
            raise FilingError(str(exc), report) from exc
    report._change_reason = reason.strip()[:100] or "retracted"
    _save(report, user, status=Status.RETRACTED, retracted_at=timezone.now())
    return report


# --- Law enforcement ---------------------------------------------------------------------------


def save_referral(referral: LawEnforcementReferral, user) -> LawEnforcementReferral:
    """Record a referral (new or edited) of a case visible to the user. A new referral of a P0
    case is an emergency referral."""
    if not visible_cases(user).filter(pk=referral.case_id).exists():
        raise PermissionDenied("You may not refer this case.")
    if referral.pk is None:
        referral.created_by = user
        if referral.case.priority == Priority.P0:
            referral.emergency = True
    referral._history_user = user
    referral.full_clean()
    with transaction.atomic():
        referral.save()
        complete_actions(referral.case, ActionType.LAW_ENFORCEMENT_REFERRAL, actor=user)
    return referral


def check_request_cases(user, cases) -> None:
    visible = set(
        visible_cases(user).filter(pk__in=[c.pk for c in cases]).values_list("pk", flat=True)
    )
    hidden = [c.pk for c in cases if c.pk not in visible]
    if hidden:
        raise PermissionDenied(f"No such case: {', '.join(map(str, hidden))}.")


def apply_preservation(le_request: LERequest, user) -> list:
    """A preservation request holds what it names: each linked case and each account id get a
    law-enforcement hold (indefinite until released). Safe to run again: what this request holds
    already is not held twice. Returns the holds placed now."""
    if le_request.process_type != LERequest.ProcessType.PRESERVATION_REQUEST:
        return []
    reference = le_request.reference or f"law-enforcement request #{le_request.pk}"
    reason = f"Preservation request from {le_request.agency} ({reference})."
    placed = []
    with transaction.atomic():
        existing = list(le_request.holds.filter(released_at__isnull=True))
        held_cases = {h.case_id for h in existing if h.case_id}
        held_accounts = {h.account_platform_id for h in existing if h.account_platform_id}
        subjects = [{"case": c} for c in le_request.cases.all() if c.pk not in held_cases]
        subjects += [
            {"account_platform_id": account}
            for account in le_request.account_ids()
            if account not in held_accounts
        ]
        for subject in subjects:
            placed.append(
                holds.place(
                    by=user,
                    reason=reason,
                    authority="law_enforcement_request",
                    authority_reference=reference,
                    **subject,
                )
            )
        if placed:
            le_request.holds.add(*placed)
    return placed


def save_request(le_request: LERequest, user, *, cases=None) -> LERequest:
    """Record a request (new or edited) with its linked cases; a preservation request places its
    holds."""
    if cases is not None:
        check_request_cases(user, cases)
    with transaction.atomic():
        if le_request.pk is None:
            le_request.created_by = user
        le_request._history_user = user
        le_request.full_clean(exclude=["cases", "holds"])
        le_request.save()
        if cases is not None:
            le_request.cases.set(cases)
        apply_preservation(le_request, user)
    return le_request
