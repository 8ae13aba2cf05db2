from core.admin import ReadOnlyAdminMixin

from . import hold_admin, package_admin  # noqa: F401  (their admin classes register themselves)

# --- Evidence items and the custody ledger -------------------------------------------------------
# Read-only: items come in through evidence.vault.collect (the platform's API, the upload form on
# a case's evidence page); the ledger is append-only. Nothing is added, changed or deleted here.
# isort: split

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html

from cases.admin_scoping import CaseScopedAdminMixin
from core.paginators import EstimatedCountPaginator

from . import views
from .models import CustodyEvent, EvidenceItem
from .queries import accessible_cases


class _ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50


@admin.register(EvidenceItem)
class EvidenceItemAdmin(CaseScopedAdminMixin, _ReadOnlyAdmin):
    """The items of the cases the user may reach (evidence.queries.accessible_cases: the case's
    visibility and the evidence rule); an item's page and the per-case evidence pages are
    evidence.views."""

    list_display = (
        "item_number",
        "case_link",
        "kind",
        "media_type",
        "size",
        "short_sha256",
        "problem",
        "collected_at",
        "collected_by",
    )
    list_display_links = ("item_number",)
    list_filter = ("kind", "problem", ("collected_at", admin.DateFieldListFilter))
    list_select_related = ("collected_by",)
    search_fields = ("=sha256", "=md5", "=case__id")
    search_help_text = "SHA-256, MD5 or case number"
    ordering = ("-pk",)  # newest first, by the primary key's index

    def scope_queryset(self, queryset, request):
        return queryset.filter(case__in=accessible_cases(request.user).values("pk"))

    def has_module_permission(self, request):
        return request.user.has_perm("evidence.view_evidenceitem")

    @admin.display(description="item", ordering="pk")
    def item_number(self, item):
        return f"#{item.pk}"

    @admin.display(description="case", ordering="case_id")
    def case_link(self, item):
        url = reverse("admin:evidence_evidenceitem_case", kwargs={"case_id": item.case_id})
        return format_html('<a href="{}">#{}</a>', url, item.case_id)

    @admin.display(description="SHA-256")
    def short_sha256(self, item):
        return format_html('<code title="{}">{}…</code>', item.sha256, item.sha256[:16])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The item's own page (facts, preview, custody) instead of a read-only form."""
        if not str(object_id).isdigit():
            raise Http404("No such evidence item.")
        return views.item_detail(request, int(object_id))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "case/<int:case_id>/", wrap(views.case_evidence), name="evidence_evidenceitem_case"
            ),
            path(
                "case/<int:case_id>/upload/",
                wrap(views.upload),
                name="evidence_evidenceitem_upload",
            ),
            path(
                "<int:item_id>/preview.png",
                wrap(views.preview_image),
                name="evidence_evidenceitem_preview",
            ),
            path("<int:item_id>/unblur/", wrap(views.unblur), name="evidence_evidenceitem_unblur"),
            path(
                "<int:item_id>/unblurred.png",
                wrap(views.unblurred_image),
                name="evidence_evidenceitem_unblurred",
            ),
            path(
                "<int:item_id>/download/",
                wrap(views.download),
                name="evidence_evidenceitem_download",
            ),
            path(
                "preview-settings/",
                wrap(views.preview_settings),
                name="evidence_preview_settings",
            ),
            *super().get_urls(),
        ]


class StaffActorFilter(admin.RelatedFieldListFilter):
    """The actor: staff accounts only (system events are "empty")."""

    def field_choices(self, field, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(user.pk, user.get_username()) for user in staff]


@admin.register(CustodyEvent)
class CustodyEventAdmin(CaseScopedAdminMixin, _ReadOnlyAdmin):
    """The chain of custody, read-only, for whoever holds evidence.view_custodyevent: events of
    the cases the user may see (auditors: all). Metadata only; the bytes are never here."""

    list_display = ("at", "action", "item_link", "case_number", "actor_name", "purpose")
    list_filter = (
        "action",
        ("actor", StaffActorFilter),
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("=item__id", "=item_sha256", "actor_name")
    search_help_text = "Item number, item SHA-256 or actor name"
    list_select_related = ("item",)
    ordering = ("-pk",)  # the ledger's own order (append-only); no sort over the table
    readonly_fields = (
        "at",
        "action",
        "item",
        "actor",
        "actor_name",
        "purpose",
        "item_sha256",
        "detail",
        "prev_hash",
        "hash",
    )
    fields = readonly_fields
    case_path = "item__case"

    def has_module_permission(self, request):
        return request.user.has_perm("evidence.view_custodyevent")

    @admin.display(description="item", ordering="item_id")
    def item_link(self, event):
        url = reverse("admin:evidence_custodyevent_changelist")
        return format_html(
            '<a href="{}?item__id__exact={}">#{}</a>', url, event.item_id, event.item_id
        )

    @admin.display(description="case")
    def case_number(self, event):
        return f"#{event.item.case_id}"
