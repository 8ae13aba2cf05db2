"""Shared admin pieces."""


class ReadOnlyAdminMixin:
    """The admin shows these rows; they are made and changed only through the services (and
    their own forms), never by the generic add, change and delete pages."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
