"""What hangs off a case is seen by those who see the case: the one rule, for rows of other
models (reports, detections, hash matches, actions, holds, packages, filings, custody events).

`Case.objects.visible_to(user)` decides which cases a person sees; `scope_to_visible_cases`
applies it to any queryset through the lookup from that model to its case. Admins use it through
cases.admin_scoping.CaseScopedAdminMixin; services that act on such rows check it too.
"""

from django.db.models import QuerySet

from .models import Case, sees_every_case


def visible_case_ids(user) -> QuerySet:
    """The primary keys of the cases `user` may see, as a subquery."""
    return Case.objects.visible_to(user).values("pk")


def scope_to_visible_cases(queryset: QuerySet, user, case_path: str = "case") -> QuerySet:
    """`queryset` limited to rows whose case (reached by `case_path`, e.g. "item__case") the
    person may see. Those who see every case get the queryset unfiltered."""
    if sees_every_case(user):
        return queryset
    return queryset.filter(**{f"{case_path}__in": visible_case_ids(user)})


def sees_case(user, case_id) -> bool:
    return case_id is not None and Case.objects.visible_to(user).filter(pk=case_id).exists()
