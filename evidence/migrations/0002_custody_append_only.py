"""On PostgreSQL the database itself refuses UPDATE and DELETE on the custody ledger.

TRUNCATE is not covered: it needs the table's owner, which the application's database role
should not be in production, and the test runner's flush uses it between tests.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION evidence_custody_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the custody ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER evidence_custody_append_only
    BEFORE UPDATE OR DELETE ON evidence_custodyevent
    FOR EACH ROW EXECUTE FUNCTION evidence_custody_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS evidence_custody_append_only ON evidence_custodyevent;
DROP FUNCTION IF EXISTS evidence_custody_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("evidence", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
