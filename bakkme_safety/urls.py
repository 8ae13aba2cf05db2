from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from reports.api.views import ApiDocsView

admin.site.site_header = "BakkMe Safety back office"
admin.site.site_title = "BakkMe Safety"
admin.site.index_title = "Child safety operations"
admin.site.site_url = None  # no public site behind the back office

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/dashboard/", include("cases.dashboard_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("reports.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="schema"), name="api-docs"),
]
