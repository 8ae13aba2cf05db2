"""The CSO's SLA dashboard page and its CSV exports.

Thin: the figures and tables come from oversight.dashboard. Mounted under the admin
(oversight/urls.py) with admin_site.admin_view: anonymous and non-staff visitors go to the admin
login; staff without `cases.view_sla_dashboard` get 403.
"""

import csv
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from . import dashboard

PERMISSION = "cases.view_sla_dashboard"


@require_safe
def sla_dashboard(request):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("The SLA dashboard is for the Child Safety Officer and auditors.")
    now = timezone.now()
    period, errors = dashboard.parse_period(request.GET, timezone.localdate(now))
    export = request.GET.get("export")
    if export:
        table = dashboard.export_table(export, request.user, period, now)
        if table is None:
            raise Http404("The dashboard has no such table.")
        return _csv_response(table, period)
    sections = dashboard.dashboard(request.user, period, now)
    context = {
        **admin.site.each_context(request),
        "title": "SLA dashboard",
        "now": now,
        "period": period,
        "period_query": urlencode(
            {"from": period.first_day.isoformat(), "to": period.last_day.isoformat()}
        ),
        "errors": errors,
        "sections": sections,
        "charts": dashboard.charts(sections),
        "definitions": dashboard.definitions(),
    }
    return TemplateResponse(request, "admin/dashboard/sla_dashboard.html", context)


def _csv_response(table: dashboard.Table, period: dashboard.Period) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"sla-{table.name}-{period.first_day}-{period.last_day}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(table.csv_header())
    writer.writerows(table.csv_rows())
    return response
