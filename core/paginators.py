import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

# Below this estimate an exact COUNT is cheap enough and exact numbers matter more.
EXACT_COUNT_BELOW = 20_000


class EstimatedCountPaginator(Paginator):
    """Counts exactly when a list is small; on PostgreSQL takes the planner's estimate when large.

    The admin changelist counts its rows for every page; on a queue of hundreds of thousands of
    cases the exact COUNT costs more than the page itself.
    """

    @cached_property
    def count(self):
        qs = self.object_list
        connection = connections[qs.db]
        if connection.vendor == "postgresql":
            try:
                sql, params = qs.order_by().values("pk").query.sql_with_params()
            except EmptyResultSet:  # e.g. pk IN (): nothing can match
                return 0
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
            if isinstance(plan, str):
                plan = json.loads(plan)
            estimate = int(plan[0]["Plan"]["Plan Rows"])
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
        return super().count
