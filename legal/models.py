"""Legal staff's own records: CyberTipline reports filed with NCMEC, law-enforcement referrals
and the legal process received from law enforcement.

Rows change only through legal.actions (the filing state machine, the hold a preservation
request places); the admin and the commands call the same functions.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.history import audit_history
from deliveries.models import DELIVERY_FIELDS, WebhookDelivery


class CyberTiplineReport(models.Model):
    """One report to NCMEC about one case. Each completed step of the filing is saved before the
    next one starts, so an interrupted filing resumes where it stopped (legal.actions)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTING = "submitting", "Submitting"
        SUBMITTED = "submitted", "Submitted (report id known)"
        UPLOADING = "uploading", "Uploading files"
        FINISHING = "finishing", "Finishing"
        FINISHED = "finished", "Finished"
        RETRACTED = "retracted", "Retracted"
        FAILED_NEEDS_REVIEW = "failed_needs_review", "Failed: needs legal review"

    class Step(models.TextChoices):
        """Where the filing in the background is (legal.actions.request_filing, run_filing)."""

        QUEUED = "queued", "Waiting for a worker"
        SUBMIT = "submit", "Submitting the report"
        UPLOAD = "upload", "Uploading files"
        FILEINFO = "fileinfo", "Describing files (fileinfo)"
        FINISH = "finish", "Finishing"
        DONE = "done", "Done"
        STOPPED = "stopped", "Stopped"

    case = models.ForeignKey(
        "cases.Case", on_delete=models.PROTECT, related_name="cybertipline_reports"
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT)
    xml = models.TextField(blank=True, help_text="The <report> document sent to NCMEC.")
    # What legal staff entered on the draft form (legal/draft.py): the <report> and the
    # <fileDetails> are built from it and validated against NCMEC's schema on every save.
    draft = models.JSONField(default=dict, blank=True)
    report_id = models.CharField(max_length=20, blank=True, help_text="NCMEC's report id.")
    ncmec_message = models.TextField(blank=True, help_text="The last error, NCMEC's or ours.")
    hold = models.ForeignKey(
        "evidence.LegalHold", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    # The filing in the background: the step it is at ("Uploading file 2 of 3"), since when,
    # who pressed File last (the filing acts as them and tells them when it stops), the
    # endpoint that gave the report id, and the lease of the run doing it (a token and its
    # expiry, renewed while the run lives: a second run leaves a live filing alone).
    step = models.CharField(max_length=12, choices=Step.choices, blank=True)
    step_detail = models.CharField(max_length=200, blank=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    endpoint = models.CharField(
        max_length=300, blank=True, help_text="The CyberTipline URL that gave the report id."
    )
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    history = audit_history(excluded_fields=["updated_at", "lease_token", "lease_until"])

    class Meta:
        verbose_name = "CyberTipline report"
        ordering = ["-created_at", "-pk"]
        permissions = [("file_cybertiplinereport", "Can file CyberTipline reports with NCMEC")]
        constraints = [
            # Never a second report id for one case: one report per case unless retracted.
            models.UniqueConstraint(
                fields=["case"],
                condition=~models.Q(status="retracted"),
                name="one_cybertipline_report_per_case",
            )
        ]

    def __str__(self):
        ref = f"NCMEC {self.report_id}" if self.report_id else self.get_status_display()
        return f"CyberTipline report of case #{self.case_id} ({ref})"


class CyberTiplineFile(models.Model):
    """One evidence item of a report: uploaded (file_id, NCMEC's MD5), then described
    (fileinfo)."""

    report = models.ForeignKey(CyberTiplineReport, on_delete=models.CASCADE, related_name="files")
    item = models.ForeignKey("evidence.EvidenceItem", on_delete=models.PROTECT, related_name="+")
    file_id = models.CharField(max_length=100, blank=True)
    ncmec_md5 = models.CharField(max_length=32, blank=True)
    md5 = models.CharField(max_length=32, help_text="Our MD5 of the plaintext.")
    uploaded_at = models.DateTimeField(null=True, blank=True)
    fileinfo_sent = models.BooleanField(default=False)

    class Meta:
        verbose_name = "CyberTipline file"
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["report", "item"], name="cybertipline_file_once")
        ]

    def __str__(self):
        return f"evidence #{self.item_id} in {self.report}"


class LawEnforcementReferral(models.Model):
    """What we sent to a law-enforcement agency about a case, and when."""

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="referrals")
    agency = models.CharField(max_length=200)
    country = models.CharField(max_length=100)
    contact = models.CharField(max_length=300, help_text="Officer, unit, e-mail or phone.")
    sent = models.TextField(help_text="What was sent (a description, not the material).")
    sent_at = models.DateTimeField(default=timezone.now)
    emergency = models.BooleanField(
        default=False, help_text="An emergency referral (imminent danger, P0)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    history = audit_history()

    class Meta:
        verbose_name = "law-enforcement referral"
        ordering = ["-sent_at", "-pk"]
        indexes = [models.Index(fields=["sent_at"], name="referral_sent_at")]

    def __str__(self):
        return f"Referral of case #{self.case_id} to {self.agency}"


class LawEnforcementRequest(models.Model):
    """Legal process received from law enforcement. A preservation request places holds."""

    class ProcessType(models.TextChoices):
        SUBPOENA = "subpoena", "Subpoena"
        COURT_ORDER = "court_order", "Court order"
        SEARCH_WARRANT = "search_warrant", "Search warrant"
        EMERGENCY_DISCLOSURE = "emergency_disclosure", "Emergency disclosure request"
        PRESERVATION_REQUEST = "preservation_request", "Preservation request"
        # Information requests of regulators (the policy's §1.2 regimes).
        OFCOM_REQUEST = "ofcom_request", "Ofcom information notice"
        EUROPEAN_COMMISSION_REQUEST = "ec_request", "European Commission request for information"
        FTC_REQUEST = "ftc_request", "FTC civil investigative demand"
        NATIONAL_REGULATOR_REQUEST = "national_regulator_request", "National regulator request"

    agency = models.CharField(max_length=200)
    process_type = models.CharField(max_length=32, choices=ProcessType.choices)
    reference = models.CharField(max_length=200, blank=True, help_text="The agency's reference.")
    received_on = models.DateField()
    responded_on = models.DateField(null=True, blank=True)
    cases = models.ManyToManyField("cases.Case", blank=True, related_name="le_requests")
    account_platform_ids = models.TextField(
        blank=True, help_text="Platform account ids the request names, one a line."
    )
    notes = models.TextField(blank=True)
    # When the answer is due (from the process type, BAKKME_LE_REQUEST_RESPONSE_HOURS), and what
    # answered it.
    due_at = models.DateTimeField(null=True, blank=True)
    answered_with_packages = models.ManyToManyField(
        "evidence.EvidencePackage", blank=True, related_name="le_requests"
    )
    answered_with_referrals = models.ManyToManyField(
        LawEnforcementReferral, blank=True, related_name="le_requests"
    )
    holds = models.ManyToManyField("evidence.LegalHold", blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    history = audit_history(m2m_fields=[cases])

    class Meta:
        verbose_name = "law-enforcement request"
        ordering = ["-received_on", "-pk"]
        indexes = [models.Index(fields=["received_on"], name="le_request_received")]

    def __str__(self):
        return f"{self.get_process_type_display()} from {self.agency} ({self.received_on})"

    def account_ids(self) -> list[str]:
        return [line.strip() for line in self.account_platform_ids.splitlines() if line.strip()]


class LegalDuty(models.Model):
    """Something legal staff owe, with its deadline: a CyberTipline report to review and file, a
    law-enforcement referral to make, a request to answer, platform records to check, a package
    to hand over (legal/duties.py). Warned and escalated to the CSO once each, like a case SLA;
    done when the work is done (the filing finished, the referral recorded, the answer sent ...).
    """

    class Kind(models.TextChoices):
        CYBERTIP_REPORT = "cybertip_report", "CyberTipline report to file"
        LE_REFERRAL = "le_referral", "Law-enforcement referral to make"
        LE_REQUEST = "le_request", "Law-enforcement request to answer"
        PRESERVATION_CHECK = "preservation_check", "Platform records to check"
        PACKAGE = "package", "Evidence package to hand over"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="legal_duties"
    )
    cybertip_report = models.ForeignKey(
        CyberTiplineReport, null=True, blank=True, on_delete=models.PROTECT, related_name="duties"
    )
    le_request = models.ForeignKey(
        LawEnforcementRequest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="duties",
    )
    package = models.ForeignKey(
        "evidence.EvidencePackage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="legal_duties",
    )
    # Platform records that answered a legal freeze's request, to check (legal.records).
    preservation_request = models.ForeignKey(
        "PreservationRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="duties",
    )
    title = models.CharField(max_length=200)
    reason = models.TextField(blank=True, help_text="Why it reached legal (the hand-off).")
    emergency = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    done_note = models.CharField(max_length=300, blank=True)
    # The deadline clock, as a case's (cases/sla.py): warnings sent, the next one, the breach.
    warnings_sent = models.PositiveSmallIntegerField(default=0)
    next_warning_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "legal duty"
        verbose_name_plural = "legal duties"
        ordering = ["due_at", "pk"]
        indexes = [
            models.Index(fields=["due_at"], condition=models.Q(done_at__isnull=True),
                         name="legalduty_open_due"),
            models.Index(fields=["next_warning_at"],
                         condition=models.Q(done_at__isnull=True, breached_at__isnull=True),
                         name="legalduty_next_warning"),
        ]  # fmt: skip
        constraints = [
            # One open duty per thing owed: a second hand-off of the same case adds nothing.
            models.UniqueConstraint(
                fields=["kind", "case"],
                condition=models.Q(done_at__isnull=True, kind="le_referral"),
                name="legalduty_one_open_referral_per_case",
            ),
            models.UniqueConstraint(
                fields=["cybertip_report"],
                condition=models.Q(done_at__isnull=True),
                name="legalduty_one_open_per_cybertip_report",
            ),
            models.UniqueConstraint(
                fields=["le_request"],
                condition=models.Q(done_at__isnull=True),
                name="legalduty_one_open_per_le_request",
            ),
            models.UniqueConstraint(
                fields=["package"],
                condition=models.Q(done_at__isnull=True),
                name="legalduty_one_open_per_package",
            ),
        ]

    def __str__(self):
        return self.title


# --- A legal freeze (legal/freeze.py, legal/records.py) ------------------------------------------


class PreservationRequest(WebhookDelivery):
    """One legal freeze of a case's account (Child Safety Standards §6.4): the account frozen on
    the platform (an enforcement action), the platform asked for the account's records over a
    period (this row, delivered to its webhook as an "account_records_request"), and a legal
    hold on the account. The platform answers over POST /api/v1/records/ (RecordsAnswer).

    pending -> sent (the platform answered the webhook 2xx) -> answered (records arrived);
    failed when it could not be delivered for BAKKME_WEBHOOK_GIVE_UP_HOURS. `reason` is ours:
    it never leaves the back office. Lifting the freeze (lifted_at) keeps the hold and the
    records.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent to the platform"
        ANSWERED = "answered", "Answered"
        FAILED = "failed", "Failed"

    class RecordType(models.TextChoices):
        IP_ADDRESSES = "ip_addresses", "IP addresses"
        DEVICE_IDENTIFIERS = "device_identifiers", "Device identifiers"
        COMMUNICATION_LOGS = "communication_logs", "Communication logs"

    case = models.ForeignKey(
        "cases.Case", on_delete=models.PROTECT, related_name="preservation_requests"
    )
    account_platform_id = models.CharField(max_length=100)
    record_types = models.JSONField(default=list, help_text="The records asked for.")
    since = models.DateTimeField(help_text="The period asked for: from.")
    until = models.DateTimeField(help_text="The period asked for: to.")
    reason = models.TextField(help_text="Why (ours alone: never sent to the platform).")
    # The platform integration that answers (the one that sent the case's first report); an
    # answer from another integration is refused as if the request did not exist.
    integration = models.ForeignKey(
        "reports.Integration", on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    freeze_action = models.ForeignKey(
        "cases.EnforcementAction", null=True, on_delete=models.PROTECT, related_name="+"
    )
    hold = models.ForeignKey(
        "evidence.LegalHold", null=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.TextField(blank=True)
    unfreeze_action = models.ForeignKey(
        "cases.EnforcementAction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    history = audit_history(excluded_fields=DELIVERY_FIELDS)

    class Meta:
        verbose_name = "legal freeze"
        ordering = ["-requested_at", "-pk"]
        permissions = [
            ("freeze_account", "Can freeze an account and ask the platform for its records")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="preservation_delivery_due"),
        ]
        constraints = [
            # One freeze of a case at a time: lift it before freezing again.
            models.UniqueConstraint(
                fields=["case"],
                condition=models.Q(lifted_at__isnull=True),
                name="one_active_freeze_per_case",
            ),
            models.CheckConstraint(
                condition=models.Q(since__lt=models.F("until")), name="freeze_period_in_order"
            ),
        ]

    def __str__(self):
        return f"Legal freeze #{self.pk} of case #{self.case_id} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class RecordsAnswer(models.Model):
    """One answer of the platform to a PreservationRequest: its JSON preserved as one evidence
    item (kind platform_records), and the IP events kept here for the CyberTipline report
    (legal.records.ip_capture_events). Exactly once per request and idempotency key."""

    request = models.ForeignKey(
        PreservationRequest, on_delete=models.PROTECT, related_name="answers"
    )
    integration = models.ForeignKey(
        "reports.Integration", on_delete=models.PROTECT, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200)
    payload_sha256 = models.CharField(max_length=64, editable=False)
    item = models.ForeignKey("evidence.EvidenceItem", on_delete=models.PROTECT, related_name="+")
    # [{"ip": "192.0.2.1", "at": ISO 8601, "event": "login"}], as the platform sent them.
    ip_events = models.JSONField(default=list)
    counts = models.JSONField(default=dict, help_text="Entries received, per record type.")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "platform records answer"
        ordering = ["received_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "idempotency_key"], name="records_answer_once_per_key"
            )
        ]

    def __str__(self):
        return f"Records answer #{self.pk} to {self.request}"
