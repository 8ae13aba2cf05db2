"""Issue 15: models moved between apps keep their rows, their tables and their permissions.

The detection models left reports with SeparateDatabaseAndState (state only: the tables keep
their names) and their content types were renamed, so the permissions granted on them (and the
admin's log entries) follow. This test migrates a database back to before the move, writes
rows and a grant as the old app, and migrates forward again.
"""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("reports", "0009_detection_timeouts_ban_evasion_seen"), ("detection", None)]


def migrate(targets):
    """Migrate to `targets`; the models as the migrations that are now applied define them."""
    MigrationExecutor(connection).migrate(targets)
    after = MigrationExecutor(connection)
    return after._create_project_state(with_applied_migrations=True).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_detection_models_keep_their_rows_and_permissions_after_the_move():
    try:
        old = migrate(BEFORE)
        ContentType = old.get_model("contenttypes", "ContentType")
        Permission = old.get_model("auth", "Permission")
        OldGroup = old.get_model("auth", "Group")
        kind = ContentType.objects.get_or_create(app_label="reports", model="hashbank")[0]
        permission = Permission.objects.get_or_create(
            content_type=kind, codename="view_hashbank", defaults={"name": "Can view hash bank"}
        )[0]
        group = OldGroup.objects.create(name="placeholder-move-test")
        group.permissions.add(permission)
        old.get_model("reports", "HashBank").objects.create(
            name="placeholder-bank", source="internal", is_csam=False
        )

        migrate(latest())

        from detection.models import HashBank

        assert list(HashBank.objects.values_list("name", flat=True)) == ["placeholder-bank"]
        moved = Group.objects.get(name="placeholder-move-test").permissions.get()
        assert moved.pk == permission.pk
        assert (moved.content_type.app_label, moved.codename) == ("detection", "view_hashbank")
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert "reports_hashbank" in tables and "detection_hashbank" not in tables
    finally:
        migrate(latest())
