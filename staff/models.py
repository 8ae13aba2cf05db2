"""The people who work here: who is on shift, and what the back office tells them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.history import audit_history


class BackgroundCheck(models.TextChoices):
    NONE = "none", "None"
    PENDING = "pending", "Pending"
    CLEARED = "cleared", "Cleared"
    ENHANCED_CLEARED = "enhanced_cleared", "Enhanced check cleared"


class StaffProfile(models.Model):
    """One member of staff: their shift, and what child-safety work needs of them.

    The compliance record (trainings, background check) is kept by the CSO or an admin through
    staff.actions.update_compliance_record; what it allows is staff.compliance. Leaving CSAE
    duties is the person's own choice (staff.actions.leave_csae_duties): recorded in the
    history, never counted as a performance figure.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    on_shift = models.BooleanField(
        default=False, help_text="On duty now: gets the SLA warnings, breaches and emergencies."
    )
    on_shift_since = models.DateTimeField(null=True, blank=True)

    csae_training_on = models.DateField(
        "CSAE training", null=True, blank=True, help_text="The day of the last CSAE training."
    )
    general_training_on = models.DateField(
        "general child-safety training",
        null=True,
        blank=True,
        help_text="The day of the last general child-safety training.",
    )
    background_check = models.CharField(
        max_length=20, choices=BackgroundCheck.choices, default=BackgroundCheck.NONE
    )
    background_checked_on = models.DateField(
        "background check date",
        null=True,
        blank=True,
        help_text="When the background check reached its present state.",
    )
    csae_opt_out = models.BooleanField(
        "left CSAE duties", default=False, help_text="The person left CSAE duties themselves."
    )
    csae_opt_out_at = models.DateTimeField(null=True, blank=True)

    history = audit_history()

    def __str__(self):
        return f"Staff profile of {self.user}"


class ExposureInterval(models.Model):
    """A stretch of time a member of staff had a child-safety case open.

    Two sources, both kept simple:
    - a claim: from the claim to the claim's expiry, cut short when the claim ends earlier
      (released, decided, escalated, handed back on leaving CSAE duties);
    - a preview: a blurred preview or an unblurred view of a child-safety case's evidence opens
      BAKKME_EXPOSURE_PREVIEW_MINUTES, and each further view of the same case within that time
      extends it (one row per stretch of viewing, not one per picture).

    Exposure is the length of the union of these intervals (overlaps count once) within the
    shift: staff.exposure.
    """

    class Source(models.TextChoices):
        CLAIM = "claim", "Claim"
        PREVIEW = "preview", "Evidence preview"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exposure_intervals"
    )
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "ended_at"], name="exposure_user_ended")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__gte=models.F("started_at")), name="exposure_ends_after_start"
            )
        ]

    def __str__(self):
        return f"{self.get_source_display()} of case {self.case_id} by {self.user_id}"


class Notification(models.Model):
    """One message to one member of staff: in the admin's list, and by e-mail.

    A notification may be about one case or, when a sweep finds many, list several (case_ids).
    E-mail goes out after the change that caused it has committed; a failure is recorded and
    retried by the next delivery run, and never stops the work that raised the notification.
    """

    class Kind(models.TextChoices):
        SLA_WARNING = "sla_warning", "SLA warning"
        SLA_BREACH = "sla_breach", "SLA breach"
        EMERGENCY = "emergency", "Emergency (P0)"
        EVIDENCE_INTEGRITY = "evidence_integrity", "Evidence integrity failure"
        WEBHOOK_FAILED = "webhook_failed", "Platform webhook failed"
        LEGAL_HANDOFF = "legal_handoff", "Handed to legal"
        LEGAL_DUTY_WARNING = "legal_duty_warning", "Legal deadline approaching"
        LEGAL_DUTY_BREACH = "legal_duty_breach", "Legal deadline missed"
        CYBERTIP_STOPPED = "cybertip_stopped", "CyberTipline filing stopped"
        LOGIN_SPRAY = "login_spray", "Login spray"

    class Email(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"
        NONE = "none", "No address"

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    case_ids = models.JSONField(default=list, blank=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    email_status = models.CharField(max_length=10, choices=Email.choices, default=Email.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_error = models.TextField(blank=True)
    email_next_attempt_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["recipient", "-created_at"],
                condition=Q(read_at__isnull=True),
                name="notification_unread",
            ),
            models.Index(
                fields=["email_next_attempt_at"],
                condition=Q(email_status="pending"),
                name="notification_email_pending",
            ),
        ]

    def __str__(self):
        return self.title


class PrivilegeRequest(models.Model):
    """A privileged role (or superuser) asked for someone: granted only when a second person,
    neither the asker nor the person concerned, approves it (staff.privileges)."""

    class Privilege(models.TextChoices):
        CHILD_SAFETY_OFFICER = "child_safety_officer", "Child Safety Officer"
        LEGAL = "legal", "Legal"
        ADMIN = "admin", "Admin"
        SUPERUSER = "superuser", "Superuser"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved and granted"
        REJECTED = "rejected", "Refused"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="privilege_requests",
        help_text="The person who would get it.",
    )
    privilege = models.CharField(max_length=32, choices=Privilege.choices)
    reason = models.TextField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    history = audit_history()

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "privilege"],
                condition=Q(status="pending"),
                name="privilege_request_one_pending",
            )
        ]

    def __str__(self):
        return f"{self.get_privilege_display()} for {self.user}"
