"""django-simple-history, recording who changed a row.

API requests are made by an integration, not by a person: their changes are recorded with no
history user (the reports carry the integration).
"""

from django.contrib.auth import get_user_model
from django.db import connections, router
from simple_history.models import HistoricalRecords

CHUNK_ROWS = 500


def _staff_user(request=None, **kwargs):
    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None


def audit_history(**kwargs) -> HistoricalRecords:
    return HistoricalRecords(get_user=_staff_user, **kwargs)


def copy_to_history(model, pks, history_type: str, date) -> None:
    """Record rows just written in bulk as history rows, by one INSERT ... SELECT per chunk.

    The same history rows bulk_create_with_history() and bulk_update_with_history() write
    (history_type "+" or "~", no user: intake is not a person), without building a historical
    object per row in Python. `pks` are the rows' primary keys.
    """
    pks = list(pks)
    history_model = model.history.model
    tracked = {f.attname for f in model._meta.concrete_fields}
    columns = [f.column for f in history_model._meta.concrete_fields if f.attname in tracked]
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    with connection.cursor() as cursor:
        for start in range(0, len(pks), CHUNK_ROWS):
            chunk = pks[start : start + CHUNK_ROWS]
            cursor.execute(
                f"INSERT INTO {quote(history_model._meta.db_table)} ({names}, history_date,"
                " history_type, history_change_reason, history_user_id)"
                f" SELECT {names}, %s, %s, NULL, NULL FROM {quote(model._meta.db_table)}"
                f" WHERE {quote(model._meta.pk.column)} IN ({', '.join(['%s'] * len(chunk))})",
                [date, history_type, *chunk],
            )
