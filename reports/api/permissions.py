from rest_framework.permissions import BasePermission

from reports.models import Integration


class IsIntegrationOrStaff(BasePermission):
    """The API's schema and docs: for the platform's integrations and for logged-in staff."""

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, Integration):
            return True
        # A staff session counts once it passed the second factor (django-otp).
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and getattr(user, "is_verified", lambda: False)()
        )
