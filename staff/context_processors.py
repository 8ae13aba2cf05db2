from .models import StaffProfile
from .services import unread_count


def staff_bar(request):
    """The admin header's unread count and shift switch (staff pages only)."""
    user = getattr(request, "user", None)
    on_admin_page = request.path.startswith("/admin/")
    if not (user and user.is_authenticated and user.is_staff and on_admin_page):
        return {}
    return {
        "unread_notifications": unread_count(user),
        "on_shift": StaffProfile.objects.filter(user=user, on_shift=True).exists(),
    }
