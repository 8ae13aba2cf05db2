import hashlib
import secrets

from django.db import models

from bakkme_safety.policy import AgeBand, Category, Source, Surface
from core.history import audit_history
from deliveries.models import WebhookDelivery


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Integration(models.Model):
    """A platform system that sends reports over the API, with its own token.

    Only the token's SHA-256 is stored; the token itself is shown once, when created.
    """

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=8, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history()

    def __str__(self):
        return self.name

    def set_new_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_prefix = token[:8]
        return token

    # DRF's IsAuthenticated asks the authenticated principal this.
    @property
    def is_authenticated(self) -> bool:
        return True


class ReportQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Reports of the cases this user may see (the case rule is the one rule)."""
        from cases.models import Case

        return self.filter(case__in=Case.objects.visible_to(user).values("pk"))


class Report(models.Model):
    """One report about one subject, as the platform sent it."""

    integration = models.ForeignKey(Integration, on_delete=models.PROTECT, related_name="reports")
    idempotency_key = models.CharField(max_length=200)
    # SHA-256 of the canonical request body: a key reused for another report is refused.
    payload_sha256 = models.CharField(max_length=64, editable=False)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="reports")

    source = models.CharField(max_length=32, choices=Source.choices)
    category = models.CharField(max_length=32, choices=Category.choices)
    surface = models.CharField(max_length=32, choices=Surface.choices)
    priority = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()

    account_platform_id = models.CharField(max_length=100, blank=True)
    account_username = models.CharField(max_length=150, blank=True)
    account_date_of_birth = models.DateField(null=True, blank=True)
    account_age_band = models.CharField(max_length=16, choices=AgeBand.choices, blank=True)
    account_created_at = models.DateField(null=True, blank=True)

    content_platform_id = models.CharField(max_length=100, blank=True)
    content_type = models.CharField(max_length=32, blank=True)
    content_text = models.TextField(blank=True)
    content_url = models.URLField(max_length=2000, blank=True)

    reporter_platform_id = models.CharField(max_length=100, blank=True)
    reporter_anonymous = models.BooleanField(default=False)
    # For acknowledgments only. Shown to staff holding reports.view_reporter_contact; never
    # sent to the platform or the reported party.
    reporter_contact = models.CharField(max_length=254, blank=True)

    description = models.TextField(blank=True)
    received_at = models.DateTimeField(help_text="When the platform received the report.")
    created_at = models.DateTimeField(auto_now_add=True)

    # No simple-history: a report is written once by the platform's integration and never
    # edited by staff; its row is its record (case changes are in the case's history).
    objects = ReportQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "idempotency_key"],
                name="report_idempotency_key_per_integration",
            ),
        ]
        indexes = [
            models.Index(fields=["case", "received_at"], name="report_case_received"),
            models.Index(fields=["content_platform_id"], name="report_content_id"),
            models.Index(fields=["account_platform_id"], name="report_account_id"),
            models.Index(fields=["received_at"], name="report_received_at"),
            # The CSO dashboard's reports by source and category over a period.
            models.Index(fields=["created_at", "source", "category"], name="report_created_source"),
        ]
        permissions = [("view_reporter_contact", "Can see the reporter's contact")]

    def __str__(self):
        return f"Report {self.pk} ({self.get_category_display()})"


class Acknowledgment(WebhookDelivery):
    """A message to a reporter, sent through the platform's webhook (deliveries/outbox.py).

    "received" when the report is stored, "decided" (with the outcome) when its case is decided.
    Only for a reporter who is not anonymous and can be reached (a contact or a platform id).
    The payload names the reporter and the report, never the reported party.
    """

    class Kind(models.TextChoices):
        RECEIVED = "received", "Report received"
        DECIDED = "decided", "Case decided"

    class Outcome(models.TextChoices):
        ACTION_TAKEN = "action_taken", "Action taken"
        NO_VIOLATION = "no_violation", "No violation"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        CONFIRMED = "confirmed", "Confirmed by the platform"
        FAILED = "failed", "Failed"

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="acknowledgments")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["report", "kind"], name="acknowledgment_once_per_kind")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="ack_delivery_due"),
        ]
        ordering = ["created_at", "pk"]

    def __str__(self):
        return (
            f"{self.get_kind_display()} for report {self.report_id} ({self.get_status_display()})"
        )


class AccountEvent(models.Model):
    """One thing an account did on the platform, as the platform's integration sent it.

    Written once (POST /api/v1/events/), exactly once per idempotency key per integration.
    Ages are the platform's: an age in years or an age band (either side may give either).
    `identifiers` (account_created and login only): device_fingerprint, email, phone, ip.
    """

    class Type(models.TextChoices):
        MESSAGE_SENT = "message_sent", "Message sent"
        FOLLOW_REQUEST = "follow_request", "Follow request"
        GIFT_OR_PAYMENT = "gift_or_payment", "Gift or payment"
        GROUP_INVITE = "group_invite", "Group invite"
        ACCOUNT_CREATED = "account_created", "Account created"
        LOGIN = "login", "Login"

    integration = models.ForeignKey(
        Integration, on_delete=models.PROTECT, related_name="account_events"
    )
    idempotency_key = models.CharField(max_length=200)
    payload_sha256 = models.CharField(max_length=64, editable=False)
    type = models.CharField(max_length=32, choices=Type.choices)
    occurred_at = models.DateTimeField()
    actor_platform_id = models.CharField(max_length=100)
    actor_age = models.PositiveSmallIntegerField(null=True, blank=True)
    actor_age_band = models.CharField(max_length=16, choices=AgeBand.choices, blank=True)
    target_platform_id = models.CharField(max_length=100, blank=True)
    target_age = models.PositiveSmallIntegerField(null=True, blank=True)
    target_age_band = models.CharField(max_length=16, choices=AgeBand.choices, blank=True)
    mutual_followers = models.BooleanField(null=True, blank=True)
    surface = models.CharField(max_length=32, choices=Surface.choices, blank=True)
    identifiers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "idempotency_key"],
                name="accountevent_idempotency_key_per_integration",
            ),
        ]
        indexes = [
            models.Index(fields=["actor_platform_id", "occurred_at"], name="accountevent_actor"),
        ]
        ordering = ["occurred_at", "pk"]

    def __str__(self):
        return f"{self.get_type_display()} by {self.actor_platform_id} at {self.occurred_at}"
