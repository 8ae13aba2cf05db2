from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case, sees_every_case
from core.admin import ReadOnlyAdminMixin

from .actions import create_integration
from .models import (
    AccountEvent,
    Integration,
    Report,
)


@admin.register(Report)
class ReportAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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


# --- Account events: read-only (README "Detection") ------------------------------------------


@admin.register(AccountEvent)
class AccountEventAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the platform sent to POST /api/v1/events/, as it arrived: the record the behaviour
    rules and the ban-evasion checks read.

    An event hangs off the cases about its actor's account: those who see every case see every
    event; anyone else only the events of accounts whose cases they may see."""

    list_display = (
        "occurred_at",
        "type",
        "actor_platform_id",
        "actor_age_shown",
        "target_platform_id",
        "target_age_shown",
        "mutual_followers",
        "surface",
    )
    list_filter = ("type", "surface", "actor_age_band", "target_age_band")
    search_fields = ("=actor_platform_id", "=target_platform_id", "=idempotency_key")
    date_hierarchy = "occurred_at"
    exclude = ("payload_sha256",)
    show_full_result_count = False
    ordering = ("-occurred_at", "-pk")

    def scope_queryset(self, queryset, request):
        if sees_every_case(request.user):
            return queryset
        accounts = Case.objects.visible_to(request.user).values("account_platform_id")
        return queryset.filter(actor_platform_id__in=accounts)

    @admin.display(description="actor age")
    def actor_age_shown(self, event):
        return event.actor_age if event.actor_age is not None else event.actor_age_band or "—"

    @admin.display(description="other's age")
    def target_age_shown(self, event):
        return event.target_age if event.target_age is not None else event.target_age_band or "—"
