"""Legal staff's business rules: filing a CyberTipline report (a resumable state machine),
retracting one, law-enforcement referrals, and the holds a preservation request places.

Filing (18 U.S.C. 2258A): submit -> upload each file -> fileinfo each file -> finish. Each step
is saved as soon as NCMEC answers it, before the next one starts, so a filing interrupted by a
crash continues from its last completed step when it is filed again: a report id once stored is
never submitted again, a file with a file id is never uploaded again. The subject is never told:
nothing here reaches the platform.

It runs in the background: "File" queues it (request_filing) and returns at once; a django-q2
task runs it (run_filing) under a lease on the report (legal.filing), each step within a total
deadline, the step it is at saved for the report's page; when it stops, the report goes back to
legal with the reason and the person who pressed File is told.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from bakkme_safety.policy import ActionType, Priority
from cases.actions import complete_actions
from cases.models import Case, sees_every_case
from cases.visibility import visible_case_ids
from evidence import custody, holds, vault
from evidence.models import CustodyEvent

from . import cybertip_xml, duties, filing
from .cybertip_client import (
    CyberTiplineClient,
    DeadlinePassed,
    NcmecError,
    NcmecRejected,
    same_endpoint,
    target,
)
from .models import CyberTiplineFile, CyberTiplineReport, LawEnforcementReferral
from .models import LawEnforcementRequest as LERequest

log = logging.getLogger(__name__)

FILE_PERMISSION = "legal.file_cybertiplinereport"
Status = CyberTiplineReport.Status
Step = CyberTiplineReport.Step

# NCMEC's codes meaning the step was done already (a crash after NCMEC's answer, before ours).
ALREADY_FINISHED = 5102
ALREADY_RETRACTED = 5101


class FilingError(Exception):
    """The filing stopped; the report (if any) is back with legal staff with this message."""

    def __init__(self, message: str, report: CyberTiplineReport | None = None):
        self.report = report
        super().__init__(message)


class FilingRunning(FilingError):
    """A worker is filing the report now (its lease is live): nothing more was queued."""


class SubmissionInterrupted(FilingError):
    """A submission was cut off before NCMEC's answer was saved: it is not sent again."""


INTERRUPTED = (
    "A submission of this case was interrupted before NCMEC's answer was saved (NCMEC may hold "
    "a report without its id here). Check with NCMEC, then retract this filing here before "
    "filing the case again."
)


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
    """The <report> of the case's saved draft (legal/draft.py; the initial draft the case gives
    when none was saved yet), and its problems, field by field. Writes nothing (it runs inside
    the filing's transaction)."""
    from . import draft as drafts  # legal.draft calls back into this module (may_file)

    return drafts.check(case, drafts.current_draft(case))


def _checkpoint(report: CyberTiplineReport, step: str) -> None:
    """Called after each completed (and saved) step; a test makes it raise to simulate a crash."""


def _step_started(report: CyberTiplineReport) -> None:
    """Called when a step starts (its step saved for the page); a test looks at the page here."""


def _save(report: CyberTiplineReport, user, **fields) -> None:
    """Save `fields` with `user` in the history; on a stored report only those (the lease
    columns are the filing run's, legal.filing)."""
    for name, value in fields.items():
        setattr(report, name, value)
    report._history_user = user
    if report.pk is None:
        report.save()
    else:
        report.save(update_fields=[*fields, "updated_at"])


def _prepare(case: Case, user) -> CyberTiplineReport:
    """The case's report queued for filing, locked (call inside a transaction). One with a
    report id continues where it stopped; otherwise the report as legal reviewed it now (its
    XML validated, its files listed) is submitted afresh. A finished one is left as it is."""
    report = (
        CyberTiplineReport.objects.select_for_update()
        .filter(case=case)
        .exclude(status=Status.RETRACTED)
        .first()
    )
    if report is not None and report.status == Status.FINISHED:
        return report
    if report is not None and filing.running(report):
        raise FilingRunning(
            f"This case's report is being filed now ({report.step_detail}); its page shows "
            "each step.",
            report,
        )
    if report is not None and not report.report_id and report.status == Status.SUBMITTING:
        raise SubmissionInterrupted(INTERRUPTED, report)
    if report is None or not report.report_id:
        xml, problems = draft(case)
        if problems:
            raise InvalidDraft(problems)
        if report is None:
            report = CyberTiplineReport(case=case)
        _save(report, user, xml=xml, status=Status.DRAFT, filed_by=user, ncmec_message="")
        # Nothing was uploaded without a report id: the files are the case's evidence now.
        report.files.all().delete()
        CyberTiplineFile.objects.bulk_create(
            CyberTiplineFile(report=report, item=item, md5=item.md5.lower())
            for item in cybertip_xml.report_items(case)
        )
    elif report.status == Status.FAILED_NEEDS_REVIEW:
        _save(report, user, status=Status.SUBMITTED)  # the report id is known: go on from there
    _save(
        report,
        user,
        step=Step.QUEUED,
        step_detail="Waiting for a worker",
        step_started_at=timezone.now(),
        requested_by=user,
        ncmec_message="",
    )
    return report


def _submit(report: CyberTiplineReport, user, client: CyberTiplineClient) -> None:
    cybertip_xml.check(report.xml)  # never send an invalid document
    report_id = client.submit(report.xml)
    _save(
        report,
        user,
        report_id=report_id,
        endpoint=client.base_url,
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
    with transaction.atomic():
        _save(report, user, status=Status.FINISHED, finished_at=timezone.now(), ncmec_message="")
        _filed(report, user)


def _filed(report: CyberTiplineReport, user) -> None:
    """What a finished filing completes, in the transaction that records it (the one place):
    the decision's "NCMEC CyberTipline report" action, and the legal desk's duty for it."""
    complete_actions(report.case, ActionType.NCMEC_REPORT, actor=user)
    duties.complete_cybertip(report, actor=user)


# --- Filing in the background ------------------------------------------------------------------


def request_filing(case: Case, user, *, queue: bool = True) -> CyberTiplineReport:
    """Legal staff press "File": the report as reviewed now is queued for filing in the
    background (legal.tasks.file_cybertip_report runs run_filing when this commits) and the
    request returns at once. A report NCMEC gave an id continues where it stopped; a finished
    one is left as it is. queue=False: the caller runs the filing itself (file_report).

    Raises InvalidDraft (field by field; nothing queued), FilingRunning (a worker is filing it
    now), SubmissionInterrupted (a submission was cut off before NCMEC's answer was saved:
    check with NCMEC, retract, file again), FilingError, PermissionDenied."""
    if not may_file(user, case):
        raise PermissionDenied("You may not file a CyberTipline report for this case.")
    try:
        with transaction.atomic():
            report = _prepare(case, user)
            if queue and report.step == Step.QUEUED:
                report_pk = report.pk
                transaction.on_commit(lambda: _queue_filing(report_pk))
    except IntegrityError as exc:  # another filing of the case started at the same moment
        raise FilingError("This case is being filed by someone else.") from exc
    return report


def _queue_filing(report_pk: int) -> None:
    from django_q.tasks import async_task

    # Its own timeout: a filing of many files takes longer than the cluster's default. A
    # delivery again while it runs finds its lease live and does nothing (legal.filing).
    async_task(
        "legal.tasks.file_cybertip_report",
        report_pk,
        timeout=settings.BAKKME_CYBERTIP_FILING_TIMEOUT,
        task_name=f"CyberTipline report {report_pk}",
    )


def run_filing(
    report_pk: int, *, client: CyberTiplineClient | None = None
) -> CyberTiplineReport | None:
    """File a queued report, or take over a filing whose run died (the task behind "File";
    safe to run twice: a second delivery while a run lives does nothing). The steps run as
    the person who pressed File, each saved as NCMEC answers it and each within
    BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS, retries and waits included: submit, upload file k
    of n, fileinfo for each, finish. When it stops (NCMEC refused or did not answer in time,
    a hash differed, the run failed), the report is back with legal with the reason and that
    person is told. Returns the report, or None when there was nothing to do."""
    lease = filing.Lease.claim(report_pk)
    if lease is None:
        return None
    run = _Run(lease, client)
    try:
        with filing.Heartbeat(lease):
            run.steps()
    except filing.LeaseLost:
        log.warning("CyberTipline report %s: this run lost its lease and stopped", report_pk)
        return None
    except SubmissionInterrupted as exc:
        run.stop(str(exc))  # stays "submitting": never submitted again
    except (
        NcmecError,
        FilingError,
        cybertip_xml.InvalidDocument,
        vault.EvidenceIntegrityError,
    ) as exc:
        run.stop(run.describe(exc), status=Status.FAILED_NEEDS_REVIEW)
    except Exception as exc:
        # A bug or a crash: the report keeps its status (the resume rules decide what is left
        # when it is filed again); the error goes to the task's result too.
        run.stop(f"The filing stopped on an unexpected error during {run.what}: {exc!r}.")
        raise
    return run.report


class _Run:
    """One run of a filing under its lease: the steps, the step's deadline and description."""

    def __init__(self, lease: filing.Lease, client: CyberTiplineClient | None):
        self.lease = lease
        self.report = lease.report
        self.user = self.report.requested_by or self.report.filed_by
        self.client = client or CyberTiplineClient()
        self.what = "the start of the filing"

    def begin(self, step: str, detail: str, what: str) -> None:
        """A step starts: shown on the page, its deadline set, the lease renewed."""
        self.what = what
        self.client.set_deadline(settings.BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS)
        self.lease.renew(step=step, step_detail=detail, step_started_at=timezone.now())
        _step_started(self.report)

    def steps(self) -> None:
        report, user, client = self.report, self.user, self.client
        if report.status in (Status.FINISHED, Status.RETRACTED):
            self.lease.release(step=Step.DONE if report.status == Status.FINISHED else "")
            return
        if user is None or not may_file(user, report.case):
            raise FilingError(f"{user or 'Nobody'} may no longer file this case's report.")
        if not report.report_id:
            if report.status == Status.SUBMITTING:
                raise SubmissionInterrupted(INTERRUPTED, report)
            self.begin(Step.SUBMIT, "Submitting the report", "the submission of the report")
            _save(report, user, status=Status.SUBMITTING)  # the mark left before it is sent
            _submit(report, user, client)
            _checkpoint(report, "submitted")
        elif report.endpoint and not same_endpoint(report.endpoint, client.base_url):
            raise FilingError(_elsewhere(report, client.base_url), report)
        if report.hold_id is None:
            _hold(report, user)
        files = list(report.files.select_related("item").order_by("pk"))
        for k, file in enumerate(files, 1):
            if not file.file_id:
                of = f"file {k} of {len(files)}"
                self.begin(Step.UPLOAD, f"Uploading {of}", f"the upload of {of}")
                _upload(report, file, user, client)
                _checkpoint(report, "uploaded")
        for k, file in enumerate(files, 1):
            if not file.fileinfo_sent:
                of = f"file {k} of {len(files)}"
                self.begin(Step.FILEINFO, f"Describing {of} (fileinfo)", f"the fileinfo of {of}")
                _fileinfo(report, file, client)
                _checkpoint(report, "described")
        self.begin(Step.FINISH, "Finishing the report", "the finish of the report")
        _finish(report, user, client)
        self.lease.release(
            step=Step.DONE,
            step_detail=f"Finished: NCMEC report {report.report_id}",
            step_started_at=timezone.now(),
        )

    def describe(self, exc: Exception) -> str:
        """The reason for legal staff: the step, and NCMEC's message or what went wrong."""
        if isinstance(exc, DeadlinePassed):
            message = f"NCMEC did not answer {self.what} within {exc.seconds:g} s ({exc.detail})."
            if self.report.report_id:
                return (
                    f"{message} NCMEC report {self.report.report_id} and what it received "
                    "before are kept."
                )
            return f"{message} No report id came back; NCMEC may still have received the report."
        if isinstance(exc, FilingError):
            return str(exc)
        return f"{self.what[0].upper()}{self.what[1:]} failed: {exc}"

    def stop(self, message: str, *, status: str | None = None) -> None:
        """Back to legal with `message` (and `status`), the person who pressed File told."""
        report = self.report
        with transaction.atomic():
            stopped = self.lease.release(
                step=Step.STOPPED,
                step_detail=f"Stopped during {self.what}"[:200],
                step_started_at=timezone.now(),
            )
            if not stopped:
                return  # another run holds the filing now: it reports for itself
            log.warning("CyberTipline filing of case #%s stopped: %s", report.case_id, message)
            fields = {"ncmec_message": message}
            if status:
                fields["status"] = status
            _save(report, self.user, **fields)
            _tell_stopped(report, self.user, message)


def _elsewhere(report: CyberTiplineReport, url: str) -> str:
    return (
        f"NCMEC report {report.report_id} came from {target(report.endpoint).label} "
        f"({report.endpoint}), but filing now goes to {target(url).label}: its report id means "
        f"nothing there. Set BAKKME_CYBERTIP_URL to {report.endpoint} to continue or retract it."
    )


def _tell_stopped(report: CyberTiplineReport, user, message: str) -> None:
    from staff import actions as staff
    from staff.models import Notification

    if user is None:
        return
    staff.notify_person(
        Notification.Kind.CYBERTIP_STOPPED,
        user,
        case=report.case,
        title=f"The CyberTipline filing of case #{report.case_id} stopped",
        body=f"{message}\n\n{what_to_do(report)}",
        now=timezone.now(),
    )


def what_to_do(report: CyberTiplineReport, now=None) -> str:
    """What legal staff do next with a report whose filing is not under way ("" when nothing:
    finished, retracted, never filed, or a worker on it now)."""
    if report.status in (Status.FINISHED, Status.RETRACTED):
        return ""
    if filing.stalled(report, now):
        return (
            "The worker filing this report stopped. The task takes it over when it is "
            'delivered again; or press "Continue the filing" on the draft page: nothing NCMEC '
            "has already is sent again."
        )
    if report.step != Step.STOPPED:
        return ""
    if not report.report_id and report.status == Status.SUBMITTING:
        return (
            "Check with NCMEC whether it received this report, then retract this filing here "
            "and file the case again."
        )
    if report.report_id:
        return (
            'Press "Continue the filing" on the draft page to go on from where it stopped: '
            "nothing NCMEC has already is sent again. Or retract the report here."
        )
    return (
        "Correct what the message names (on the draft), then file again: the report is "
        "submitted afresh."
    )


def file_report(case: Case, user, *, client: CyberTiplineClient | None = None):
    """File the case's CyberTipline report in this process, or continue its interrupted
    filing (`cybertip_file --wait`): request_filing, then run_filing here.

    Raises InvalidDraft (field by field; nothing sent), FilingError (NCMEC refused, could not be
    reached in time, or a hash did not match: the report is "failed_needs_review" with the
    message), or PermissionDenied."""
    report = request_filing(case, user, queue=False)
    if report.status == Status.FINISHED:
        return report
    run_filing(report.pk, client=client)
    report.refresh_from_db()
    if report.status != Status.FINISHED:
        message = report.ncmec_message or f"The filing did not finish ({report.step_detail})."
        raise FilingError(message, report)
    return report


def retract(
    report: CyberTiplineReport, user, *, reason: str = "", client: CyberTiplineClient | None = None
):
    """Abandon a filing that was not finished: NCMEC retracts the report (if it has an id).
    The evidence hold stays (release it in the holds admin if it should go)."""
    if not may_file(user, report.case):
        raise PermissionDenied("You may not retract this CyberTipline report.")
    client = client or CyberTiplineClient()
    with transaction.atomic():
        report = CyberTiplineReport.objects.select_for_update().get(pk=report.pk)
        if report.status == Status.FINISHED:
            raise ValidationError("A finished report cannot be retracted.")
        if report.status == Status.RETRACTED:
            raise ValidationError("This report was already retracted.")
        if filing.running(report):
            raise ValidationError(
                f"The report is being filed now ({report.step_detail}): retract it once the "
                "filing has stopped."
            )
        elsewhere = report.endpoint and not same_endpoint(report.endpoint, client.base_url)
        if report.report_id and elsewhere:
            raise ValidationError(_elsewhere(report, client.base_url))
        if report.step == Step.QUEUED:  # no worker may start it now
            _save(report, user, step="", step_detail="")
    if report.report_id:
        try:
            client.retract(report.report_id)
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
        duties.complete_referral(referral.case, actor=user)
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


def save_request(
    le_request: LERequest, user, *, cases=None, packages=None, referrals=None
) -> LERequest:
    """Record a request (new or edited) with its linked cases; a preservation request places its
    holds. Its answer is due by its type (BAKKME_LE_REQUEST_RESPONSE_HOURS) unless a deadline
    was entered, and sits on the legal desk until the response is recorded."""
    if cases is not None:
        check_request_cases(user, cases)
    with transaction.atomic():
        if le_request.pk is None:
            le_request.created_by = user
        if le_request.due_at is None and le_request.received_on and le_request.process_type:
            le_request.due_at = duties.request_due_at(le_request)
        le_request._history_user = user
        le_request.full_clean(exclude=["cases", "holds"])
        le_request.save()
        if cases is not None:
            le_request.cases.set(cases)
        # What answered it: packages and referrals of the cases the person sees.
        if packages is not None:
            le_request.answered_with_packages.set(packages)
        if referrals is not None:
            le_request.answered_with_referrals.set(referrals)
        apply_preservation(le_request, user)
        duties.track_request(le_request, actor=user)
    return le_request
