from django.core.management.base import BaseCommand, CommandError

from core.db_roles import RoleError, grant_app_role


class Command(BaseCommand):
    help = (
        "PostgreSQL: grant ROLE what the web and the workers need, as the tables' owner after "
        "`migrate`: rows of every table, but only SELECT and INSERT on the custody ledger and "
        "the audit trail (no UPDATE, DELETE or TRUNCATE). Idempotent: run it after each migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="the app role (it must exist and own nothing)")

    def handle(self, *args, role, **options):
        try:
            grants = grant_app_role(role)
        except RoleError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{grants.role}: rows of {grants.tables} tables; append-only (SELECT, INSERT): "
            f"{', '.join(grants.append_only)}; read-only: {', '.join(grants.read_only)}."
        )
