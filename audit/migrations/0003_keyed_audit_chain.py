"""The audit trail becomes a keyed chain and append-only, like the custody ledger.

Every event gets `key_id` and `mac`: HMAC under BAKKME_LEDGER_KEY over its fields and the MAC
of the event before it (audit/chain.py). The events already there are chained here, in order,
a batch at a time. `actor` loses its database constraint and its SET NULL: deleting a user
would otherwise UPDATE the events that name them. On PostgreSQL triggers refuse UPDATE and
DELETE (per row) and TRUNCATE (per statement; the test runner's flush is let through when the
session sets bakkme.allow_ledger_truncate=on, see evidence migration 0006).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

BATCH = 2000

CREATE = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('bakkme.allow_ledger_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_append_only();
"""


def chain_existing(apps, schema_editor):
    """Key the events already in the trail, in id order, BATCH at a time."""
    from audit import chain
    from core import ledger

    AuditEvent = apps.get_model("audit", "AuditEvent")
    events = AuditEvent.objects.using(schema_editor.connection.alias).order_by("pk")
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(DROP, params=None)
    if events.exists():
        key = ledger.current_key()
        prev_mac, last = ledger.GENESIS_MAC, 0
        while True:
            batch = list(events.filter(pk__gt=last)[:BATCH])
            if not batch:
                break
            for event in batch:
                event.key_id = key.key_id
                event.mac = prev_mac = key.link(chain.CHAIN, prev_mac, chain.body(event))
            AuditEvent.objects.using(schema_editor.connection.alias).bulk_update(
                batch, ["key_id", "mac"]
            )
            last = batch[-1].pk
    if postgres:
        schema_editor.execute(CREATE, params=None)


def unchain(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_privilege_and_spray_actions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(
                default="", editable=False, help_text="The ledger key's id.", max_length=16
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="Who did it; empty for the system (migrations, tasks) or an unknown "
                "person.",
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(chain_existing, unchain),
    ]
