"""The CSO dashboard's URLs, under /admin/dashboard/ (included before the admin's own)."""

from django.contrib import admin
from django.urls import path

from . import views as dashboard_views

app_name = "dashboard"

urlpatterns = [
    path("", admin.site.admin_view(dashboard_views.sla_dashboard), name="sla"),
]
