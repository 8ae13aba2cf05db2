import hashlib
import secrets

from django.conf import settings
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


# --- Hash banks (README "Hash banks and PDQ matching"; matching in reports/matching.py) --------


class SignalType(models.TextChoices):
    PDQ = "pdq", "PDQ (images)"
    MD5 = "md5", "MD5 (exact file)"
    SHA256 = "sha256", "SHA-256 (exact file)"


# Hex digits of each signal type's hash.
SIGNAL_HEX_LENGTH = {SignalType.PDQ: 64, SignalType.MD5: 32, SignalType.SHA256: 64}


class HashBank(models.Model):
    """A bank of known hashes: NCMEC's list, an industry share, or our own confirmed items.

    A match against an enabled bank is recorded; a match against a CSAM bank (is_csam) also
    triggers the automatic actions (cases.services.apply_csam_hash_match).
    """

    class BankSource(models.TextChoices):
        NCMEC = "ncmec", "NCMEC"
        INDUSTRY = "industry", "Industry sharing"
        INTERNAL = "internal", "Internal"

    name = models.CharField(max_length=100, unique=True)
    source = models.CharField(max_length=16, choices=BankSource.choices)
    enabled = models.BooleanField(default=True)
    is_csam = models.BooleanField(
        default=True, help_text="A match at once removes the content and suspends the account."
    )
    # Comma-separated SignalType values the bank takes (validated in clean()).
    signal_types = models.CharField(max_length=32, default="pdq,md5,sha256")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def signal_type_list(self) -> list[str]:
        return [s.strip() for s in self.signal_types.split(",") if s.strip()]

    def clean(self):
        from django.core.exceptions import ValidationError

        types = self.signal_type_list()
        unknown = [s for s in types if s not in SignalType.values]
        if unknown or not types:
            raise ValidationError(
                {"signal_types": f"Give a comma-separated list of {', '.join(SignalType.values)}."}
            )
        self.signal_types = ",".join(types)


class HashEntry(models.Model):
    """One known hash in a bank: lower-case hex, validated per signal type."""

    bank = models.ForeignKey(HashBank, on_delete=models.CASCADE, related_name="entries")
    signal_type = models.CharField(max_length=8, choices=SignalType.choices)
    value = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Matches a reviewer overturned: shown in the bank's admin.
    false_positives = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bank", "signal_type", "value"], name="hashentry_unique_per_bank"
            )
        ]
        indexes = [models.Index(fields=["signal_type", "value"], name="hashentry_lookup")]
        verbose_name_plural = "hash entries"

    def __str__(self):
        return f"{self.signal_type}:{self.value[:16]}… ({self.bank})"

    def clean(self):
        from django.core.exceptions import ValidationError

        from .hashbanks import normalise_hash

        try:
            self.value = normalise_hash(self.signal_type, self.value)
        except ValueError as exc:
            raise ValidationError({"value": str(exc)}) from None


class HashMatch(models.Model):
    """An evidence item matched a bank entry at ingest (distance 0 for exact hashes)."""

    item = models.ForeignKey(
        "evidence.EvidenceItem", on_delete=models.CASCADE, related_name="hash_matches"
    )
    # PROTECT: the record of why automatic actions happened outlives a careless delete;
    # disable the bank instead.
    entry = models.ForeignKey(HashEntry, on_delete=models.PROTECT, related_name="matches")
    distance = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "entry"], name="hashmatch_once_per_item")
        ]
        ordering = ["-created_at", "pk"]
        verbose_name_plural = "hash matches"

    def __str__(self):
        return f"Item {self.item_id} matched entry {self.entry_id} at distance {self.distance}"


# --- Detections: automated signals on a case (README "Detection") ------------------------------


class DetectionMethod(models.TextChoices):
    HASH = "hash", "Hash match"
    CLASSIFIER = "classifier", "Classifier"
    KEYWORD = "keyword", "Keyword (lexicon)"
    LINK = "link", "Blocked link"
    BEHAVIOUR = "behaviour", "Behaviour rule"
    BAN_EVASION = "ban_evasion", "Ban-evasion identifier"


class Detection(models.Model):
    """Something automatic flagged on a case, with what matched, and a reviewer's verdict.

    `matched` by method: hash {"match", "entry", "bank", "signal_type", "distance"}; keyword
    {"spans": [{"field", "span": [start, end, text], "term", "category", "weight"}], "score"};
    link {"url", "field", "blocked", "kind", "blocked_value"}; behaviour {"actor", "rule",
    "events", ...}; ban_evasion {"original_case", "banned_account", "kinds", "account_event",
    "action"} (the automatic suspension, when one was taken).
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending review"
        CONFIRMED = "confirmed", "Confirmed"
        OVERTURNED = "overturned", "Overturned"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="detections")
    method = models.CharField(max_length=16, choices=DetectionMethod.choices)
    matched = models.JSONField(default=dict)
    report = models.ForeignKey(
        Report, null=True, blank=True, on_delete=models.SET_NULL, related_name="detections"
    )
    item = models.ForeignKey(
        "evidence.EvidenceItem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="detections",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["case", "created_at"], name="detection_case"),
            models.Index(fields=["created_at", "method"], name="detection_created_method"),
        ]
        permissions = [("review_detection", "Can confirm or overturn a detection")]

    def __str__(self):
        return f"{self.get_method_display()} on case {self.case_id} ({self.get_outcome_display()})"

    def spans(self) -> list:
        return self.matched.get("spans", []) if isinstance(self.matched, dict) else []


class LexiconTerm(models.Model):
    """A coded term or pattern (a Python regular expression, matched case-insensitively) that
    raises a keyword detection when a report's text or a message log contains it."""

    pattern = models.CharField(max_length=500)
    category = models.CharField(max_length=32, choices=Category.choices)
    weight = models.PositiveSmallIntegerField(default=1)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Scans the pattern ran out of time on (BAKKME_LEXICON_TIMEOUT_SECONDS): rewrite it.
    timeouts = models.PositiveIntegerField(default=0, editable=False)
    last_timeout_at = models.DateTimeField(null=True, blank=True, editable=False)
    history = audit_history(excluded_fields=["timeouts", "last_timeout_at"])

    class Meta:
        ordering = ["pattern", "pk"]

    def __str__(self):
        return self.pattern

    def clean(self):
        from django.core.exceptions import ValidationError

        from .textsignals import compile_pattern

        try:
            compile_pattern(self.pattern)
        except ValueError as exc:
            raise ValidationError({"pattern": str(exc)}) from None


class BlockedLink(models.Model):
    """A known distribution URL or domain, stored normalised (reports.textsignals). A domain
    entry matches every URL on that domain and its subdomains."""

    class Kind(models.TextChoices):
        URL = "url", "URL"
        DOMAIN = "domain", "Domain"

    value = models.CharField(max_length=2000)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history()

    class Meta:
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="blockedlink_unique"),
        ]

    def __str__(self):
        return f"{self.kind}: {self.value}"

    def save(self, *args, **kwargs):
        """Stored normalised however it was made (admin form, code, a data import)."""
        self.clean()
        super().save(*args, **kwargs)

    def clean(self):
        from django.core.exceptions import ValidationError

        from .textsignals import normalise_domain, normalise_url

        try:
            if self.kind == self.Kind.DOMAIN:
                self.value = normalise_domain(self.value)
            else:
                self.value = normalise_url(self.value)
        except ValueError as exc:
            raise ValidationError({"value": str(exc)}) from None


# --- Account events and behaviour rules (README "Detection"; rules in reports/rules.py) --------


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


class BanEvasionIdentifier(models.Model):
    """An identifier of a permanently banned account (reports/banevasion.py): a device
    fingerprint, a normalised e-mail's SHA-256, a phone number's SHA-256, or an IP address.
    created_at is when it was listed; last_seen_at when the banned account last used it (an IP
    matches only within BAKKME_BAN_EVASION_IP_DAYS of that: addresses are reassigned)."""

    class Kind(models.TextChoices):
        DEVICE = "device", "Device fingerprint"
        EMAIL_HASH = "email_hash", "E-mail (SHA-256)"
        PHONE_HASH = "phone_hash", "Phone (SHA-256)"
        IP = "ip", "IP address"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=200)
    account_platform_id = models.CharField(max_length=100)
    source_case = models.ForeignKey(
        "cases.Case", on_delete=models.PROTECT, related_name="ban_evasion_identifiers"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value", "source_case"], name="banevasion_once_per_case"
            )
        ]
        indexes = [models.Index(fields=["kind", "value"], name="banevasion_lookup")]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.account_platform_id}"
