"""The detection admin: hash banks and entries, hash matches, the lexicon and the blocked
links, detections and their review, the ban-evasion list (README "Detection")."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from simple_history.admin import SimpleHistoryAdmin

from cases.actions import InvalidTransition
from cases.admin_scoping import CaseScopedAdminMixin
from core.admin import ReadOnlyAdminMixin

from .actions import review_detection
from .banevasion import search_pairs
from .models import (
    BanEvasionIdentifier,
    BlockedLink,
    Detection,
    HashBank,
    HashEntry,
    HashMatch,
    LexiconTerm,
)

# --- Hash banks: senior reviewers, the CSO and legal staff (bakkme_safety/roles.py) -----------


@admin.register(HashBank)
class HashBankAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "enabled", "is_csam", "entry_count", "false_positive_count")
    list_filter = ("source", "enabled", "is_csam")
    search_fields = ("name",)
    fields = ("name", "source", "enabled", "is_csam", "signal_types")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_entries=Count("entries"), n_false=Sum("entries__false_positives"))
        )

    @admin.display(description="entries", ordering="n_entries")
    def entry_count(self, bank):
        return bank.n_entries

    @admin.display(description="false positives", ordering="n_false")
    def false_positive_count(self, bank):
        return bank.n_false or 0

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: its matches keep pointing at its entries


@admin.register(HashEntry)
class HashEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "bank", "signal_type", "value", "note", "false_positives", "created_at")
    list_filter = ("signal_type", "bank")
    list_select_related = ("bank",)
    search_fields = ("=value",)
    autocomplete_fields = ("bank",)
    fields = ("bank", "signal_type", "value", "note", "false_positives")
    readonly_fields = ("false_positives",)
    show_full_result_count = False
    ordering = ("-id",)

    def get_readonly_fields(self, request, obj=None):
        # A hash is what its matches and the PDQ index refer to: a wrong one is corrected by
        # adding the right entry (and disabling its bank or noting the mistake), not edited.
        if obj is not None:
            return ("bank", "signal_type", "value", "false_positives")
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HashMatch)
class HashMatchAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    case_path = "item__case"
    list_display = ("id", "item", "case_link", "entry", "bank", "distance", "created_at")
    list_select_related = ("item", "entry__bank")
    list_filter = ("entry__bank",)
    show_full_result_count = False
    ordering = ("-created_at",)

    @admin.display(description="case")
    def case_link(self, match):
        return match.item.case_id

    @admin.display(description="bank")
    def bank(self, match):
        return match.entry.bank.name


# --- Detections and their lists: senior reviewers and the CSO (README "Detection") ------------


@admin.register(LexiconTerm)
class LexiconTermAdmin(SimpleHistoryAdmin):
    list_display = ("pattern", "category", "weight", "enabled", "timeouts", "updated_at")
    list_filter = ("enabled", "category")
    search_fields = ("pattern", "note")
    fields = ("pattern", "category", "weight", "enabled", "note", "timeouts", "last_timeout_at")
    readonly_fields = ("timeouts", "last_timeout_at")

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: detections name their term


@admin.register(BlockedLink)
class BlockedLinkAdmin(SimpleHistoryAdmin):
    list_display = ("value", "kind", "enabled", "note", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("value", "note")
    fields = ("value", "kind", "enabled", "note")

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Detection)
class DetectionAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "case", "method", "summary", "outcome", "reviewed_by", "created_at")
    list_filter = ("method", "outcome")
    list_select_related = ("reviewed_by",)
    show_full_result_count = False
    ordering = ("-created_at",)
    actions = ("confirm", "overturn")

    @admin.display(description="matched")
    def summary(self, detection):
        m = detection.matched or {}
        if detection.method == "keyword":
            return "; ".join(str(s["span"][2]) for s in m.get("spans", []))[:200]
        if detection.method == "link":
            return m.get("url", "")
        if detection.method == "hash":
            return f"{m.get('bank')} entry {m.get('entry')} at {m.get('distance')}"
        if detection.method == "behaviour":
            counts = ", ".join(f"{k} {v}" for k, v in (m.get("counts") or {}).items())
            return f"{m.get('rule')}: {counts} ({len(m.get('events', []))} events)"
        if detection.method == "ban_evasion":
            kinds = ", ".join(m.get("kinds", []))
            return f"{kinds} of {m.get('banned_account')}, banned in case {m.get('original_case')}"
        return ""

    def has_review_permission(self, request):
        return request.user.has_perm("detection.review_detection")

    def _review(self, request, queryset, confirmed: bool):
        done = 0
        for detection in queryset:
            try:
                review_detection(detection, actor=request.user, confirmed=confirmed)
                done += 1
            except (InvalidTransition, PermissionDenied) as exc:
                self.message_user(request, f"#{detection.pk}: {exc}", messages.WARNING)
        self.message_user(request, f"{done} detection(s) reviewed.")

    @admin.action(description="Confirm the selected detections", permissions=["review"])
    def confirm(self, request, queryset):
        self._review(request, queryset, True)

    @admin.action(
        description="Overturn the selected detections (reinstates automatic hash actions)",
        permissions=["review"],
    )
    def overturn(self, request, queryset):
        self._review(request, queryset, False)


@admin.register(BanEvasionIdentifier)
class BanEvasionIdentifierAdmin(CaseScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The identifiers of permanently banned accounts. Listed by the ban (cases.actions);
    searching for an e-mail address or a phone number looks up its hash."""

    list_display = ("kind", "value", "account_platform_id", "source_case", "last_seen_at")
    list_filter = ("kind",)
    search_fields = ("=value",)  # the search box; get_search_results does the looking up
    search_help_text = (
        "An account id, a device fingerprint, an IP, or an e-mail address or phone number "
        "(looked up by its hash)."
    )
    show_full_result_count = False
    ordering = ("-created_at", "-pk")
    case_path = "source_case"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        where = Q(account_platform_id=term)
        for kind, value in search_pairs(term):
            where |= Q(kind=kind, value=value)
        return queryset.filter(where), False
