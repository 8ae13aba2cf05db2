"""Admin for legal holds: the list, placing a hold, and releasing one with a reason.

Holds are placed and released only through evidence.holds; nothing here edits a hold directly.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case
from core.admin import ReadOnlyAdminMixin

from . import holds
from .models import EvidenceItem, LegalHold


class PlaceHoldForm(forms.Form):
    case = forms.IntegerField(
        required=False, min_value=1, help_text="Case number: all its evidence."
    )
    account_platform_id = forms.CharField(
        required=False,
        max_length=100,
        help_text="Platform account id: the evidence of every case about it.",
    )
    item_ids = forms.CharField(
        required=False, help_text="Evidence item numbers, separated by commas."
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    authority = forms.ChoiceField(choices=LegalHold.Authority.choices)
    authority_reference = forms.CharField(
        required=False, max_length=200, help_text="NCMEC report id, request reference..."
    )
    expires_at = forms.DateTimeField(
        required=False, help_text="YYYY-MM-DD HH:MM (UTC). Empty: indefinite."
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Cases and items outside the person's view are answered as if they did not exist.
        self.cases = Case.objects.visible_to(user)

    def clean_case(self):
        number = self.cleaned_data.get("case")
        if number is None:
            return None
        case = self.cases.filter(pk=number).first()
        if case is None:
            raise ValidationError(holds.NO_SUCH_CASE)
        return case

    def clean_item_ids(self):
        text = self.cleaned_data.get("item_ids", "")
        try:
            ids = {int(part) for part in text.replace(" ", "").split(",") if part}
        except ValueError as exc:
            raise ValidationError("Give item numbers separated by commas.") from exc
        items = list(EvidenceItem.objects.filter(pk__in=ids, case__in=self.cases.values("pk")))
        missing = ids - {item.pk for item in items}
        if missing:
            raise ValidationError(holds.no_such_items(missing))
        return items


class ReleaseHoldForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


@admin.register(LegalHold)
class LegalHoldAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = (
        "hold_number",
        "subject",
        "authority",
        "authority_reference",
        "placed_by",
        "placed_at",
        "expires_at",
        "status",
    )
    list_filter = ("authority", ("released_at", admin.EmptyFieldListFilter))
    list_select_related = ("placed_by",)
    search_fields = ("account_platform_id", "authority_reference", "=case__id")
    ordering = ("-placed_at",)
    readonly_fields = [f.name for f in LegalHold._meta.fields] + ["items"]

    @admin.display(description="hold", ordering="pk")
    def hold_number(self, hold):
        return f"#{hold.pk}"

    @admin.display(description="covers")
    def subject(self, hold):
        parts = []
        if hold.case_id:
            parts.append(f"case #{hold.case_id}")
        if hold.account_platform_id:
            parts.append(f"account {hold.account_platform_id}")
        count = hold.items.count()
        if count:
            parts.append(f"{count} item{'s' if count != 1 else ''}")
        return ", ".join(parts)

    @admin.display(description="status")
    def status(self, hold):
        if hold.released_at:
            return "released"
        return "active" if hold.is_active() else "expired"

    def scope_queryset(self, queryset, request):
        return queryset.filter(pk__in=holds.visible_holds(request.user).values("pk"))

    def has_add_permission(self, request):
        return request.user.has_perm(holds.MANAGE_PERMISSION)

    def get_urls(self):
        return [
            path(
                "<int:hold_id>/release/",
                self.admin_site.admin_view(self.release_view),
                name="evidence_legalhold_release",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PlaceHoldForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                hold = holds.place(
                    by=request.user,
                    reason=data["reason"],
                    authority=data["authority"],
                    authority_reference=data["authority_reference"],
                    case=data["case"],
                    account_platform_id=data["account_platform_id"],
                    items=data["item_ids"],
                    expires_at=data["expires_at"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    field = "item_ids" if field == "items" else field
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, f"Hold #{hold.pk} placed.")
                return redirect("admin:evidence_legalhold_change", hold.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Place a legal hold",
            "form": form,
        }
        return TemplateResponse(request, "admin/evidence/hold/place.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        hold = self.get_object(request, object_id)
        extra = {
            "release_form": ReleaseHoldForm(),
            "can_release": hold is not None
            and hold.released_at is None
            and request.user.has_perm(holds.MANAGE_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    change_form_template = "admin/evidence/hold/change_form.html"

    def release_view(self, request, hold_id):
        if request.method != "POST":
            raise Http404("Use the release form on the hold's page.")
        hold = self.get_queryset(request).filter(pk=hold_id).first()
        if hold is None or not self.has_view_permission(request, hold):
            raise Http404("No such hold.")
        if not request.user.has_perm(holds.MANAGE_PERMISSION):
            raise PermissionDenied("You may not release legal holds.")
        form = ReleaseHoldForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the reason for releasing the hold.")
        else:
            try:
                holds.release(hold, by=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(
                    request, f"Hold #{hold.pk} released {timezone.now():%Y-%m-%d %H:%M} UTC."
                )
        return redirect(reverse("admin:evidence_legalhold_change", args=[hold.pk]))
