"""Legal staff's own records: CyberTipline reports filed with NCMEC, law-enforcement referrals
and the legal process received from law enforcement.

Rows change only through legal.services (the filing state machine, the hold a preservation
request places); the admin and the commands call the same functions.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from bakkme_safety.history import audit_history


class CyberTiplineReport(models.Model):
    """One report to NCMEC about one case. Each completed step of the filing is saved before the
    next one starts, so an interrupted filing resumes where it stopped (legal.services)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTING = "submitting", "Submitting"
        SUBMITTED = "submitted", "Submitted (report id known)"
        UPLOADING = "uploading", "Uploading files"
        FINISHING = "finishing", "Finishing"
        FINISHED = "finished", "Finished"
        RETRACTED = "retracted", "Retracted"
        FAILED_NEEDS_REVIEW = "failed_needs_review", "Failed: needs legal review"

    case = models.ForeignKey(
        "cases.Case", on_delete=models.PROTECT, related_name="cybertipline_reports"
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT)
    xml = models.TextField(blank=True, help_text="The <report> document sent to NCMEC.")
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
    history = audit_history(excluded_fields=["updated_at"])

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

    agency = models.CharField(max_length=200)
    process_type = models.CharField(max_length=24, choices=ProcessType.choices)
    reference = models.CharField(max_length=200, blank=True, help_text="The agency's reference.")
    received_on = models.DateField()
    responded_on = models.DateField(null=True, blank=True)
    cases = models.ManyToManyField("cases.Case", blank=True, related_name="le_requests")
    account_platform_ids = models.TextField(
        blank=True, help_text="Platform account ids the request names, one a line."
    )
    notes = models.TextField(blank=True)
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
