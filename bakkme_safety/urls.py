from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from reports.api.views import ApiDocsView
from staff import two_factor_views

admin.site.site_header = "BakkMe Safety back office"
admin.site.site_title = "BakkMe Safety"
admin.site.index_title = "Child safety operations"
admin.site.site_url = None  # no public site behind the back office

# The second factor (staff.two_factor): under /admin/ like every staff page, before the
# admin's own URLs; reachable with a password-only session (VerifiedFactorMiddleware lets it in).
two_factor_patterns = (
    [
        path("", two_factor_views.verify, name="verify"),
        path("enrol/", two_factor_views.enrol, name="enrol"),
        path("backup-codes/", two_factor_views.backup_codes, name="backup_codes"),
        path("logout/", two_factor_views.logout, name="logout"),
    ],
    "two_factor",
)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/two-factor/", include(two_factor_patterns)),
    path("admin/dashboard/", include("oversight.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("reports.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="schema"), name="api-docs"),
]
