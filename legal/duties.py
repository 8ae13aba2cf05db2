"""The legal desk: what legal staff owe, by when, and the sweep that keeps the deadlines.

A duty is opened where the work arises, at once and in the same transaction:

- a decision that prescribes a CyberTipline report or a law-enforcement referral, and an
  automated CSAM hash match (Child Safety Standards §6.3, §6.4): `hand_off` grants legal staff
  the case and its evidence, creates the CyberTipline draft record, opens the duties and tells
  the legal staff on shift (everyone in legal when nobody is on shift);
- a law-enforcement or regulator request received (its answer, by type);
- platform records answering a preservation request (to check);
- an evidence package requested (to hand over).

Each duty has a deadline from the settings (BAKKME_LEGAL_*, BAKKME_LE_REQUEST_RESPONSE_HOURS)
and runs the clock of a case SLA (cases/sla.py): warnings at BAKKME_SLA_WARNING_FRACTIONS of
its window to legal on shift, and at its deadline a breach that tells legal and every CSO. Each
step happens once (the sweep locks the rows it changes, and the conditions are the columns it
sets), also with two workers or after downtime. A duty is done when the work is: the filing
finished, the referral recorded, the answer sent, the records checked, the package downloaded.
"""

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from bakkme_safety.policy import ActionType, Priority
from bakkme_safety.roles import Role
from cases.actions import grant_to_legal, record_event
from cases.models import Case, CaseEvent, sees_every_case
from cases.sla import sla_status, warning_times
from cases.visibility import visible_case_ids
from staff import actions as staff
from staff.models import Notification

from .models import CyberTiplineReport, LawEnforcementRequest, LegalDuty

Kind = LegalDuty.Kind


# --- Opening and closing -------------------------------------------------------------------------


def open_duty(*, kind: str, title: str, started_at: datetime, hours: float, **links) -> LegalDuty:
    """Open a duty (or return the open one for the same thing: a second hand-off adds nothing;
    `created_now` on the answer says which).

    `links` are the duty's case, cybertip_report, le_request, package, and `reason`,
    `emergency`. The deadline is `hours` after `started_at`; the warnings follow it.
    """
    existing = _open_for(kind, links)
    if existing is not None:
        existing.created_now = False
        return existing
    due_at = started_at + timedelta(hours=hours)
    times = warning_times(started_at, due_at)
    duty = LegalDuty(
        kind=kind,
        title=title[:200],
        started_at=started_at,
        due_at=due_at,
        next_warning_at=times[0] if times else None,
        **links,
    )
    try:
        with transaction.atomic():  # a savepoint: a concurrent hand-off may have won
            duty.save()
    except IntegrityError:
        found = _open_for(kind, links)
        if found is None:
            raise
        found.created_now = False
        return found
    duty.created_now = True
    return duty


def _open_for(kind: str, links: dict) -> LegalDuty | None:
    key = {
        Kind.CYBERTIP_REPORT: "cybertip_report",
        Kind.LE_REQUEST: "le_request",
        Kind.PACKAGE: "package",
        Kind.PRESERVATION_CHECK: "preservation_request",
    }.get(kind, "case")
    if links.get(key) is None:
        return None
    return LegalDuty.objects.filter(kind=kind, done_at__isnull=True, **{key: links[key]}).first()


def complete(duties, *, actor=None, note: str = "", at: datetime | None = None) -> int:
    """Mark open duties done (the work they stood for was done); returns how many."""
    return duties.filter(done_at__isnull=True).update(
        done_at=at or timezone.now(), done_by=actor, done_note=note[:300]
    )


def complete_cybertip(report: CyberTiplineReport, *, actor=None) -> int:
    """A CyberTipline report of the case was filed (NCMEC finished it): the case's CyberTipline
    duty is done, whichever of its drafts it was opened for (a retracted draft's duty stays
    open until a report of the case is filed)."""
    duties = LegalDuty.objects.filter(kind=Kind.CYBERTIP_REPORT, case=report.case_id)
    return complete(duties, actor=actor, note=f"filed as NCMEC report {report.report_id}")


def complete_referral(case: Case, *, actor=None) -> int:
    return complete(
        LegalDuty.objects.filter(kind=Kind.LE_REFERRAL, case=case), actor=actor, note="referred"
    )


# --- The hand-off -------------------------------------------------------------------------------


def hand_off(
    case: Case, *, reason: str, cybertip: bool, referral: bool, actor=None, at=None
) -> list[LegalDuty]:
    """Give legal staff what a decision or a hash match calls for, at once (§6.3, §6.4): the
    case and its evidence granted with the reason, the CyberTipline draft record, the duties
    with their deadlines, and the legal staff on shift told. Call inside the transaction that
    made the decision or recorded the match; once per thing owed however often it is called."""
    at = at or timezone.now()
    grant_to_legal(case, actor=actor, reason=reason)
    opened = []
    if cybertip:
        report = _draft_record(case)
        if report.status not in (CyberTiplineReport.Status.FINISHED,):
            opened.append(
                open_duty(
                    kind=Kind.CYBERTIP_REPORT,
                    title=f"CyberTipline report of case #{case.pk}",
                    started_at=at,
                    hours=settings.BAKKME_LEGAL_CYBERTIP_HOURS,
                    case=case,
                    cybertip_report=report,
                    reason=reason,
                )
            )
    if referral:
        emergency = case.priority == Priority.P0
        opened.append(
            open_duty(
                kind=Kind.LE_REFERRAL,
                title=(
                    f"Emergency law-enforcement referral of case #{case.pk}"
                    if emergency
                    else f"Law-enforcement referral of case #{case.pk}"
                ),
                started_at=at,
                hours=settings.BAKKME_LEGAL_EMERGENCY_REFERRAL_HOURS
                if emergency
                else settings.BAKKME_LEGAL_REFERRAL_HOURS,
                case=case,
                reason=reason,
                emergency=emergency,
            )
        )
    new = [duty for duty in opened if duty.created_now]
    if new:
        record_event(
            case,
            CaseEvent.Type.LEGAL_HANDOFF,
            actor,
            reason=reason,
            duties=[{"id": d.pk, "kind": d.kind, "due_at": d.due_at.isoformat()} for d in new],
        )
        recipients = dict.fromkeys(staff.on_duty(Role.LEGAL), [case.pk])
        staff.notify(Notification.Kind.LEGAL_HANDOFF, recipients, at)
    return opened


def _draft_record(case: Case) -> CyberTiplineReport:
    """The case's CyberTipline report that is not retracted, or a new draft (one per case)."""
    Status = CyberTiplineReport.Status
    current = CyberTiplineReport.objects.filter(case=case).exclude(status=Status.RETRACTED).first()
    if current is not None:
        return current
    try:
        with transaction.atomic():
            return CyberTiplineReport.objects.create(case=case, status=Status.DRAFT)
    except IntegrityError:  # created meanwhile by a concurrent hand-off
        return CyberTiplineReport.objects.filter(case=case).exclude(status=Status.RETRACTED).get()


def on_case_decided(sender, *, case, decision, actions, actor, **kwargs) -> None:
    """A decision that prescribes a CyberTipline report or a referral hands the case off."""
    cybertip = ActionType.NCMEC_REPORT in actions
    referral = ActionType.LAW_ENFORCEMENT_REFERRAL in actions
    if cybertip or referral:
        label = decision.get_violation_display()
        hand_off(case, reason=f"Decided: {label}", cybertip=cybertip, referral=referral,
                 actor=actor)  # fmt: skip


def on_csam_hash_matched(sender, *, case, item, matches, **kwargs) -> None:
    """An automated CSAM hash match: a CyberTipline report is owed (18 U.S.C. 2258A)."""
    banks = sorted({m.entry.bank.name for m in matches})
    hand_off(case, reason=f"Automated CSAM hash match ({', '.join(banks)}, evidence #{item.pk})",
             cybertip=True, referral=False)  # fmt: skip


# --- Law-enforcement requests -------------------------------------------------------------------


def request_due_at(le_request: LawEnforcementRequest) -> datetime:
    """When the answer is due: the hours its type gives (BAKKME_LE_REQUEST_RESPONSE_HOURS) from
    the day it was received (the start of that day, UTC: a request received today counts from
    this morning, never from a later entry)."""
    received = datetime.combine(le_request.received_on, datetime.min.time(), tzinfo=UTC)
    hours = settings.BAKKME_LE_REQUEST_RESPONSE_HOURS[le_request.process_type]
    return received + timedelta(hours=hours)


def track_request(le_request: LawEnforcementRequest, *, actor=None) -> LegalDuty | None:
    """Keep the request's answer duty in step with it: open while it has no answer, done once
    legal recorded when they responded. Its deadline follows the request's due_at."""
    duties = LegalDuty.objects.filter(kind=Kind.LE_REQUEST, le_request=le_request)
    if le_request.responded_on is not None:
        complete(duties, actor=actor, note=f"responded {le_request.responded_on:%Y-%m-%d}")
        return None
    received = datetime.combine(le_request.received_on, datetime.min.time(), tzinfo=UTC)
    hours = (le_request.due_at - received).total_seconds() / 3600
    duty = open_duty(
        kind=Kind.LE_REQUEST,
        title=f"Answer: {le_request}"[:200],
        started_at=received,
        hours=hours,
        le_request=le_request,
        case=le_request.cases.order_by("pk").first(),
        emergency=le_request.process_type == LawEnforcementRequest.ProcessType.EMERGENCY_DISCLOSURE,
    )
    if duty.due_at != le_request.due_at:  # the deadline was edited on the request
        times = warning_times(duty.started_at, le_request.due_at)
        LegalDuty.objects.filter(pk=duty.pk).update(
            due_at=le_request.due_at,
            warnings_sent=0,
            next_warning_at=times[0] if times else None,
            breached_at=None,
        )
        duty.refresh_from_db()
    return duty


# --- Packages ------------------------------------------------------------------------------------


def on_package_requested(sender, *, package, **kwargs) -> None:
    open_duty(
        kind=Kind.PACKAGE,
        title=f"Hand over evidence package #{package.pk} to {package.recipient}"[:200],
        started_at=package.requested_at,
        hours=settings.BAKKME_LEGAL_PACKAGE_HOURS,
        case=package.case,
        package=package,
        reason=package.purpose,
    )


def on_package_downloaded(sender, *, package, user, **kwargs) -> None:
    complete(LegalDuty.objects.filter(package=package), actor=user, note="downloaded")


# --- What a person sees ---------------------------------------------------------------------------


def visible_duties(user):
    """The duties of the cases `user` may see; a duty with no case (a request naming none) to
    those who may see law-enforcement requests."""
    duties = LegalDuty.objects.all()
    if sees_every_case(user):
        return duties
    no_case = Q(case__isnull=True)
    if not user.has_perm("legal.view_lawenforcementrequest"):
        no_case = Q(pk__in=[])
    return duties.filter(Q(case__in=visible_case_ids(user)) | no_case)


@dataclass(frozen=True)
class DeskRow:
    duty: LegalDuty
    state: str  # green, amber, red, breached
    remaining: str


def desk(user, now: datetime | None = None) -> list[DeskRow]:
    """The open duties `user` may see, most urgent first, with their SLA state."""
    now = now or timezone.now()
    rows = []
    duties = visible_duties(user).filter(done_at__isnull=True)
    for duty in duties.select_related("case", "cybertip_report", "le_request", "package").order_by(
        "due_at", "pk"
    ):
        status = sla_status(duty.started_at, duty.due_at, now)
        rows.append(DeskRow(duty, status.state, status.describe()))
    return rows


# --- The sweep ----------------------------------------------------------------------------------


@dataclass
class SweepResult:
    warned: int = 0
    breached: int = 0
    notified: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _open_clocks():
    return LegalDuty.objects.filter(done_at__isnull=True, breached_at__isnull=True)


def sweep(now: datetime | None = None) -> SweepResult:
    """Warn and breach the legal desk's deadlines; safe to run twice, at once, or hours late
    (a missed breach is recorded at its deadline; warnings of a window that ran out are not
    sent)."""
    now = now or timezone.now()
    result = SweepResult()
    with transaction.atomic():
        due = list(
            _open_clocks()
            .filter(due_at__lte=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("case")
        )
        for duty in due:
            LegalDuty.objects.filter(pk=duty.pk).update(breached_at=duty.due_at)
        result.breached = len(due)
        result.notified += _tell(Notification.Kind.LEGAL_DUTY_BREACH, due, now, cso=True)
    with transaction.atomic():
        warned = list(
            _open_clocks()
            .filter(next_warning_at__lte=now, due_at__gt=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("case")
        )
        for duty in warned:
            times = warning_times(duty.started_at, duty.due_at)
            reached = sum(1 for t in times if t <= now)
            LegalDuty.objects.filter(pk=duty.pk).update(
                warnings_sent=reached,
                next_warning_at=times[reached] if reached < len(times) else None,
            )
        result.warned = len(warned)
        result.notified += _tell(Notification.Kind.LEGAL_DUTY_WARNING, warned, now, cso=False)
    return result


def _tell(kind: str, duties: list[LegalDuty], now: datetime, *, cso: bool) -> int:
    """Legal on shift (everyone in legal when nobody is), and for a breach every CSO: one
    notification a person and kind for the duties of cases, one each for duties without one."""
    if not duties:
        return 0
    people = {user.pk: user for user in staff.on_duty(Role.LEGAL)}
    if cso:
        people.update({user.pk: user for user in staff.staff_in_role(Role.CHILD_SAFETY_OFFICER)})
    case_ids = [duty.case_id for duty in duties if duty.case_id]
    sent = 0
    if case_ids:
        recipients = defaultdict(list)
        for person in people.values():
            recipients[person] = case_ids
        sent += len(staff.notify(kind, recipients, now))
    label = "missed" if kind == Notification.Kind.LEGAL_DUTY_BREACH else "approaching"
    for duty in duties:
        if duty.case_id is None:
            sent += len(
                staff.notify_people(
                    kind,
                    list(people.values()),
                    title=f"Deadline {label}: {duty.title}",
                    body=f"Due {duty.due_at:%Y-%m-%d %H:%M} UTC. See the legal desk.",
                    now=now,
                )
            )
    return sent
