"""Admin for legal staff: CyberTipline reports (review a case's draft, file it, retract an
unfinished filing) and law-enforcement referrals and requests.

Thin: filing, retracting and the holds of a preservation request are legal.actions calls.
"File" queues the filing and returns at once; a django-q2 task runs it (actions.run_filing)
and the report's page shows each step, reloading itself (a meta refresh: the CSP allows no
inline script) until the filing stops. An interrupted filing is resumed by filing again.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case
from cases.sla import sla_status
from cases.visibility import scope_to_visible_cases
from core.admin import ReadOnlyAdminMixin
from evidence.models import EvidencePackage

from . import actions, duties, filing, freeze_admin  # noqa: F401  (freeze_admin registers itself)
from . import draft as drafts
from .cybertip_client import target
from .cybertip_xml import report_items
from .forms import DraftEditor
from .models import (
    CyberTiplineFile,
    CyberTiplineReport,
    LawEnforcementReferral,
    LawEnforcementRequest,
    LegalDuty,
)


class CaseNumberForm(forms.Form):
    case = forms.IntegerField(min_value=1, help_text="The case to report.")


class FileForm(forms.Form):
    confirm = forms.BooleanField(
        label="I reviewed this report; send it to NCMEC now.",
        error_messages={"required": "Tick the box to confirm you reviewed the report."},
    )


class RetractForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class FileInline(admin.TabularInline):
    model = CyberTiplineFile
    fields = ("item", "file_id", "md5", "ncmec_md5", "uploaded_at", "fileinfo_sent")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CyberTiplineReport)
class CyberTiplineReportAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("__str__", "case", "status", "report_id", "filed_by", "created_at")
    list_filter = ("status",)
    list_select_related = ("filed_by",)
    search_fields = ("report_id", "=case__id")
    readonly_fields = (
        "case",
        "status",
        "report_id",
        "ncmec_message",
        "hold",
        "filed_by",
        "requested_by",
        "endpoint",
        "created_at",
        "submitted_at",
        "finished_at",
        "retracted_at",
        "xml",
    )
    fields = readonly_fields
    inlines = [FileInline]
    change_form_template = "admin/legal/cybertiplinereport/change_form.html"

    def has_add_permission(self, request):
        # "Add" is where a filing starts: a case number, then its draft.
        return request.user.has_perm(actions.FILE_PERMISSION)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "case/<int:case_id>/",
                view(self.draft_view),
                name="legal_cybertiplinereport_draft",
            ),
            path(
                "case/<int:case_id>/file/",
                view(self.file_view),
                name="legal_cybertiplinereport_file",
            ),
            path(
                "<path:object_id>/retract/",
                view(self.retract_view),
                name="legal_cybertiplinereport_retract",
            ),
            *super().get_urls(),
        ]

    def _case(self, request, case_id):
        if not request.user.has_perm(actions.FILE_PERMISSION):
            raise PermissionDenied
        case = actions.visible_cases(request.user).filter(pk=case_id).first()
        if case is None:
            raise Http404("No such case.")
        return case

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CaseNumberForm(request.GET or None)
        if form.is_valid():
            case_id = form.cleaned_data["case"]
            if actions.visible_cases(request.user).filter(pk=case_id).exists():
                return redirect("admin:legal_cybertiplinereport_draft", case_id)
            form.add_error("case", "No such case.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Prepare a CyberTipline report",
            "form": form,
        }
        return TemplateResponse(request, "admin/legal/cybertiplinereport/start.html", context)

    def _draft_page(self, request, case, form, status=200, *, editor=None, refused_xml=""):
        xml, problems = actions.draft(case)
        report = actions.current_report(case)
        sent = bool(report and report.report_id)
        can_edit = request.user.has_perm(actions.FILE_PERMISSION) and drafts.editable(report)
        if editor is None:  # the saved draft, its problems next to their fields
            saved = report.draft if report and report.draft else drafts.current_draft(case)
            editor = DraftEditor(drafts.with_current_files(case, saved), disabled=not can_edit)
            if not sent:
                editor.add_problems(problems)
        editor.item_labels = {
            item.pk: f"evidence #{item.pk} ({item.get_kind_display()}"
            + (f", {item.original_name})" if item.original_name else ")")
            for item in report_items(case)
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"CyberTipline report of case #{case.pk}",
            "case": case,
            "xml": report.xml if sent else xml,
            "problems": [] if sent else problems,
            "report": report,
            "form": form,
            "editor": editor,
            "can_edit": can_edit,
            "refused_xml": refused_xml,
            # Auditors read the draft page; only legal staff and the CSO see "File".
            "can_file": request.user.has_perm(actions.FILE_PERMISSION)
            and not (report and report.status == CyberTiplineReport.Status.FINISHED),
        }
        return TemplateResponse(
            request, "admin/legal/cybertiplinereport/draft.html", context, status=status
        )

    def _draft_case(self, request, case_id, *, edit: bool):
        """Legal staff and the CSO edit a case's draft, auditors read it (403 on a save); a
        case outside the person's cases is "No such case." (404)."""
        user = request.user
        may_file = user.has_perm(actions.FILE_PERMISSION)
        if not (may_file or user.has_perm("legal.view_cybertiplinereport")) or (
            edit and not may_file
        ):
            raise PermissionDenied
        case = actions.visible_cases(user).filter(pk=case_id).first()
        if case is None:
            raise Http404("No such case.")
        return case

    def draft_view(self, request, case_id):
        """GET shows the draft form, its validation state and the XML; POST saves the draft
        (legal.draft.save_draft), refused field by field when NCMEC's schema would be."""
        saving = request.method == "POST"
        case = self._draft_case(request, case_id, edit=saving)
        if not request.user.has_perm(actions.FILE_PERMISSION):
            return self._draft_page(request, case, FileForm())
        # Opening the page creates the case's record and its initial draft when missing.
        report = drafts.open_draft(case, actor=request.user)
        if not saving:
            return self._draft_page(request, case, FileForm())
        if not drafts.editable(report):
            messages.error(request, "This report is being filed or was sent: its draft stays.")
            return self._draft_page(request, case, FileForm(), 409)
        editor = DraftEditor(drafts.with_current_files(case, report.draft), request.POST)
        if not editor.is_valid():
            return self._draft_page(request, case, FileForm(), 400, editor=editor)
        try:
            drafts.save_draft(
                report,
                editor.draft_data(),
                actor=request.user,
                confirm=editor.suggestion_keys("confirm"),
                dismiss=editor.suggestion_keys("dismiss"),
            )
        except drafts.DraftRefused as exc:
            editor.add_problems(exc.problems)
            editor.top_errors.insert(0, "Not saved: NCMEC's schema would refuse the report.")
            return self._draft_page(
                request, case, FileForm(), 400, editor=editor, refused_xml=exc.xml
            )
        except ValidationError as exc:  # sent meanwhile: the draft no longer changes
            editor.top_errors += exc.messages
            return self._draft_page(request, case, FileForm(), 409, editor=editor)
        messages.success(request, "The draft was saved; the report validates.")
        return redirect("admin:legal_cybertiplinereport_draft", case.pk)

    def file_view(self, request, case_id):
        if request.method != "POST":
            raise Http404("Use the form on the draft page.")
        case = self._case(request, case_id)
        form = FileForm(request.POST)
        if not form.is_valid():
            return self._draft_page(request, case, form)
        try:
            report = actions.request_filing(case, request.user)
        except actions.InvalidDraft as exc:
            form.add_error(None, "The report does not validate; nothing was sent.")
            for problem in exc.problems:
                form.add_error(None, str(problem))
            return self._draft_page(request, case, form)
        except actions.FilingRunning as exc:
            messages.warning(request, str(exc))
            return redirect("admin:legal_cybertiplinereport_change", exc.report.pk)
        except actions.FilingError as exc:
            messages.error(request, f"The filing stopped: {exc}")
            if exc.report is not None:
                return redirect("admin:legal_cybertiplinereport_change", exc.report.pk)
            return redirect("admin:legal_cybertiplinereport_draft", case.pk)
        if report.status == CyberTiplineReport.Status.FINISHED:
            messages.info(request, f"CyberTipline report {report.report_id} was filed already.")
        else:
            messages.success(
                request,
                f"Filing started ({target().label}): this page shows each step as it happens.",
            )
        return redirect("admin:legal_cybertiplinereport_change", report.pk)

    def retract_view(self, request, object_id):
        if request.method != "POST":
            raise Http404("Use the form on the report's page.")
        if not request.user.has_perm(actions.FILE_PERMISSION):
            raise PermissionDenied
        report = None
        if str(object_id).isdigit():
            report = self.get_queryset(request).filter(pk=object_id).first()
        if report is None:
            raise Http404("No such report.")
        form = RetractForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the reason for retracting the report.")
        else:
            try:
                actions.retract(report, request.user, reason=form.cleaned_data["reason"])
            except (ValidationError, actions.FilingError) as exc:
                messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
            else:
                messages.success(request, "The report was retracted.")
        return redirect("admin:legal_cybertiplinereport_change", report.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, object_id)
        extra = {
            **_filing_context(report),
            "retract_form": RetractForm(),
            "can_retract": report is not None
            and report.status
            not in (CyberTiplineReport.Status.FINISHED, CyberTiplineReport.Status.RETRACTED)
            and request.user.has_perm(actions.FILE_PERMISSION),
            "can_resume": report is not None
            and report.status
            not in (CyberTiplineReport.Status.FINISHED, CyberTiplineReport.Status.RETRACTED)
            and request.user.has_perm(actions.FILE_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


def _filing_context(report: CyberTiplineReport | None) -> dict:
    """The report page's view of its filing: the step while it runs (the page reloads), and
    when it stopped, NCMEC's message and what to do."""
    if report is None:
        return {}
    now = timezone.now()
    queued = report.step == CyberTiplineReport.Step.QUEUED
    active = queued or filing.running(report, now)
    waited = now - report.step_started_at if queued and report.step_started_at else None
    return {
        "filing_active": active,
        # Nobody took it after a minute: say where to look (the worker, `manage.py qcluster`).
        "no_worker": waited is not None and waited.total_seconds() > 60,
        "filing_stalled": filing.stalled(report, now),
        "refresh_seconds": settings.BAKKME_CYBERTIP_REFRESH_SECONDS if active else None,
        "what_to_do": actions.what_to_do(report, now),
    }


class _VisibleCaseForm(forms.ModelForm):
    """Links only cases visible to the person editing (set by the admin's get_form)."""

    user = None

    def _check(self, cases):
        if not cases:
            return
        try:
            actions.check_request_cases(self.user, cases)
        except PermissionDenied as exc:
            raise ValidationError(str(exc)) from exc


class ReferralForm(_VisibleCaseForm):
    class Meta:
        model = LawEnforcementReferral
        fields = ("case", "agency", "country", "contact", "sent", "sent_at", "emergency")

    def clean_case(self):
        case = self.cleaned_data.get("case")
        self._check([case] if case else [])
        return case


class RequestForm(_VisibleCaseForm):
    class Meta:
        model = LawEnforcementRequest
        fields = (
            "agency",
            "process_type",
            "reference",
            "received_on",
            "due_at",
            "responded_on",
            "cases",
            "account_platform_ids",
            "answered_with_packages",
            "answered_with_referrals",
            "notes",
        )
        help_texts = {
            "due_at": "Empty: from its type (the legal desk's defaults). YYYY-MM-DD HH:MM, UTC.",
        }

    def clean_cases(self):
        cases = list(self.cleaned_data.get("cases") or [])
        self._check(cases)
        return cases


class _UserFormMixin:
    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    # A case outside the person's view (or what hangs off one) is refused like a case that
    # does not exist.
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Case:
            kwargs["queryset"] = Case.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        model = db_field.related_model
        if model is Case:
            kwargs["queryset"] = Case.objects.visible_to(request.user)
        elif model in (EvidencePackage, LawEnforcementReferral):
            kwargs["queryset"] = scope_to_visible_cases(model.objects.all(), request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(LawEnforcementReferral)
class LawEnforcementReferralAdmin(CaseScopedAdminMixin, _UserFormMixin, SimpleHistoryAdmin):
    form = ReferralForm
    list_display = ("__str__", "case", "agency", "country", "sent_at", "emergency")
    list_filter = ("emergency", "country")
    list_select_related = ("case",)
    search_fields = ("agency", "=case__id")
    raw_id_fields = ("case",)
    readonly_fields = ("created_by", "created_at")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        actions.save_referral(obj, request.user)


@admin.register(LawEnforcementRequest)
class LawEnforcementRequestAdmin(CaseScopedAdminMixin, _UserFormMixin, SimpleHistoryAdmin):
    """Legal process received: a request linked to a case the person may not see is not
    theirs to see (actions.visible_requests)."""

    form = RequestForm
    list_display = ("__str__", "agency", "process_type", "received_on", "due_at", "responded_on")
    list_filter = ("process_type",)
    search_fields = ("agency", "reference", "account_platform_ids")
    raw_id_fields = ("cases",)
    filter_horizontal = ("answered_with_packages", "answered_with_referrals")
    readonly_fields = ("holds_placed", "created_by", "created_at")

    def scope_queryset(self, queryset, request):
        return queryset.filter(pk__in=actions.visible_requests(request.user).values("pk"))

    @admin.display(description="holds placed")
    def holds_placed(self, obj):
        return ", ".join(f"#{h.pk}" for h in obj.holds.all()) or "none"

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actions.save_request(
            obj,
            request.user,
            cases=data.get("cases"),
            packages=data.get("answered_with_packages"),
            referrals=data.get("answered_with_referrals"),
        )

    def save_related(self, request, form, formsets, change):
        # The links were set (and the holds placed) by save_request; the rest as usual.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


# --- The legal desk: what legal staff owe (legal/duties.py) -------------------------------------


class OpenDutyFilter(admin.SimpleListFilter):
    """Open duties by default (the work still owed); done ones on request."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open (default)"), ("breached", "Past their deadline"), ("done", "Done")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "done":
            return queryset.filter(done_at__isnull=False)
        if value == "breached":
            return queryset.filter(done_at__isnull=True, due_at__lte=timezone.now())
        return queryset.filter(done_at__isnull=True)


@admin.register(LegalDuty)
class LegalDutyAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The legal desk: the first page legal staff see (BakkmeAdminSite.index sends them here).
    Each duty with its deadline and SLA state, most urgent first, linking to where it is done."""

    list_display = ("work", "kind", "case_link", "due", "sla", "emergency")
    list_display_links = None
    list_filter = (OpenDutyFilter, "kind", "emergency")
    list_select_related = ("case", "cybertip_report", "le_request", "package")
    search_fields = ("title", "=case__id")
    search_help_text = "What is owed, or a case number"
    ordering = ("due_at", "pk")
    show_full_result_count = False
    list_per_page = 100
    actions = ["mark_checked"]
    change_list_template = "admin/legal/legalduty/change_list.html"

    def scope_queryset(self, queryset, request):
        return queryset.filter(pk__in=duties.visible_duties(request.user).values("pk"))

    def has_view_permission(self, request, obj=None):
        perms = ("legal.view_cybertiplinereport", "legal.view_lawenforcementrequest")
        allowed = any(request.user.has_perm(perm) for perm in perms)
        return allowed and self._in_scope(request, obj)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def changelist_view(self, request, extra_context=None):
        extra = {"title": "Legal desk: what legal staff owe"}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A duty's page is where it is carried out."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        duty = self.get_object(request, object_id)
        if duty is None:
            raise Http404("No such legal duty.")
        return redirect(_work_url(duty))

    @admin.display(description="what is owed", ordering="title")
    def work(self, duty):
        return format_html('<a href="{}">{}</a>', _work_url(duty), duty.title)

    @admin.display(description="case", ordering="case_id")
    def case_link(self, duty):
        if not duty.case_id:
            return "—"
        url = reverse("admin:cases_case_change", args=[duty.case_id])
        return format_html('<a href="{}">#{}</a>', url, duty.case_id)

    @admin.display(description="due", ordering="due_at")
    def due(self, duty):
        if duty.done_at:
            return f"done {duty.done_at:%Y-%m-%d %H:%M} UTC"
        return f"{duty.due_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="deadline")
    def sla(self, duty):
        if duty.done_at:
            return "—"
        status = sla_status(duty.started_at, duty.due_at, timezone.now())
        return format_html(
            '<span class="sla sla-{}">{}: {}</span>', status.state, status.state, status.describe()
        )

    def has_checked_permission(self, request):
        return request.user.has_perm("legal.change_lawenforcementrequest")

    @admin.action(description="Mark the selected platform records checked", permissions=["checked"])
    def mark_checked(self, request, queryset):
        done = duties.complete(
            queryset.filter(kind=LegalDuty.Kind.PRESERVATION_CHECK),
            actor=request.user,
            note="records checked",
        )
        self.message_user(request, f"{done} marked checked.")


def _work_url(duty: LegalDuty) -> str:
    """Where the duty is carried out."""
    Kind = LegalDuty.Kind
    if duty.kind == Kind.CYBERTIP_REPORT and duty.case_id:
        return reverse("admin:legal_cybertiplinereport_draft", args=[duty.case_id])
    if duty.kind == Kind.LE_REFERRAL and duty.case_id:
        return reverse("admin:legal_lawenforcementreferral_add") + f"?case={duty.case_id}"
    if duty.kind == Kind.LE_REQUEST and duty.le_request_id:
        return reverse("admin:legal_lawenforcementrequest_change", args=[duty.le_request_id])
    if duty.kind == Kind.PACKAGE and duty.package_id:
        return reverse("admin:evidence_evidencepackage_change", args=[duty.package_id])
    if duty.kind == Kind.PRESERVATION_CHECK and duty.preservation_request_id:
        return reverse(
            "admin:legal_preservationrequest_change", args=[duty.preservation_request_id]
        )
    if duty.case_id:
        return reverse("admin:cases_case_change", args=[duty.case_id])
    return reverse("admin:legal_legalduty_changelist")
