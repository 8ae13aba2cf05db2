"""What detects: hash banks and their matches, the lexicon and the blocked links, the
detections raised on cases (hash, classifier, keyword, link, behaviour, ban evasion) and their
review, and the ban-evasion list. Moved from reports (the tables keep their names:
SeparateDatabaseAndState, no data moved)."""

from django.conf import settings
from django.db import models

from bakkme_safety.policy import Category
from core.history import audit_history

# --- Hash banks (README "Hash banks and PDQ matching"; matching in detection/matching.py) ------


class SignalType(models.TextChoices):
    PDQ = "pdq", "PDQ (images)"
    MD5 = "md5", "MD5 (exact file)"
    SHA256 = "sha256", "SHA-256 (exact file)"


# Hex digits of each signal type's hash.
SIGNAL_HEX_LENGTH = {SignalType.PDQ: 64, SignalType.MD5: 32, SignalType.SHA256: 64}


class HashBank(models.Model):
    """A bank of known hashes: NCMEC's list, an industry share, or our own confirmed items.

    A match against an enabled bank is recorded; a match against a CSAM bank (is_csam) also
    triggers the automatic actions (cases.actions.apply_csam_hash_match).
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
        db_table = "reports_hashbank"  # the table keeps its name (moved from reports)
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
        db_table = "reports_hashentry"  # the table keeps its name (moved from reports)
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
        db_table = "reports_hashmatch"  # the table keeps its name (moved from reports)
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
        "reports.Report",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="detections",
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
        db_table = "reports_detection"  # the table keeps its name (moved from reports)
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
    history = audit_history(
        excluded_fields=["timeouts", "last_timeout_at"], table_name="reports_historicallexiconterm"
    )

    class Meta:
        db_table = "reports_lexiconterm"  # the table keeps its name (moved from reports)
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
    """A known distribution URL or domain, stored normalised (detection.textsignals). A domain
    entry matches every URL on that domain and its subdomains."""

    class Kind(models.TextChoices):
        URL = "url", "URL"
        DOMAIN = "domain", "Domain"

    value = models.CharField(max_length=2000)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = audit_history(table_name="reports_historicalblockedlink")

    class Meta:
        db_table = "reports_blockedlink"  # the table keeps its name (moved from reports)
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
        db_table = "reports_banevasionidentifier"  # the table keeps its name (moved from reports)
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value", "source_case"], name="banevasion_once_per_case"
            )
        ]
        indexes = [models.Index(fields=["kind", "value"], name="banevasion_lookup")]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.account_platform_id}"
