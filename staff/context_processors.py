from . import compliance
from .actions import unread_count


def staff_bar(request):
    """The admin header: unread count, shift switch, CSAE duties and compliance notices (staff
    pages only)."""
    if not request.path.startswith("/admin/"):
        return {}
    user = getattr(request, "user", None)  # on API pages an integration, not a person
    if not (getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False)):
        return {}
    status = compliance.compliance_status(user)
    csae_role = user.has_perm("cases.view_child_safety_case")
    notices = list(status.warnings)
    if csae_role and not user.is_superuser and not status.may_handle_child_safety:
        if status.opted_out:
            notices.append("You left CSAE duties: child-safety cases are not in your queue.")
        else:
            notices.append(
                "Child-safety cases are closed to you: " + "; ".join(status.missing) + "."
            )
    return {
        "unread_notifications": unread_count(user),
        "on_shift": bool(status.profile and status.profile.on_shift),
        "csae_role": csae_role,
        "csae_opted_out": status.opted_out,
        "compliance_notices": notices,
    }
