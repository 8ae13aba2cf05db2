from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from bakkme_safety.admin import ReadOnlyAdminMixin

from .models import Integration, Report
from .services import create_integration


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "case",
        "category",
        "surface",
        "source",
        "account_username",
        "received_at",
    )
    list_filter = ("category", "surface", "source")
    list_select_related = ("case",)
    search_fields = ("=account_platform_id", "=account_username", "=content_platform_id")
    ordering = ("-received_at",)
    show_full_result_count = False

    def get_queryset(self, request):
        return Report.objects.visible_to(request.user)

    def get_exclude(self, request, obj=None):
        # The reporter's contact is for acknowledgments: only staff who need it see it.
        if request.user.has_perm("reports.view_reporter_contact"):
            return ("payload_sha256",)
        return ("payload_sha256", "reporter_contact")


@admin.register(Integration)
class IntegrationAdmin(SimpleHistoryAdmin):
    list_display = ("name", "token_prefix", "is_active", "created_at")
    fields = ("name", "is_active")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        integration, token = create_integration(obj.name, actor=request.user)
        obj.pk = integration.pk
        messages.warning(
            request,
            f"The token for {integration.name} is {token} — copy it now: it is shown only once.",
        )

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: its reports keep pointing at it
