"""Admin for legal staff: CyberTipline reports (review a case's draft, file it, retract an
unfinished filing) and law-enforcement referrals and requests.

Thin: filing, retracting and the holds of a preservation request are legal.services calls.
Filing runs synchronously in the request (a handful of calls to NCMEC, each with its timeout and
retries); an interrupted filing is resumed by filing again.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from simple_history.admin import SimpleHistoryAdmin

from bakkme_safety.admin import ReadOnlyAdminMixin
from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case

from . import services
from .models import (
    CyberTiplineFile,
    CyberTiplineReport,
    LawEnforcementReferral,
    LawEnforcementRequest,
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
        return request.user.has_perm(services.FILE_PERMISSION)

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
        if not request.user.has_perm(services.FILE_PERMISSION):
            raise PermissionDenied
        case = services.visible_cases(request.user).filter(pk=case_id).first()
        if case is None:
            raise Http404("No such case.")
        return case

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CaseNumberForm(request.GET or None)
        if form.is_valid():
            case_id = form.cleaned_data["case"]
            if services.visible_cases(request.user).filter(pk=case_id).exists():
                return redirect("admin:legal_cybertiplinereport_draft", case_id)
            form.add_error("case", "No such case.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Prepare a CyberTipline report",
            "form": form,
        }
        return TemplateResponse(request, "admin/legal/cybertiplinereport/start.html", context)

    def _draft_page(self, request, case, form, status=200):
        xml, problems = services.draft(case)
        report = services.current_report(case)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"CyberTipline report of case #{case.pk}",
            "case": case,
            "xml": report.xml if report and report.report_id else xml,
            "problems": [] if report and report.report_id else problems,
            "report": report,
            "form": form,
            "can_file": not (report and report.status == CyberTiplineReport.Status.FINISHED),
        }
        return TemplateResponse(
            request, "admin/legal/cybertiplinereport/draft.html", context, status=status
        )

    def draft_view(self, request, case_id):
        case = self._case(request, case_id)
        return self._draft_page(request, case, FileForm())

    def file_view(self, request, case_id):
        if request.method != "POST":
            raise Http404("Use the form on the draft page.")
        case = self._case(request, case_id)
        form = FileForm(request.POST)
        if not form.is_valid():
            return self._draft_page(request, case, form)
        try:
            report = services.file_report(case, request.user)
        except services.InvalidDraft as exc:
            form.add_error(None, "The report does not validate; nothing was sent.")
            for problem in exc.problems:
                form.add_error(None, str(problem))
            return self._draft_page(request, case, form)
        except services.FilingError as exc:
            messages.error(request, f"The filing stopped: {exc}")
            if exc.report is not None:
                return redirect("admin:legal_cybertiplinereport_change", exc.report.pk)
            return redirect("admin:legal_cybertiplinereport_draft", case.pk)
        messages.success(request, f"CyberTipline report {report.report_id} filed with NCMEC.")
        return redirect("admin:legal_cybertiplinereport_change", report.pk)

    def retract_view(self, request, object_id):
        if request.method != "POST":
            raise Http404("Use the form on the report's page.")
        if not request.user.has_perm(services.FILE_PERMISSION):
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
                services.retract(report, request.user, reason=form.cleaned_data["reason"])
            except (ValidationError, services.FilingError) as exc:
                messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
            else:
                messages.success(request, "The report was retracted.")
        return redirect("admin:legal_cybertiplinereport_change", report.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, object_id)
        extra = {
            "retract_form": RetractForm(),
            "can_retract": report is not None
            and report.status
            not in (CyberTiplineReport.Status.FINISHED, CyberTiplineReport.Status.RETRACTED)
            and request.user.has_perm(services.FILE_PERMISSION),
            "can_resume": report is not None
            and report.status
            not in (CyberTiplineReport.Status.FINISHED, CyberTiplineReport.Status.RETRACTED)
            and request.user.has_perm(services.FILE_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


class _VisibleCaseForm(forms.ModelForm):
    """Links only cases visible to the person editing (set by the admin's get_form)."""

    user = None

    def _check(self, cases):
        if not cases:
            return
        try:
            services.check_request_cases(self.user, cases)
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
            "responded_on",
            "cases",
            "account_platform_ids",
            "notes",
        )

    def clean_cases(self):
        cases = list(self.cleaned_data.get("cases") or [])
        self._check(cases)
        return cases


class _UserFormMixin:
    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    # A case outside the person's view is refused like a case that does not exist.
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Case:
            kwargs["queryset"] = Case.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.related_model is Case:
            kwargs["queryset"] = Case.objects.visible_to(request.user)
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
        services.save_referral(obj, request.user)


@admin.register(LawEnforcementRequest)
class LawEnforcementRequestAdmin(CaseScopedAdminMixin, _UserFormMixin, SimpleHistoryAdmin):
    """Legal process received: a request linked to a case the person may not see is not
    theirs to see (services.visible_requests)."""

    form = RequestForm
    list_display = ("__str__", "agency", "process_type", "received_on", "responded_on")
    list_filter = ("process_type",)
    search_fields = ("agency", "reference", "account_platform_ids")
    raw_id_fields = ("cases",)
    readonly_fields = ("holds_placed", "created_by", "created_at")

    def scope_queryset(self, queryset, request):
        return queryset.filter(pk__in=services.visible_requests(request.user).values("pk"))

    @admin.display(description="holds placed")
    def holds_placed(self, obj):
        return ", ".join(f"#{h.pk}" for h in obj.holds.all()) or "none"

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.save_request(obj, request.user, cases=form.cleaned_data.get("cases"))

    def save_related(self, request, form, formsets, change):
        # The cases were set (and the holds placed) by save_request; the rest as usual.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
