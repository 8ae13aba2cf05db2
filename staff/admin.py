"""Each person's notifications (unread first) and their shift, in the admin."""

from django.contrib import admin, messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from bakkme_safety.admin import ReadOnlyAdminMixin

from . import services
from .models import Notification


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("no", "Unread"), ("yes", "Read")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title_link", "kind", "created_at", "read_at", "email_status")
    list_filter = (ReadFilter, "kind")
    actions = ["mark_read"]
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        # Everyone sees their own notifications only.
        return super().get_queryset(request).filter(recipient=request.user)

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="notification", ordering="created_at")
    def title_link(self, notification):
        weight = "normal" if notification.read_at else "bold"
        return format_html(
            '<a href="{}" style="font-weight:{}">{}</a>',
            reverse("admin:staff_notification_open", args=[notification.pk]),
            weight,
            notification.title,
        )

    @admin.action(description="Mark as read")
    def mark_read(self, request, queryset):
        count = services.mark_read(request.user, list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} marked as read.")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/open/", wrap(self.open_view), name="staff_notification_open"),
            path("read-all/", wrap(self.read_all_view), name="staff_notification_read_all"),
            path("shift/", wrap(self.shift_view), name="staff_shift"),
            *super().get_urls(),
        ]

    def open_view(self, request, pk):
        """Mark read and go to the case (or to the list, for a digest of several)."""
        notification = self.get_queryset(request).filter(pk=pk).first()
        if notification is None:
            raise Http404("No such notification.")
        services.mark_read(request.user, [pk])
        if notification.case_id:
            return redirect(reverse("admin:cases_case_change", args=[notification.case_id]))
        if notification.case_ids:
            ids = ",".join(str(i) for i in notification.case_ids[:200])
            return redirect(reverse("admin:cases_case_changelist") + f"?state=all&id__in={ids}")
        return redirect("admin:staff_notification_changelist")

    def read_all_view(self, request):
        if request.method != "POST":
            raise Http404("Use the button.")
        services.mark_read(request.user)
        return redirect("admin:staff_notification_changelist")

    def shift_view(self, request):
        """Start or end the shift: who is on duty gets the SLA warnings and emergencies."""
        if request.method != "POST":
            raise Http404("Use the button.")
        on = request.POST.get("on_shift") == "1"
        services.set_on_shift(request.user, on)
        messages.success(request, "You are on shift." if on else "Your shift has ended.")
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
            target = reverse("admin:index")
        return redirect(target)
