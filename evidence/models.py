import hashlib
import json

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.history import audit_history


class EvidenceKind(models.TextChoices):
    MEDIA = "media", "Media (image, video, audio)"
    COMMUNICATION_LOG = "communication_log", "Communication log"
    ACCOUNT_SNAPSHOT = "account_snapshot", "Account snapshot"
    METADATA = "metadata", "Metadata"
    # The platform's answer to a request for an account's records (legal.records): JSON.
    PLATFORM_RECORDS = "platform_records", "Platform records (IPs, devices, messages)"


class EvidenceProblem(models.TextChoices):
    NONE = "", "None"
    CORRUPT = "corrupt", "Corrupt or truncated image"
    BOMB = "decompression_bomb", "Decompression bomb"
    TOO_LARGE = "too_large_to_analyse", "Too large to analyse"


class EvidenceItem(models.Model):
    """One preserved file. The bytes are in evidence storage, encrypted; this row holds what
    was learnt from them at collection, and the data key wrapped by the master key."""

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="evidence")
    report = models.ForeignKey(
        "reports.Report", null=True, blank=True, on_delete=models.PROTECT, related_name="evidence"
    )
    kind = models.CharField(max_length=20, choices=EvidenceKind.choices)
    original_name = models.CharField(max_length=255, blank=True)
    media_type = models.CharField(max_length=100, help_text="Detected from the bytes.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    md5 = models.CharField(max_length=32, help_text="The hash NCMEC's upload answers with.")
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    exif = models.JSONField(default=dict, blank=True)
    problem = models.CharField(
        max_length=24, choices=EvidenceProblem.choices, blank=True, default=""
    )
    storage_name = models.CharField(max_length=255, editable=False)
    wrapped_key = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=16, editable=False)
    collected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    collected_via = models.ForeignKey(
        "reports.Integration", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    collected_at = models.DateTimeField(default=timezone.now)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["sha256"], name="evidence_sha256"),
            models.Index(fields=["md5"], name="evidence_md5"),
            models.Index(fields=["case", "collected_at"], name="evidence_case"),
            models.Index(
                fields=["kind", "collected_at"],
                condition=models.Q(purged_at__isnull=True),
                name="evidence_retention",
            ),
        ]
        permissions = [
            ("preview_evidenceitem", "Can see blurred previews of evidence"),
            ("download_evidenceitem", "Can download original evidence"),
            ("export_evidence", "Can export evidence packages"),
            ("manage_legal_hold", "Can place and release legal holds"),
        ]

    def __str__(self):
        return f"evidence #{self.pk} ({self.get_kind_display()}, {self.media_type})"

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    @property
    def purged(self) -> bool:
        return self.purged_at is not None


class PreviewSettings(models.Model):
    """A reviewer's own preview settings; organisation defaults come from settings."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preview_settings"
    )
    blur_radius = models.PositiveSmallIntegerField()
    greyscale = models.BooleanField()

    def __str__(self):
        return f"preview settings of {self.user}"


class CustodyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The custody ledger is append-only: events are never changed.")

    def delete(self):
        raise TypeError("The custody ledger is append-only: events are never deleted.")


class CustodyEvent(models.Model):
    """One link of the chain of custody. Append-only: written by evidence.custody.record().

    `hash` covers this event's fields and the previous event's hash (one chain over the whole
    ledger; see evidence/custody.py for why it is global); `mac` is the keyed link over `hash`
    and the previous event's MAC, under the ledger key named by `key_id` (bakkme_safety/ledger.py).
    On PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE on the table; the model refuses
    them too.
    """

    class Action(models.TextChoices):
        COLLECT = "collect", "Collected"
        VIEW = "view", "Viewed (unblurred)"
        PREVIEW = "preview", "Previewed (blurred)"
        DOWNLOAD = "download", "Downloaded"
        EXPORT = "export", "Exported in a package"
        HOLD_PLACED = "hold_placed", "Legal hold placed"
        HOLD_RELEASED = "hold_released", "Legal hold released"
        VERIFY = "verify", "Verified"
        VERIFY_FAILED = "verify_failed", "Verification failed"
        TRANSFER = "transfer", "Transferred"
        DESTROY = "destroy", "Destroyed"
        KEY_ROTATED = "key_rotated", "Data key re-wrapped"

    item = models.ForeignKey(EvidenceItem, on_delete=models.PROTECT, related_name="custody")
    at = models.DateTimeField()
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="The person, or the system part.")
    purpose = models.CharField(max_length=500, blank=True)
    item_sha256 = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    key_id = models.CharField(max_length=16, editable=False, help_text="The ledger key's id.")
    mac = models.CharField(max_length=64, editable=False)

    objects = CustodyQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["item", "at"], name="custody_item_at")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.get_action_display()} #{self.item_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("The custody ledger is append-only: events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The custody ledger is append-only: events are never deleted.")

    def chained_fields(self) -> dict:
        return {
            "item": self.item_id,
            "at": self.at.isoformat(),
            "action": self.action,
            "actor": self.actor_id,
            "actor_name": self.actor_name,
            "purpose": self.purpose,
            "item_sha256": self.item_sha256,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.chained_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class LegalHold(models.Model):
    """Nothing under an active hold is deleted: a case's items, an account's, or chosen items."""

    class Authority(models.TextChoices):
        NCMEC_REPORT = "ncmec_report", "NCMEC CyberTipline report"
        LAW_ENFORCEMENT = "law_enforcement_request", "Law-enforcement request"
        LITIGATION = "litigation", "Litigation"
        LEGAL_FREEZE = "legal_freeze", "Legal freeze (account frozen, records preserved)"

    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="holds"
    )
    account_platform_id = models.CharField(max_length=100, blank=True)
    items = models.ManyToManyField(EvidenceItem, blank=True, related_name="holds")
    reason = models.TextField()
    authority = models.CharField(max_length=30, choices=Authority.choices)
    authority_reference = models.CharField(
        max_length=200, blank=True, help_text="The NCMEC report id, the request's reference..."
    )
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    placed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: indefinite.")
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    release_reason = models.TextField(blank=True)

    history = audit_history(m2m_fields=[items])

    class Meta:
        indexes = [
            models.Index(
                fields=["case"], condition=models.Q(released_at__isnull=True), name="hold_case"
            ),
            models.Index(
                fields=["account_platform_id"],
                condition=models.Q(released_at__isnull=True),
                name="hold_account",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True)
                | models.Q(expires_at__gt=models.F("placed_at")),
                name="hold_expires_after_placed",
            )
        ]

    def __str__(self):
        return f"hold #{self.pk} ({self.get_authority_display()})"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.released_at is None and (self.expires_at is None or self.expires_at > now)


class EvidencePackage(models.Model):
    """A BagIt bag of a case's evidence for a named recipient, built by a django-q2 task and kept
    encrypted in evidence storage like the items; its download link expires."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="packages")
    items = models.ManyToManyField(
        EvidenceItem, blank=True, related_name="packages", help_text="Empty: all of the case's."
    )
    purpose = models.CharField(max_length=500)
    recipient = models.CharField(max_length=200)
    # The recipient's age public key ("age1...", evidence.recipients): when set, the package is
    # also encrypted for it, and what is handed out is the zip's age ciphertext (.zip.age).
    recipient_key = models.CharField(
        "recipient's age public key",
        max_length=100,
        blank=True,
        help_text="When given, the package is encrypted for it: only the recipient opens it.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    progress_note = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    storage_name = models.CharField(max_length=255, blank=True, editable=False)
    wrapped_key = models.BinaryField(null=True, editable=False)
    key_id = models.CharField(max_length=16, blank=True, editable=False)
    # size and sha256: the bytes stored (under the vault's encryption) and handed out: the zip,
    # or, with a recipient key, its age ciphertext. zip_size and zip_sha256: the zip itself,
    # what the recipient gets once they decrypt it (the same as size and sha256 without a key).
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    zip_size = models.BigIntegerField(null=True, blank=True)
    zip_sha256 = models.CharField("SHA-256 of the zip", max_length=64, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The lease of the run building it (evidence.packages): renewed while the build lives; a
    # build whose lease ran out is dead, built again by the task delivered again, or failed.
    lease_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(
        "last heartbeat",
        null=True,
        blank=True,
        editable=False,
        help_text="When the build last renewed its lease.",
    )

    class Meta:
        indexes = [models.Index(fields=["case", "requested_at"], name="package_case")]

    def __str__(self):
        return f"evidence package #{self.pk} (case #{self.case_id})"

    def link_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())
