"""Read-side questions of the intake: finding cases by what their reports say."""

from django.db.models import Q, QuerySet

from cases.models import Case

from .models import Report


def cases_matching(cases: QuerySet, term: str) -> QuerySet:
    """The cases of `cases` about a platform account id, a username (any letter case) or a
    content id, the content of any of their reports included.

    The matching ids come from index lookups first: one OR across these columns can use no
    index, and PostgreSQL would walk the whole queue to filter it.
    """
    ids = set(
        Case.objects.filter(
            Q(account_platform_id=term)
            | Q(content_platform_id=term)
            | Q(account_username__iexact=term)
        ).values_list("pk", flat=True)
    )
    ids.update(Report.objects.filter(content_platform_id=term).values_list("case_id", flat=True))
    return cases.filter(pk__in=ids)
