"""Every change of a case's state goes through a function here.

Each takes the acting user, runs in one transaction, records history (simple-history) with that
user and writes a CaseEvent for the timeline. The admin, the API, commands and tasks call these;
nothing else writes cases.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from bakkme_safety import policy
from bakkme_safety.roles import ESCALATION_ROLES, Role
from core.bulk import update_rows
from core.history import copy_to_history
from deliveries import outbox
from staff import exposure

from . import signals, sla_engine
from .models import (
    ACCEPTS_REPORTS_STATES,
    Case,
    CaseEvent,
    CaseState,
    Decision,
    EmergencyChecklistItem,
    EnforcementAction,
    Escalation,
    Note,
)
from .sla import start_window

S = CaseState

# The case state machine. Reopening: a decided case takes a new report (back to new); a
# senior reviewer may reopen a decided or closed case.
TRANSITIONS: dict[str, set[str]] = {
    S.NEW: {S.IN_REVIEW, S.ESCALATED, S.DECIDED},
    S.IN_REVIEW: {S.NEW, S.ESCALATED, S.DECIDED},
    S.ESCALATED: {S.IN_REVIEW, S.DECIDED},
    S.DECIDED: {S.CLOSED, S.NEW},
    S.CLOSED: {S.NEW},
}

# Where the assigned reviewer's per-case right lives (django-guardian object permission).
ASSIGNEE_PERMISSION = "cases.change_case"


class InvalidTransition(Exception):
    """The state machine does not allow this change."""


def _actor_name(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def _event(case, type_, actor=None, at=None, **payload) -> CaseEvent:
    return CaseEvent(
        case=case,
        type=type_,
        actor=actor,
        actor_name=_actor_name(actor),
        payload=payload,
        at=at or timezone.now(),
    )


def record_event(case, type_, actor=None, **payload) -> CaseEvent:
    event = _event(case, type_, actor, **payload)
    event.save()
    return event


def _save(case: Case, actor, reason: str = "") -> None:
    case._history_user = actor
    case._change_reason = reason
    case.save()


def transition(case: Case, to_state: str, *, actor, reason: str = "") -> None:
    """Move a case to another state, or refuse what the state machine does not allow."""
    from_state = case.state
    if to_state not in TRANSITIONS[from_state]:
        raise InvalidTransition(
            f"A {case.get_state_display().lower()} case cannot become "
            f"{CaseState(to_state).label.lower()}."
        )
    now = timezone.now()
    case.state = to_state
    if to_state == S.DECIDED:
        case.decided_at = now
    elif to_state == S.CLOSED:
        case.closed_at = now
    elif to_state == S.NEW:
        case.decided_at = None
        case.closed_at = None
    _save(case, actor, reason)
    record_event(case, CaseEvent.Type.STATE_CHANGED, actor, **{"from": from_state, "to": to_state})


def _lock(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


# --- Intake ------------------------------------------------------------------------------------


def subject_key_for(account_platform_id: str, content_platform_id: str) -> str:
    """A case is about the reported account; about the content when no account is known."""
    if account_platform_id:
        return f"account:{account_platform_id}"
    return f"content:{content_platform_id}"


def group_into_cases(reports: list, now: datetime | None = None) -> None:
    """Put new (unsaved) reports into cases, set-based: each gets its priority, its due_at and
    its case_id; the reports app then stores them (reports.actions.store_reports).

    A report joins the case that takes reports for its subject, or opens a new one. A case's
    priority is the highest of its reports and its due_at the earliest deadline (the SLA clock
    starts at the platform's received_at). A decided case that gets a new report is reopened
    with a new window from that report. Call inside a transaction.
    """
    now = now or timezone.now()
    for report in reports:
        report.priority = policy.priority_for(report.category, report.surface, report.source)
        report.due_at = policy.due_at_for(report.priority, report.received_at)
    keys = sorted({subject_key_for(r.account_platform_id, r.content_platform_id) for r in reports})
    existing = {
        c.subject_key: c
        for c in Case.objects.select_for_update()
        .filter(subject_key__in=keys, state__in=ACCEPTS_REPORTS_STATES)
        .order_by("subject_key")
    }
    new_cases: dict[str, Case] = {}
    changed: dict[str, Case] = {}
    events: list[CaseEvent] = []
    reopened: list[Case] = []
    case_of: dict[int, Case] = {}
    for report in sorted(reports, key=lambda r: r.received_at):
        key = subject_key_for(report.account_platform_id, report.content_platform_id)
        case = existing.get(key) or new_cases.get(key)
        if case is None:
            case = Case(
                subject_key=key,
                account_platform_id=report.account_platform_id,
                account_username=report.account_username,
                content_platform_id=report.content_platform_id,
                priority=report.priority,
                category=report.category,
                surface=report.surface,
                is_child_safety=policy.is_child_safety(report.category),
                report_count=0,
            )
            start_window(case, report.received_at, report.due_at, fresh=True)
            new_cases[key] = case
        elif case.state == S.DECIDED:
            # A new report reopens the case with a new window from that report.
            case.state = S.NEW
            case.decided_at = None
            case.priority = report.priority
            case.category = report.category
            case.surface = report.surface
            case.escalated_to = ""
            start_window(case, report.received_at, report.due_at, fresh=True)
            reopened.append(case)
            changed[key] = case
        else:
            if report.priority < case.priority:
                case.priority = report.priority
                case.category = report.category
                case.surface = report.surface
            if report.due_at < case.due_at:
                # A more urgent report: the earlier deadline, and its warnings, apply.
                start_window(case, report.received_at, report.due_at, fresh=False)
            changed[key] = case
        case.is_child_safety = case.is_child_safety or policy.is_child_safety(report.category)
        if not case.account_username and report.account_username:
            case.account_username = report.account_username
        case.report_count += 1
        report.case = case
        case_of[id(report)] = case  # the FK cache does not survive bulk_create; keep our own

    if new_cases:
        Case.objects.bulk_create(new_cases.values())
        copy_to_history(Case, [c.pk for c in new_cases.values()], "+", now)
    for case in changed.values():
        case.updated_at = now
    if changed:
        update_rows(
            changed.values(),
            [
                "state",
                "decided_at",
                "priority",
                "category",
                "surface",
                "is_child_safety",
                "sla_started_at",
                "due_at",
                "first_action_at",
                "breached_at",
                "sla_warnings_sent",
                "sla_next_warning_at",
                "escalated_to",
                "report_count",
                "account_username",
                "updated_at",
            ],
        )
        copy_to_history(Case, [c.pk for c in changed.values()], "~", now)
    for report in reports:
        report.case_id = case_of[id(report)].pk
    # The case's creation and its reports are rows of their own; the timeline reads them
    # there (see timeline()), so intake writes no event per report.
    for case in reopened:
        events.append(
            _event(case, CaseEvent.Type.STATE_CHANGED, at=now, reason="new report", to=S.NEW)
        )
    CaseEvent.objects.bulk_create(events)
    emergencies = [c for c in [*new_cases.values(), *changed.values()] if c.priority == 0]
    if emergencies:
        transaction.on_commit(lambda: sla_engine.queue_emergency(emergencies), robust=True)


# --- Triage ------------------------------------------------------------------------------------


def user_escalation_roles(user) -> list[str]:
    if user.is_superuser:
        return [r.value for r in ESCALATION_ROLES]
    names = {g.name for g in user.groups.all()}
    return [r.value for r in ESCALATION_ROLES if r.value in names]


def claimable_cases(user, now: datetime):
    """Cases this user could take now: unclaimed or with an expired claim, at their level.

    At the exposure limit of a shift (staff.exposure), no child-safety cases.
    """
    level = Q(escalated_to="") | Q(escalated_to__in=user_escalation_roles(user))
    free = (
        Q(state=S.NEW)
        | Q(state=S.ESCALATED, assignee__isnull=True)
        | Q(state__in=[S.IN_REVIEW, S.ESCALATED], claim_expires_at__lt=now)
    )
    # state IN (open) repeats what `free` implies; it lets PostgreSQL walk the partial index of
    # open cases instead of every closed case of the same priority.
    qs = Case.objects.visible_to(user).open().filter(level & free)
    if exposure.at_limit(user, now):
        qs = qs.filter(is_child_safety=False)
    return qs


def _grant_claim(case: Case, user, now: datetime) -> None:
    if case.assignee_id and case.assignee_id != user.pk:
        remove_perm(ASSIGNEE_PERMISSION, case.assignee, case)
    case.assignee = user
    case.claimed_at = now
    case.claim_expires_at = now + timedelta(minutes=settings.BAKKME_CLAIM_TIMEOUT_MINUTES)
    assign_perm(ASSIGNEE_PERMISSION, user, case)


def claim_next_case(user, now: datetime | None = None) -> Case | None:
    """Give the reviewer the most urgent case they may see that nobody holds.

    Most urgent: priority, then due_at. Rows are locked with SKIP LOCKED on PostgreSQL so two
    reviewers never get the same case; SQLite serialises writers instead. A claim left
    unattended for BAKKME_CLAIM_TIMEOUT_MINUTES goes back to the queue.
    """
    if not user.has_perm("cases.claim_case"):
        raise PermissionDenied("You may not take cases from the queue.")
    now = now or timezone.now()
    with transaction.atomic():
        case = (
            claimable_cases(user, now)
            .order_by("priority", "due_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if case is None:
            return None
        previous = case.assignee
        _grant_claim(case, user, now)
        exposure.start_claim(user, case, now, case.claim_expires_at)
        if case.state == S.NEW or case.state == S.ESCALATED:
            transition(case, S.IN_REVIEW, actor=user, reason="claimed")
        else:
            _save(case, user, "claimed")
        record_event(
            case,
            CaseEvent.Type.CLAIMED,
            user,
            previous=_actor_name(previous) if previous else None,
            expires_at=case.claim_expires_at.isoformat(),
        )
    return case


def release_claim(case: Case, *, actor, reason: str = "released") -> Case:
    """The assignee (or a senior) hands the case back to the queue."""
    with transaction.atomic():
        case = _lock(case)
        if not case.assignee_id:
            return case
        if case.assignee_id != actor.pk and not actor.has_perm("cases.decide_case"):
            raise PermissionDenied(
                "Only the assigned reviewer or a senior reviewer can release it."
            )
        exposure.end_claim(case, case.assignee_id)
        remove_perm(ASSIGNEE_PERMISSION, case.assignee, case)
        case.assignee = None
        case.claimed_at = None
        case.claim_expires_at = None
        if case.state == S.IN_REVIEW and not case.escalated_to:
            transition(case, S.NEW, actor=actor, reason=reason)
        elif case.state == S.IN_REVIEW:
            transition(case, S.ESCALATED, actor=actor, reason=reason)
        else:
            _save(case, actor, reason)
        record_event(case, CaseEvent.Type.RELEASED, actor, reason=reason)
    return case


def can_decide(user, case: Case) -> bool:
    """Senior reviewers and the CSO decide any case; a reviewer the case they hold."""
    if user.has_perm("cases.decide_case"):
        return True
    return (
        user.has_perm("cases.claim_case")
        and case.assignee_id == user.pk
        and user.has_perm(ASSIGNEE_PERMISSION, case)
    )


@dataclass
class DecisionInput:
    violation: str
    rationale: str
    enticement: bool = False
    severity: str = ""
    restricted_feature: str = ""

    def actions(self) -> list[str]:
        return policy.actions_for(
            self.violation, enticement=self.enticement, severity=self.severity or None
        )


def decide_case(case: Case, decision: DecisionInput, *, actor) -> Decision:
    """Record a decision and create the enforcement actions the policy prescribes (§6.2).

    The actions are created pending and delivered to the platform's webhook after commit
    (deliveries/outbox.py); reporters who left a contact get a "decided" acknowledgment.
    """
    with transaction.atomic():
        case = _lock(case)
        if not can_decide(actor, case):
            raise PermissionDenied(
                "Claim the case first: only its reviewer or a senior decides it."
            )
        if S.DECIDED not in TRANSITIONS[case.state]:
            raise InvalidTransition(f"A {case.get_state_display().lower()} case cannot be decided.")
        record = Decision(
            case=case,
            violation=decision.violation,
            rationale=decision.rationale,
            enticement=decision.enticement,
            severity=decision.severity,
            restricted_feature=decision.restricted_feature,
            decided_by=actor,
        )
        record._history_user = actor
        record.save()
        if case.assignee_id:
            exposure.end_claim(case, case.assignee_id)
            remove_perm(ASSIGNEE_PERMISSION, case.assignee, case)
        case.assignee = None
        case.claim_expires_at = None
        case.first_action_at = case.first_action_at or timezone.now()  # stops the SLA clock
        transition(case, S.DECIDED, actor=actor, reason="decided")
        record_event(
            case,
            CaseEvent.Type.DECIDED,
            actor,
            decision=record.pk,
            violation=record.violation,
            rationale=record.rationale,
        )
        for action_type in decision.actions():
            create_action(
                case,
                action_type,
                actor=actor,
                decision=record,
                restricted_feature=decision.restricted_feature
                if action_type == policy.ActionType.RESTRICT_FEATURE
                else "",
            )
        # What the decision means above cases, in this transaction: legal staff get what it
        # calls for (legal/receivers.py), the reporters hear the outcome (reports), a ban lists
        # the account's identifiers and a CSAM decision banks the case's hashes (detection).
        signals.case_decided.send(
            sender=Case, case=case, decision=record, actions=decision.actions(), actor=actor
        )
        # The actions and the acknowledgments go to the platform once this has committed.
        transaction.on_commit(outbox.queue_delivery, robust=True)
    return record


def grant_to_legal(case: Case, *, actor, reason: str) -> None:
    """Legal staff see only the cases granted to them: grant their group this case and its
    evidence, with the reason on the timeline (an escalation to legal, a decision or a hash
    match that calls for a CyberTipline report or a referral). Call inside a transaction."""
    legal = Group.objects.get(name=Role.LEGAL)
    assign_perm("cases.view_case", legal, case)
    assign_perm("cases.view_case_evidence", legal, case)
    record_event(case, CaseEvent.Type.EVIDENCE_ACCESS_GRANTED, actor, to=Role.LEGAL.value,
                 reason=reason)  # fmt: skip


def escalate_case(case: Case, *, actor, to_role: str, reason: str) -> Escalation:
    """Send a case to a senior reviewer, legal staff or the CSO, with a reason.

    The case leaves its reviewer and shows on that role's queue. Legal staff see only the
    cases granted to them, so escalating to legal grants their group this case and its
    evidence. A decided case can still be handed to legal (its state stays decided): what it
    calls for from them may come after the decision (Child Safety Standards §6.3, §6.4).
    """
    if to_role not in ESCALATION_ROLES:
        raise ValueError(f"Cases cannot be escalated to {to_role!r}.")
    if not reason.strip():
        raise ValueError("An escalation needs a reason.")
    with transaction.atomic():
        case = _lock(case)
        if not actor.has_perm("cases.escalate_case"):
            raise PermissionDenied("You may not escalate cases.")
        decided = case.state == S.DECIDED
        if not (
            case.state in (S.NEW, S.IN_REVIEW, S.ESCALATED) or (decided and to_role == Role.LEGAL)
        ):
            raise InvalidTransition(
                f"A {case.get_state_display().lower()} case cannot be escalated"
                + (" (only handed to legal)." if decided else ".")
            )
        escalation = Escalation(case=case, to_role=to_role, reason=reason, escalated_by=actor)
        escalation._history_user = actor
        escalation.save()
        if to_role == Role.LEGAL:
            # The escalation's reason is the reason legal staff get the case and its evidence.
            grant_to_legal(case, actor=actor, reason=reason)
        if not decided:
            if case.assignee_id:
                exposure.end_claim(case, case.assignee_id)
                remove_perm(ASSIGNEE_PERMISSION, case.assignee, case)
            case.assignee = None
            case.claimed_at = None
            case.claim_expires_at = None
            case.escalated_to = to_role
            case.first_action_at = case.first_action_at or timezone.now()  # stops the SLA clock
            if case.state != S.ESCALATED:
                transition(case, S.ESCALATED, actor=actor, reason=reason)
            else:
                _save(case, actor, reason)
        record_event(case, CaseEvent.Type.ESCALATED, actor, to=to_role, reason=reason)
        signals.case_escalated.send(sender=Case, case=case, escalation=escalation, actor=actor)
    return escalation


def add_note(case: Case, *, actor, text: str) -> Note:
    if not text.strip():
        raise ValueError("A note needs text.")
    if not actor.has_perm("cases.add_note"):
        raise PermissionDenied("You may not add notes.")
    with transaction.atomic():
        note = Note(case=case, author=actor, text=text)
        note._history_user = actor
        note.save()
        record_event(case, CaseEvent.Type.NOTE_ADDED, actor, note=note.pk, text=text)
    return note


def close_case(case: Case, *, actor) -> Case:
    if not actor.has_perm("cases.close_case"):
        raise PermissionDenied("You may not close cases.")
    with transaction.atomic():
        case = _lock(case)
        transition(case, S.CLOSED, actor=actor, reason="closed")
    return case


def reopen_case(case: Case, *, actor, reason: str) -> Case:
    """A senior reviewer reopens a decided or closed case; it goes back to the queue."""
    if not actor.has_perm("cases.reopen_case"):
        raise PermissionDenied("You may not reopen cases.")
    if not reason.strip():
        raise ValueError("Reopening needs a reason.")
    with transaction.atomic():
        case = _lock(case)
        if case.state == S.CLOSED and (
            Case.objects.filter(subject_key=case.subject_key)
            .exclude(pk=case.pk)
            .exclude(state=S.CLOSED)
            .exists()
        ):
            raise InvalidTransition("This subject has a newer open case: work there instead.")
        case.escalated_to = ""
        now = timezone.now()
        start_window(case, now, policy.due_at_for(case.priority, now), fresh=True)
        transition(case, S.NEW, actor=actor, reason=reason)
    return case


def timeline(case: Case) -> list[CaseEvent]:
    """Reports, state changes, notes, decisions, escalations and actions in time order.

    The case's creation and each report come from their own rows (as unsaved CaseEvents, so
    the page shows one kind of entry); everything else from the CaseEvent table.
    """
    entries = [CaseEvent(case=case, type=CaseEvent.Type.CREATED, at=case.created_at)]
    entries += [
        CaseEvent(
            case=case,
            type=CaseEvent.Type.REPORT_ADDED,
            at=report.created_at,
            payload={
                "report": report.pk,
                "category": report.category,
                "source": report.source,
                "received_at": report.received_at.isoformat(),
            },
        )
        for report in case.reports.order_by("created_at", "pk")
    ]
    entries += case.events.select_related("actor").order_by("at", "pk")
    return sorted(entries, key=lambda e: e.at)


def tick_checklist_item(case: Case, item: str, *, actor) -> EmergencyChecklistItem:
    """P0 emergency protocol: a step done, with who and when (once; a second tick keeps the
    first)."""
    if not (actor.has_perm("cases.escalate_case") or actor.has_perm("cases.decide_case")):
        raise PermissionDenied("You may not work on the emergency checklist.")
    with transaction.atomic():
        step = (
            EmergencyChecklistItem.objects.select_for_update().filter(case=case, item=item).first()
        )
        if step is None:
            raise ValueError("This case has no such checklist item.")
        if step.done_at is None:
            step.done_by = actor
            step.done_at = timezone.now()
            step._history_user = actor
            step.save()
            record_event(case, CaseEvent.Type.CHECKLIST_TICKED, actor, item=item, label=step.label)
    return step


def retry_delivery(action: EnforcementAction, *, actor) -> bool:
    """The CSO sends a failed action to the platform again (after the platform's outage or a
    fixed secret): it is pending for another BAKKME_WEBHOOK_GIVE_UP_HOURS, with who did it on
    the case's timeline. False when it was not failed (nothing changes)."""
    if not (actor.is_superuser or actor.groups.filter(name=Role.CHILD_SAFETY_OFFICER).exists()):
        raise PermissionDenied("Only the Child Safety Officer sends failed actions again.")
    with transaction.atomic():
        if not outbox.requeue(action):
            return False
        record_event(
            action.case, CaseEvent.Type.DELIVERY_RETRIED, actor, action=action.pk, type=action.type
        )
    return True


def complete_actions(case: Case, action_type: str, *, actor) -> int:
    """The back office carried out the case's pending actions of this type itself (a
    CyberTipline report filed, a law-enforcement referral made): mark them done, in their
    history with who did it. Returns how many."""
    done = 0
    for action in case.actions.filter(type=action_type, status=EnforcementAction.Status.PENDING):
        action.status = EnforcementAction.Status.DONE
        action._history_user = actor
        action.save(update_fields=["status"])
        done += 1
    return done


# --- Automatic actions on a CSAM hash match (policy section 4.3) --------------------------------


def apply_csam_hash_match(item, matches) -> list[EnforcementAction]:
    """An evidence item matched a CSAM bank: at once, pending human review, remove the content
    and suspend the account; the case becomes child-safety work at P1 at least; a CyberTipline
    draft is marked for legal. `matches` are the new reports.HashMatch rows.

    Once per case and content: the same file arriving again adds its match to the timeline but
    no second pair of actions. The actions go to the platform's webhook after commit.
    """
    content_id = (item.report.content_platform_id if item.report_id else "") or (
        item.case.content_platform_id
    )
    detail = [
        {"match": m.pk, "bank": m.entry.bank.name, "entry": m.entry_id, "distance": m.distance}
        for m in matches
    ]
    created = []
    with transaction.atomic():
        case = _lock(item.case)
        automatic = case.actions.filter(
            decision__isnull=True,
            type__in=policy.csam_match_actions(),
            content_platform_id=content_id,
        ).exclude(status=EnforcementAction.Status.CANCELLED)
        if not automatic.exists():
            for action_type in policy.csam_match_actions():
                created.append(
                    create_action(
                        case,
                        action_type,
                        actor=None,
                        content_platform_id=content_id,
                        automatic="csam_hash_match",
                        item=item.pk,
                    )
                )
        floor = policy.csam_match_priority_floor()
        if case.priority > floor or not case.is_child_safety:
            old = case.priority
            case.priority = min(case.priority, floor)
            case.is_child_safety = True
            due = policy.due_at_for(case.priority, case.sla_started_at)
            if due < case.due_at:
                start_window(case, case.sla_started_at, due, fresh=False)
            _save(case, None, "automated CSAM hash match")
            record_event(
                case, CaseEvent.Type.PRIORITY_CHANGED, None, **{"from": old, "to": case.priority}
            )
        record_event(
            case,
            CaseEvent.Type.NOTE_ADDED,
            None,
            text="Automated CSAM hash match: handed to legal for a CyberTipline report.",
            cybertip_draft=True,
            item=item.pk,
            hash_matches=detail,
        )
        # The CyberTipline draft, the grant and legal on shift told: legal/receivers.py.
        signals.csam_hash_matched.send(sender=Case, case=case, item=item, matches=matches)
        if created:
            transaction.on_commit(outbox.queue_delivery, robust=True)
    return created


def lock_case(case: Case) -> Case:
    """The case, locked for this transaction (the other apps' actions that change a case take
    it here first)."""
    return _lock(case)


def create_action(
    case: Case,
    action_type: str,
    *,
    actor,
    decision: Decision | None = None,
    account_platform_id: str | None = None,
    content_platform_id: str | None = None,
    restricted_feature: str = "",
    **event_payload,
) -> EnforcementAction:
    """The one place an enforcement action is created: pending, in the case's history with
    who (or, with actor None, the system) created it, and on its timeline (ACTION_CREATED, with
    `event_payload` such as automatic="csam_hash_match"). The account and content default to
    the case's. The outbox delivers it to the platform once the transaction commits (queue a
    run with deliveries.outbox.queue_delivery)."""
    action = EnforcementAction(
        case=case,
        decision=decision,
        type=action_type,
        account_platform_id=case.account_platform_id
        if account_platform_id is None
        else account_platform_id,
        content_platform_id=case.content_platform_id
        if content_platform_id is None
        else content_platform_id,
        restricted_feature=restricted_feature,
    )
    action._history_user = actor
    action.save()
    record_event(case, CaseEvent.Type.ACTION_CREATED, actor, action=action.pk, type=action_type,
                 **event_payload)  # fmt: skip
    return action


def undo_automatic_actions(
    case: Case, automatic, *, actor, content_id: str, **event_payload
) -> EnforcementAction | None:
    """Undo automatic actions a reviewer overturned: the pending ones are cancelled; when one
    may have been carried out (sent, confirmed, done, or in flight) a reinstate action follows
    (returned). Call inside a transaction holding the case's lock."""
    now = timezone.now()
    reinstate = False
    for action in automatic.select_for_update().exclude(status=EnforcementAction.Status.CANCELLED):
        in_flight = action.in_flight_until is not None and action.in_flight_until > now
        if action.status == EnforcementAction.Status.PENDING:
            action.status = EnforcementAction.Status.CANCELLED
            action._history_user = actor
            action.save()
            record_event(case, CaseEvent.Type.ACTION_CANCELLED, actor, action=action.pk,
                         type=action.type)  # fmt: skip
        if action.status != EnforcementAction.Status.CANCELLED or in_flight:
            reinstate = True
    if not reinstate:
        return None
    undo = create_action(
        case,
        policy.ActionType.REINSTATE,
        actor=actor,
        content_platform_id=content_id,
        **event_payload,
    )
    transaction.on_commit(outbox.queue_delivery, robust=True)
    return undo
