"""Admin for legal freezes: the freeze page of a case (what will happen, then confirm), lifting a
freeze with a reason, and the list of freezes with their requests' status and the evidence
items that answered them.

Thin: freezing and lifting are legal.freeze calls; the answers arrive over the API.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case
from core.admin import ReadOnlyAdminMixin

from . import freeze
from .models import PreservationRequest


class FreezeForm(forms.Form):
    since = forms.DateTimeField(help_text="The records' period: from (YYYY-MM-DD HH:MM, UTC).")
    until = forms.DateTimeField(help_text="To (YYYY-MM-DD HH:MM, UTC), at the latest now.")
    record_types = forms.MultipleChoiceField(
        choices=PreservationRequest.RecordType.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Records to ask for",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the account is frozen. It stays here: the platform is never told.",
    )


class LiftForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the freeze is lifted (in the case's timeline; the platform is not told).",
    )


def _add_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@admin.register(PreservationRequest)
class PreservationRequestAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = (
        "__str__",
        "case_link",
        "account_platform_id",
        "status",
        "period",
        "requested_by",
        "requested_at",
        "frozen",
        "answered_by",
    )
    list_filter = ("status", ("lifted_at", admin.EmptyFieldListFilter))
    list_select_related = ("requested_by",)
    search_fields = ("account_platform_id", "=case__id")
    readonly_fields = (
        "case_link",
        "account_platform_id",
        "record_types",
        "since",
        "until",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "answered_at",
        "answered_by",
        "freeze_action",
        "hold_link",
        "frozen",
        "lifted_by",
        "lift_reason",
        "unfreeze_action",
        "integration",
        "attempts",
        "last_attempt_at",
        "last_response_code",
        "last_error",
        "sent_at",
    )
    fields = readonly_fields
    actions = ["send_again"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("answers")

    @admin.display(description="case", ordering="case_id")
    def case_link(self, obj):
        url = reverse("admin:legal_preservationrequest_freeze", args=[obj.case_id])
        return format_html('<a href="{}">case #{}</a>', url, obj.case_id)

    @admin.display(description="period")
    def period(self, obj):
        return f"{obj.since:%Y-%m-%d %H:%M} – {obj.until:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="freeze")
    def frozen(self, obj):
        if obj.lifted_at:
            return f"lifted {obj.lifted_at:%Y-%m-%d %H:%M} UTC"
        return "frozen"

    @admin.display(description="hold")
    def hold_link(self, obj):
        if not obj.hold_id:
            return "—"
        url = reverse("admin:evidence_legalhold_change", args=[obj.hold_id])
        return format_html('<a href="{}">hold #{}</a>', url, obj.hold_id)

    @admin.display(description="answered by (evidence)")
    def answered_by(self, obj):
        answers = list(obj.answers.all())
        if not answers:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">evidence #{}</a> ({})',
            (
                (
                    reverse("admin:evidence_evidenceitem_change", args=[a.item_id]),
                    a.item_id,
                    f"{a.received_at:%Y-%m-%d %H:%M} UTC",
                )
                for a in answers
            ),
        )

    def has_send_again_permission(self, request):
        return request.user.has_perm(freeze.FREEZE_PERMISSION)

    @admin.action(description="Send the failed requests again", permissions=["send_again"])
    def send_again(self, request, queryset):
        failed = queryset.filter(status=PreservationRequest.Status.FAILED)
        sent = sum(freeze.retry_records_request(row, actor=request.user) for row in failed)
        self.message_user(request, f"{sent} request(s) queued again.")

    # --- The freeze page of a case ---------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "freeze/case/<int:case_id>/",
                view(self.freeze_view),
                name="legal_preservationrequest_freeze",
            ),
            path(
                "freeze/case/<int:case_id>/lift/",
                view(self.lift_view),
                name="legal_preservationrequest_lift",
            ),
            *super().get_urls(),
        ]

    def _case(self, request, case_id) -> Case:
        """Outside the person's cases: 404, as for a case that does not exist; a role that
        cannot freeze: 403."""
        case = Case.objects.visible_to(request.user).filter(pk=case_id).first()
        if case is None:
            raise Http404(freeze.NO_SUCH_CASE)
        if not request.user.has_perm(freeze.FREEZE_PERMISSION):
            raise PermissionDenied("You may not freeze accounts.")
        return case

    def _page(self, request, case, *, form=None, lift_form=None, confirm=False, status=200):
        active = freeze.active_freeze(case)
        if form is None and active is None:
            since, until = freeze.default_period()
            form = FreezeForm(
                initial={
                    "since": since.strftime("%Y-%m-%d %H:%M"),
                    "until": until.strftime("%Y-%m-%d %H:%M"),
                    "record_types": PreservationRequest.RecordType.values,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Legal freeze of case #{case.pk}",
            "case": case,
            "active": active,
            "form": form,
            "lift_form": lift_form or LiftForm(),
            "confirm": confirm,
            "record_labels": [
                label
                for value, label in PreservationRequest.RecordType.choices
                if form is not None
                and form.is_bound
                and value in form.cleaned_data.get("record_types", [])
            ]
            if confirm
            else [],
            "past": PreservationRequest.objects.filter(case=case, lifted_at__isnull=False),
        }
        return TemplateResponse(
            request, "admin/legal/preservationrequest/freeze.html", context, status=status
        )

    def freeze_view(self, request, case_id):
        """GET: the form. POST: what will happen, then (confirm=yes) the freeze."""
        case = self._case(request, case_id)
        if request.method != "POST":
            return self._page(request, case)
        form = FreezeForm(request.POST)
        if not form.is_valid():
            return self._page(request, case, form=form)
        if request.POST.get("confirm") != "yes":
            return self._page(request, case, form=form, confirm=True)
        data = form.cleaned_data
        try:
            freeze.freeze_account(
                case,
                actor=request.user,
                since=data["since"],
                until=data["until"],
                reason=data["reason"],
                record_types=data["record_types"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
            return self._page(request, case, form=form)
        messages.success(
            request,
            f"Account {case.account_platform_id} frozen; its records were asked for and it is "
            "under a legal hold.",
        )
        return redirect("admin:legal_preservationrequest_freeze", case.pk)

    def lift_view(self, request, case_id):
        if request.method != "POST":
            raise Http404("Use the form on the freeze page.")
        case = self._case(request, case_id)
        form = LiftForm(request.POST)
        if not form.is_valid():
            return self._page(request, case, lift_form=form)
        try:
            freeze.lift_freeze(case, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            _add_errors(form, exc)
            return self._page(request, case, lift_form=form)
        messages.success(request, "The freeze was lifted. The legal hold stays until released.")
        return redirect("admin:legal_preservationrequest_freeze", case.pk)
