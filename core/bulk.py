"""Writing many rows, each with its own values, in one statement.

Django's bulk_update() builds a CASE WHEN pk = ... THEN ... expression per field per row, and
resolving those expressions costs about 2 ms of Python per row at 16 fields: more than the SQL.
On PostgreSQL, update_rows() sends one UPDATE ... FROM (VALUES ...) per chunk instead; other
databases (SQLite in development and tests) keep bulk_update().
"""

from django.db import connections, router, transaction

CHUNK_ROWS = 1000


def update_rows(objs, fields: list[str]) -> None:
    """Save `fields` of every object in `objs` (all of one model, all saved before)."""
    objs = list(objs)
    if not objs:
        return
    model = type(objs[0])
    using = router.db_for_write(model)
    connection = connections[using]
    if connection.vendor != "postgresql":
        model._base_manager.using(using).bulk_update(objs, fields)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in columns) + ")"
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(
        f"{quote(field.column)} = v.{quote(field.column)}" for field in columns[1:]
    )
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    with transaction.atomic(using=using, savepoint=False), connection.cursor() as cursor:
        for start in range(0, len(objs), CHUNK_ROWS):
            chunk = objs[start : start + CHUNK_ROWS]
            params = [
                field.get_db_prep_save(getattr(obj, field.attname), connection)
                for obj in chunk
                for field in columns
            ]
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "
                f"FROM (VALUES {', '.join([row] * len(chunk))}) AS v({names}) "
                f"WHERE t.{pk} = v.{pk}",
                params,
            )
