"""Admin for evidence packages: the list, requesting one, its progress, the download, and
"Build again" for a failed one.

Thin: requests go through evidence.packages.request_package, downloads through
packages.open_download (which checks who may, the expiry and the stored zip's SHA-256, and
records the custody events), building again through packages.rebuild. Nothing is edited or
deleted here.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case
from core.admin import ReadOnlyAdminMixin

from . import access, packages, recipients
from .models import EvidencePackage


class RequestPackageForm(forms.Form):
    case = forms.IntegerField(min_value=1, label="Case number")
    purpose = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the package is for (a law-enforcement request and its reference...).",
    )
    recipient = forms.CharField(max_length=200, help_text="Who receives it.")
    recipient_key = forms.CharField(
        required=False,
        max_length=200,
        label="Recipient's age public key",
        widget=forms.TextInput(attrs={"size": 70, "placeholder": "age1...", "spellcheck": "false"}),
        help_text=(
            "Optional. The package is then encrypted for the recipient, and only they can open "
            "it. The recipient makes the key with age-keygen (age-keygen -o key.txt prints "
            '"Public key: age1..."; rage-keygen works too), keeps key.txt and sends you the '
            "age1... line."
        ),
    )
    item_ids = forms.CharField(
        required=False,
        label="Evidence items",
        help_text="Evidence item numbers, separated by commas. Empty: all of the case's evidence.",
    )

    def clean_recipient_key(self) -> str:
        """A secret key pasted by mistake is refused here too, and not shown back in the form
        (packages.request_package checks every key)."""
        text = self.cleaned_data.get("recipient_key", "")
        if recipients.is_secret_key(text):
            self.data = self.data.copy()
            self.data["recipient_key"] = ""
            raise ValidationError(recipients.SECRET_KEY_GIVEN)
        return text

    def clean_item_ids(self) -> list[int]:
        text = self.cleaned_data.get("item_ids", "")
        try:
            return sorted({int(part) for part in text.replace(" ", "").split(",") if part})
        except ValueError as exc:
            raise ValidationError("Give item numbers separated by commas.") from exc


@admin.register(EvidencePackage)
class EvidencePackageAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "package_number",
        "case",
        "recipient",
        "short_purpose",
        "status",
        "progress_percent",
        "requested_by",
        "requested_at",
        "expires_at",
    )
    list_filter = ("status",)
    list_select_related = ("case", "requested_by")
    ordering = ("-requested_at",)
    fields = readonly_fields = (
        "case",
        "contents",
        "purpose",
        "recipient",
        "recipient_key",
        "requested_by",
        "requested_at",
        "status",
        "progress",
        "progress_note",
        "heartbeat_at",
        "error",
        "size",
        "sha256",
        "zip_size",
        "zip_sha256",
        "built_at",
        "expires_at",
    )
    change_form_template = "admin/evidence/package/change_form.html"

    @admin.display(description="package", ordering="pk")
    def package_number(self, package):
        return f"#{package.pk}"

    @admin.display(description="purpose")
    def short_purpose(self, package):
        return package.purpose if len(package.purpose) <= 60 else package.purpose[:59] + "…"

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, package):
        return f"{package.progress}%"

    @admin.display(description="contents")
    def contents(self, package):
        ids = list(package.items.order_by("pk").values_list("pk", flat=True))
        if not ids:
            return "all of the case's evidence"
        return f"{len(ids)} item{'s' if len(ids) != 1 else ''}: " + ", ".join(
            f"#{pk}" for pk in ids
        )

    def scope_queryset(self, queryset, request):
        """Packages of the cases the person may see: the ones they requested; the CSO (every
        case's evidence) those of every case they can see."""
        queryset = super().scope_queryset(queryset, request)
        if request.user.has_perm(access.CASE_EVIDENCE_PERMISSION):
            return queryset
        return queryset.filter(requested_by=request.user)

    def has_add_permission(self, request):
        return request.user.has_perm(packages.EXPORT_PERMISSION)

    def get_urls(self):
        return [
            path(
                "<int:package_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="evidence_evidencepackage_download",
            ),
            path(
                "<int:package_id>/rebuild/",
                self.admin_site.admin_view(self.rebuild_view),
                name="evidence_evidencepackage_rebuild",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        """Requesting a package replaces the add form."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RequestPackageForm(request.POST or None)
        status = 200
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            case = Case.objects.filter(pk=data["case"]).first()
            try:
                if case is None:
                    raise PermissionDenied
                package = packages.request_package(
                    case,
                    request.user,
                    data["purpose"],
                    data["recipient"],
                    items=data["item_ids"] or None,
                    recipient_key=data["recipient_key"],
                )
            except PermissionDenied:
                form.add_error("case", "No such case, or not one whose evidence you may export.")
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error("item_ids" if field == "items" else field, errors)
                status = 400
            else:
                messages.success(
                    request,
                    f"Package #{package.pk} requested: it is being built in the background.",
                )
                return redirect("admin:evidence_evidencepackage_change", package.pk)
        elif request.method == "POST":
            status = 400  # the form's field errors
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Request an evidence package",
            "form": form,
            "link_hours": settings.BAKKME_PACKAGE_LINK_HOURS,
        }
        return TemplateResponse(
            request, "admin/evidence/package/request.html", context, status=status
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        package = self.get_object(request, object_id)
        extra = {}
        if package is not None:
            Status = EvidencePackage.Status
            building = package.status in (Status.QUEUED, Status.BUILDING)
            extra = {
                "refresh_seconds": settings.BAKKME_PACKAGE_REFRESH_SECONDS if building else None,
                "link_expired": package.link_expired(),
                "can_download": package.status == Status.READY
                and package.requested_by_id == request.user.pk
                and not package.link_expired(),
                "can_rebuild": package.status == Status.FAILED
                and packages.may_rebuild(request.user, package),
                "download_filename": packages.download_filename(package),
                "zip_filename": f"{packages.download_name(package)}.zip",
                "opening_command": packages.opening_command(package),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def rebuild_view(self, request, package_id):
        """POST: "Build again" (packages.rebuild decides who may and when)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        package = self.get_queryset(request).filter(pk=package_id).first()
        if package is None:
            raise Http404("No such evidence package.")
        try:
            packages.rebuild(package, actor=request.user)
        except packages.PackageUnavailable as exc:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Evidence package not built again",
                "package": package,
                "message": str(exc),
            }
            return TemplateResponse(
                request, "admin/evidence/package/unavailable.html", context, status=exc.status
            )
        messages.success(request, f"Package #{package.pk} is being built again.")
        return redirect("admin:evidence_evidencepackage_change", package.pk)

    def download_view(self, request, package_id):
        package = EvidencePackage.objects.select_related("case").filter(pk=package_id).first()
        if package is None:
            raise Http404("No such evidence package.")
        try:
            stream = packages.open_download(package, request.user)
        except packages.PackageUnavailable as exc:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Evidence package not available",
                "package": package,
                "message": str(exc),
            }
            return TemplateResponse(
                request, "admin/evidence/package/unavailable.html", context, status=exc.status
            )
        response = StreamingHttpResponse(
            stream, content_type=packages.download_content_type(package)
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{packages.download_filename(package)}"'
        )
        response["Content-Length"] = str(package.size)
        response["Cache-Control"] = "no-store"
        return response
