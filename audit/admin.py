"""The audit trail in the admin: a read-only list for auditors, the CSO and admins
(audit.view_auditevent), and its CSV export filtered by user, object, action and time."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path
from django.utils import timezone

from core.admin import ReadOnlyAdminMixin
from core.paginators import EstimatedCountPaginator

from . import actions
from .forms import ExportFilterForm
from .models import AuditEvent

# The changelist's own filters that the export form starts from.
_CHANGELIST_TO_EXPORT = {"action__exact": "action", "at__gte": "since", "at__lt": "until"}


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "action", "actor_name", "object_type", "object_repr", "ip")
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    search_fields = ("actor_name", "object_repr")
    search_help_text = "Who acted, or what it was about (a username, a group)"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    ordering = ("-at", "-pk")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def get_urls(self):
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="audit_auditevent_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        initial = {
            field: request.GET[param]
            for param, field in _CHANGELIST_TO_EXPORT.items()
            if request.GET.get(param)
        }
        extra_context = {**(extra_context or {}), "export_form": ExportFilterForm(initial=initial)}
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ExportFilterForm(request.GET)
        if not form.is_valid():
            errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            return HttpResponseBadRequest(f"Bad filter: {errors}", content_type="text/plain")
        events = actions.filter_events(**form.cleaned_data)
        response = StreamingHttpResponse(
            actions.csv_lines(events), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
