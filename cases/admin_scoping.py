"""The admin side of the case visibility rule (cases.visibility): every admin of a model that
hangs off a case inherits CaseScopedAdminMixin, so its list, its pages, its history, its actions
and its exports hold only rows of cases the person may see. A row outside that answers 404 with
one message for "missing" and "not yours" (tests/test_admin_scoping.py walks the admin registry
and fails for a case-linked model whose admin does not inherit it).
"""

from django.contrib.admin.utils import unquote
from django.http import Http404

from .visibility import scope_to_visible_cases


class CaseScopedAdminMixin:
    """Put before the ModelAdmin base. `case_path` is the lookup from the model to its case;
    a model with another shape (several cases, none) overrides `scope_queryset`."""

    case_path = "case"

    def scope_queryset(self, queryset, request):
        return scope_to_visible_cases(queryset, request.user, self.case_path)

    def get_queryset(self, request):
        return self.scope_queryset(super().get_queryset(request), request)

    def _in_scope(self, request, obj) -> bool:
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._in_scope(request, obj)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with "does not exist" for a missing object; outside the
        # person's cases the answer is the same 404 as for a row that does not exist.
        raise Http404(f"No such {opts.verbose_name}.")

    def _object_or_404(self, request, object_id) -> None:
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"No such {self.opts.verbose_name}.")

    def history_view(self, request, object_id, extra_context=None):
        # simple-history falls back to the history rows of an object outside the queryset
        # (and then answers 403): outside the person's cases it is a 404 like any other.
        self._object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # Only on SimpleHistoryAdmin subclasses (the only ones with that URL).
        self._object_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)
