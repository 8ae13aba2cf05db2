from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Upper
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from bakkme_safety.policy import (
    ActionType,
    Category,
    Priority,
    RestrictedFeature,
    Severity,
    Surface,
    Violation,
)
from bakkme_safety.roles import ESCALATION_ROLES, Role
from core.history import audit_history
from deliveries.models import DELIVERY_FIELDS, WebhookDelivery


class CaseState(models.TextChoices):
    NEW = "new", "New"
    IN_REVIEW = "in_review", "In review"
    ESCALATED = "escalated", "Escalated"
    DECIDED = "decided", "Decided"
    CLOSED = "closed", "Closed"


# The states in which a case still waits for people: the queue's default view.
OPEN_STATES = (CaseState.NEW, CaseState.IN_REVIEW, CaseState.ESCALATED)
# A case in one of these states takes new reports about its subject.
ACCEPTS_REPORTS_STATES = (*OPEN_STATES, CaseState.DECIDED)


def sees_every_case(user) -> bool:
    """Whether Case.objects.visible_to(user) is every case (superusers; staff with the whole
    queue, the child-safety cases and a current compliance record): then rows hanging off cases
    need no filter (cases.visibility)."""
    from staff.compliance import may_handle_child_safety

    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    return (
        user.has_perm("cases.view_case")
        and user.has_perm("cases.view_child_safety_case")
        and may_handle_child_safety(user)
    )


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The one rule for which cases a member of staff may see.

        Child-safety cases need `cases.view_child_safety_case` (Child Safety Standards: CSAE
        queue access) and a person who qualifies for child-safety work now
        (staff.compliance.may_handle_child_safety: current CSAE training, enhanced background
        check, not left CSAE duties). The whole queue needs `cases.view_case`; without it, a
        person sees only the cases granted to them or their group (django-guardian object
        permissions).
        """
        from staff.compliance import may_handle_child_safety

        if not (user.is_authenticated and user.is_active and user.is_staff):
            return self.none()
        if user.is_superuser:
            return self
        qs = self
        if not (user.has_perm("cases.view_child_safety_case") and may_handle_child_safety(user)):
            qs = qs.filter(is_child_safety=False)
        if user.has_perm("cases.view_case"):
            return qs
        by_user = CaseUserObjectPermission.objects.filter(
            content_object=OuterRef("pk"), user=user, permission__codename="view_case"
        )
        by_group = CaseGroupObjectPermission.objects.filter(
            content_object=OuterRef("pk"),
            group__in=user.groups.all(),
            permission__codename="view_case",
        )
        return qs.filter(Exists(by_user) | Exists(by_group))

    def open(self):
        return self.filter(state__in=OPEN_STATES)


class Case(models.Model):
    """The reports about one subject: the reported account, or the content when no account."""

    subject_key = models.CharField(max_length=120, editable=False)
    account_platform_id = models.CharField(max_length=100, blank=True)
    account_username = models.CharField(max_length=150, blank=True)
    content_platform_id = models.CharField(max_length=100, blank=True)

    state = models.CharField(max_length=16, choices=CaseState.choices, default=CaseState.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    # The category and surface of the most urgent report: what the queue shows and filters by.
    category = models.CharField(max_length=32, choices=Category.choices)
    surface = models.CharField(max_length=32, choices=Surface.choices)
    is_child_safety = models.BooleanField()

    sla_started_at = models.DateTimeField(help_text="received_at of the report that set due_at")
    due_at = models.DateTimeField()
    report_count = models.PositiveIntegerField(default=0)

    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_cases",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    escalated_to = models.CharField(
        max_length=32,
        choices=[(r.value, r.label) for r in Role],
        blank=True,
    )

    # The SLA clock (cases/sla.py). A reviewer's first decision or escalation stops it; at the
    # due time without one, breached_at is set to due_at (the true time, however late the sweep).
    first_action_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    # How many of the window's warning points (BAKKME_SLA_WARNING_FRACTIONS) were sent, and when
    # the next one falls; reset with each new window.
    sla_warnings_sent = models.PositiveSmallIntegerField(default=0, db_default=0)
    sla_next_warning_at = models.DateTimeField(null=True, blank=True)
    # P0: when the emergency protocol notified the CSO and the on-call senior reviewer.
    emergency_notified_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    history = audit_history()
    objects = CaseQuerySet.as_manager()

    class Meta:
        constraints = [
            # One case per subject takes new reports; closed cases are history.
            models.UniqueConstraint(
                fields=["subject_key"],
                condition=~Q(state="closed"),
                name="case_one_active_per_subject",
            ),
            models.CheckConstraint(
                condition=Q(state__in=[s.value for s in CaseState]), name="case_state_valid"
            ),
            models.CheckConstraint(condition=Q(priority__lte=3), name="case_priority_valid"),
        ]
        indexes = [
            # The queue: open cases, most urgent first.
            models.Index(fields=["priority", "due_at"], name="case_queue_order"),
            models.Index(
                fields=["priority", "due_at"],
                condition=Q(state__in=["new", "in_review", "escalated"]),
                name="case_open_queue",
            ),
            models.Index(fields=["state", "priority", "due_at"], name="case_state_queue"),
            models.Index(fields=["assignee", "state"], name="case_assignee_state"),
            models.Index(fields=["account_platform_id"], name="case_account_id"),
            # Search matches a username in any letter case (iexact: UPPER(...) = UPPER(...)).
            models.Index(Upper("account_username"), name="case_username_upper"),
            models.Index(fields=["content_platform_id"], name="case_content_id"),
            models.Index(fields=["category"], name="case_category"),
            # The SLA sweep's three questions, each answered from a small partial index.
            models.Index(
                fields=["due_at"],
                condition=Q(
                    state__in=["new", "in_review", "escalated"],
                    first_action_at__isnull=True,
                    breached_at__isnull=True,
                ),
                name="case_sla_running_due",
            ),
            models.Index(
                fields=["sla_next_warning_at"],
                condition=Q(
                    state__in=["new", "in_review", "escalated"],
                    first_action_at__isnull=True,
                    breached_at__isnull=True,
                ),
                name="case_sla_next_warning",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(priority=0, emergency_notified_at__isnull=True),
                name="case_emergency_pending",
            ),
            # The CSO dashboard (oversight/dashboard.py): open cases by SLA state, compliance by
            # deadline, time to first action.
            models.Index(
                fields=[
                    "priority",
                    "sla_started_at",
                    "due_at",
                    "first_action_at",
                    "breached_at",
                    "assignee",
                ],
                condition=Q(state__in=["new", "in_review", "escalated"]),
                name="case_open_sla",
            ),  # fmt: skip
            models.Index(
                fields=["first_action_at", "priority", "sla_started_at"],
                condition=Q(first_action_at__isnull=False),
                name="case_first_action",
            ),
        ]
        permissions = [
            ("view_child_safety_case", "Can see child-safety cases"),
            ("claim_case", "Can take cases from the queue and decide the ones claimed"),
            ("decide_case", "Can decide any case"),
            ("escalate_case", "Can escalate cases"),
            ("reopen_case", "Can reopen decided or closed cases"),
            ("close_case", "Can close decided cases"),
            ("view_sla_dashboard", "Can see the SLA dashboard"),
            # Granted per case (django-guardian) to legal staff, with a reason; held globally by
            # the CSO. The assigned reviewer reaches the evidence through the assignment.
            ("view_case_evidence", "Can see the evidence of a case"),
        ]

    def __str__(self):
        return f"Case {self.pk}"

    @property
    def priority_label(self) -> str:
        return Priority(self.priority).label

    def claim_is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return bool(self.assignee_id and self.claim_expires_at and self.claim_expires_at > now)


class CaseUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Case, on_delete=models.CASCADE)


class CaseGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Case, on_delete=models.CASCADE)


class CaseEvent(models.Model):
    """What happened to a case, written by the case services in the same transaction.

    The case timeline reads this table. The actor's name is copied so the record survives a
    renamed or removed account.
    """

    class Type(models.TextChoices):
        CREATED = "created", "Case created"
        REPORT_ADDED = "report_added", "Report added"
        STATE_CHANGED = "state_changed", "State changed"
        CLAIMED = "claimed", "Claimed"
        RELEASED = "released", "Claim released"
        NOTE_ADDED = "note_added", "Note added"
        ESCALATED = "escalated", "Escalated"
        DECIDED = "decided", "Decided"
        ACTION_CREATED = "action_created", "Enforcement action created"
        ACTION_CANCELLED = "action_cancelled", "Enforcement action cancelled"
        PRIORITY_CHANGED = "priority_changed", "Priority changed"
        SLA_WARNING = "sla_warning", "SLA warning"
        SLA_BREACHED = "sla_breached", "SLA breached"
        EMERGENCY = "emergency", "Emergency protocol started"
        CHECKLIST_TICKED = "checklist_ticked", "Emergency checklist item done"
        EVIDENCE_ACCESS_GRANTED = "evidence_access_granted", "Evidence access granted"
        EVIDENCE_ACCESS_REVOKED = "evidence_access_revoked", "Evidence access revoked"
        HOLD_PLACED = "hold_placed", "Legal hold placed"
        HOLD_RELEASED = "hold_released", "Legal hold released"
        LEGAL_HANDOFF = "legal_handoff", "Handed to legal"
        DELIVERY_RETRIED = "delivery_retried", "Delivery to the platform retried"
        HASHES_BANKED = "hashes_banked", "Evidence hashes added to the internal bank"
        DETECTION_REVIEWED = "detection_reviewed", "Detection confirmed or overturned"
        # A legal freeze (legal.freeze): the account frozen, its records asked for, held.
        ACCOUNT_FROZEN = "account_frozen", "Account frozen (legal freeze)"
        FREEZE_LIFTED = "freeze_lifted", "Account freeze lifted"
        PLATFORM_RECORDS = "platform_records", "Platform records received"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32, choices=Type.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["case", "at"], name="caseevent_case_at")]
        ordering = ["at", "pk"]

    def __str__(self):
        return f"{self.get_type_display()} on case {self.case_id}"


class Note(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"Note on case {self.case_id}"


class Escalation(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="escalations")
    to_role = models.CharField(
        max_length=32, choices=[(r.value, r.label) for r in ESCALATION_ROLES]
    )
    reason = models.TextField()
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"Escalation of case {self.case_id} to {self.get_to_role_display()}"


class Decision(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="decisions")
    violation = models.CharField(max_length=40, choices=Violation.choices)
    rationale = models.TextField()
    enticement = models.BooleanField(
        default=False,
        help_text="Enticement of a minor (18 U.S.C. 2422(b)): also reported to NCMEC.",
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, blank=True)
    restricted_feature = models.CharField(
        max_length=32, choices=RestrictedFeature.choices, blank=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["created_at", "violation"], name="decision_created")]

    def __str__(self):
        return f"{self.get_violation_display()} on case {self.case_id}"


class EnforcementAction(WebhookDelivery):
    """An action a decision prescribes, delivered to the platform's webhook (deliveries/outbox.py).

    pending -> sent (the platform answered 2xx) -> confirmed (its answer said it carried the
    action out); failed when it could not be delivered for BAKKME_WEBHOOK_GIVE_UP_HOURS.
    The delivery bookkeeping (attempts, answers) is not in the history: the row holds the last
    answer, and the status changes are the system's, not a person's.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        CONFIRMED = "confirmed", "Confirmed by the platform"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="actions")
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="actions"
    )
    type = models.CharField(max_length=32, choices=ActionType.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    account_platform_id = models.CharField(max_length=100, blank=True)
    content_platform_id = models.CharField(max_length=100, blank=True)
    restricted_feature = models.CharField(
        max_length=32, choices=RestrictedFeature.choices, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history(excluded_fields=DELIVERY_FIELDS)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="action_status_created"),
            models.Index(fields=["status", "next_attempt_at"], name="action_delivery_due"),
            models.Index(fields=["created_at", "type", "status"], name="action_created"),
        ]

    def __str__(self):
        return f"{self.get_type_display()} ({self.get_status_display()})"


class SlaBreach(models.Model):
    """One missed deadline: a case window that ran out without a first action.

    Written once per window by the SLA sweep (the unique constraint is the backstop); the CSO
    dashboard reads it. breached_at is the deadline itself, detected_at when the sweep saw it.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="breaches")
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    sla_started_at = models.DateTimeField()
    breached_at = models.DateTimeField()
    detected_at = models.DateTimeField()
    held_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "breached_at"], name="slabreach_once_per_window"
            )
        ]
        indexes = [models.Index(fields=["breached_at"], name="slabreach_at")]
        ordering = ["breached_at", "pk"]

    def __str__(self):
        return f"SLA breach on case {self.case_id} at {self.breached_at:%Y-%m-%d %H:%M}"


class EmergencyChecklistItem(models.Model):
    """P0 emergency protocol: each step is ticked with who did it and when."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="checklist")
    item = models.CharField(max_length=40)
    label = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField()
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    history = audit_history()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "item"], name="checklist_item_once_per_case")
        ]
        ordering = ["case", "position"]

    def __str__(self):
        return self.label
