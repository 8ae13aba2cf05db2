"""The people who work here: who is on shift, and what the back office tells them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from bakkme_safety.history import audit_history


class StaffProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    on_shift = models.BooleanField(
        default=False, help_text="On duty now: gets the SLA warnings, breaches and emergencies."
    )
    on_shift_since = models.DateTimeField(null=True, blank=True)
    history = audit_history()

    def __str__(self):
        return f"Staff profile of {self.user}"


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
