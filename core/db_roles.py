"""Running the web and the workers as a PostgreSQL role that does not own the tables.

The owner of a table can do anything to it: disable its triggers, TRUNCATE it, rewrite it.
So production has two roles: the owner runs `migrate` (and this grant after it), and the web
and the workers connect as an app role that gets the rows it works with and nothing more: all
rows of the app's tables, but on the append-only ledgers (the custody ledger, the audit trail)
only SELECT and INSERT, and on Django's migration record only SELECT. TRUNCATE, triggers and
DDL stay with the owner. Default privileges give the app role the same on tables a later
migration creates; run the grant again after every `migrate` all the same (it is idempotent).
"""

import re
from dataclasses import dataclass, field

from django.apps import apps
from django.db import connection, transaction

# Models whose rows are only ever added (their triggers refuse the rest too).
APPEND_ONLY_MODELS = ("evidence.CustodyEvent", "audit.AuditEvent")
READ_ONLY_TABLES = ("django_migrations",)
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class RoleError(ValueError):
    """The role cannot be the app role (missing, the owner, a superuser, owns tables)."""


@dataclass
class Grants:
    role: str
    tables: int = 0
    append_only: list[str] = field(default_factory=list)
    read_only: list[str] = field(default_factory=list)


def append_only_tables() -> list[str]:
    return [apps.get_model(label)._meta.db_table for label in APPEND_ONLY_MODELS]


def _check_role(cursor, role: str, schema: str) -> None:
    if not _ROLE_NAME.match(role):
        raise RoleError(f"{role!r} is not a plain role name (letters, digits, underscores).")
    cursor.execute(
        "SELECT rolsuper, rolname = current_user FROM pg_roles WHERE rolname = %s", [role]
    )
    row = cursor.fetchone()
    if row is None:
        raise RoleError(f"There is no role {role}: create it first (CREATE ROLE {role} LOGIN).")
    superuser, is_me = row
    if is_me:
        raise RoleError(f"{role} is the role running this grant, the tables' owner.")
    if superuser:
        raise RoleError(f"{role} is a superuser: permissions do not hold it.")
    cursor.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tableowner = %s", [schema, role]
    )
    if cursor.fetchone()[0]:
        raise RoleError(f"{role} owns tables in schema {schema}: it is an owner, not the app role.")


def grant_app_role(role: str) -> Grants:
    """Grant `role` what the web and the workers need on this database, in one transaction."""
    if connection.vendor != "postgresql":
        raise RoleError("Database roles are a PostgreSQL matter; this database is not one.")
    quote = connection.ops.quote_name
    grants = Grants(role=role)
    append_only = set(append_only_tables())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        _check_role(cursor, role, schema)
        who, where = quote(role), quote(schema)
        cursor.execute(f"GRANT USAGE ON SCHEMA {where} TO {who}")
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        for (table,) in sorted(cursor.fetchall()):
            name = f"{where}.{quote(table)}"
            cursor.execute(f"REVOKE ALL ON {name} FROM {who}")
            if table in append_only:
                privileges = "SELECT, INSERT"
                grants.append_only.append(table)
            elif table in READ_ONLY_TABLES:
                privileges = "SELECT"
                grants.read_only.append(table)
            else:
                privileges = "SELECT, INSERT, UPDATE, DELETE"
            cursor.execute(f"GRANT {privileges} ON {name} TO {who}")
            grants.tables += 1
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}")
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {where} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}"
        )
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {where} GRANT USAGE, SELECT ON SEQUENCES TO {who}"
        )
    return grants
