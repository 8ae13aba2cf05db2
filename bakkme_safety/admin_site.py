"""The admin site every staff page lives on (the admin, the CSO dashboard, the evidence pages):
it lets in only staff whose session passed a second factor.

Installed as the default admin site by bakkme_safety.admin_config.BakkmeAdminConfig (listed in
INSTALLED_APPS instead of "django.contrib.admin"), so `admin.site` is this class everywhere.
The redirect to the second-factor pages is staff.sessions.VerifiedFactorMiddleware;
this is the check behind it.
"""

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.urls import reverse

from staff.two_factor import is_verified

from .roles import Role

# The page each role lands on (admin:index sends a person whose only role has one there;
# /admin/?sections=all shows the index itself).
LANDING_PAGES = {Role.LEGAL: "admin:legal_legalduty_changelist"}


class BakkmeAdminSite(admin.AdminSite):
    def has_permission(self, request):
        return super().has_permission(request) and is_verified(request.user)

    def index(self, request, extra_context=None):
        user = request.user
        if not user.is_superuser and request.GET.get("sections") != "all":
            roles = set(user.groups.values_list("name", flat=True))
            if len(roles) == 1 and (landing := LANDING_PAGES.get(roles.pop())):
                return redirect(landing)
        return super().index(request, extra_context)

    def login(self, request, extra_context=None):
        user = request.user
        if request.method == "GET" and user.is_active and user.is_staff and not is_verified(user):
            # Password given, second factor not yet: that page, not the password form again.
            target = request.GET.get(REDIRECT_FIELD_NAME) or reverse(
                "admin:index", current_app=self.name
            )
            return redirect_to_login(target, reverse("two_factor:verify"))
        return super().login(request, extra_context)
