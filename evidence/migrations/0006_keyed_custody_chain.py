"""The custody ledger becomes a keyed chain, its head is checkpointed, TRUNCATE is refused.

Every event gets `key_id` and `mac`: HMAC under BAKKME_LEDGER_KEY over its hash and the MAC of
the event before it (bakkme_safety/ledger.py). The events already there are chained here, in
order, a batch at a time (a long ledger is never loaded whole); on PostgreSQL the trigger that
refuses UPDATE is dropped around that and created again, together with a statement-level
BEFORE TRUNCATE trigger. The test runner empties tables with TRUNCATE between transactional
tests: the trigger lets it through only when the session sets bakkme.allow_ledger_truncate=on
(bakkme_safety/settings_test.py); an owner who wants to truncate can as well disable the
trigger, which is why the checkpoints, not the trigger, are what catch it.

Then the django-q2 schedule that writes the signed checkpoints (evidence/checkpoints.py),
created once by name.
"""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

BATCH = 2000

CREATE = """
CREATE OR REPLACE FUNCTION evidence_custody_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('bakkme.allow_ledger_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the custody ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER evidence_custody_append_only
    BEFORE UPDATE OR DELETE ON evidence_custodyevent
    FOR EACH ROW EXECUTE FUNCTION evidence_custody_append_only();

CREATE TRIGGER evidence_custody_no_truncate
    BEFORE TRUNCATE ON evidence_custodyevent
    FOR EACH STATEMENT EXECUTE FUNCTION evidence_custody_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS evidence_custody_no_truncate ON evidence_custodyevent;
DROP TRIGGER IF EXISTS evidence_custody_append_only ON evidence_custodyevent;
"""

# The function and trigger of 0002_custody_append_only, for going back.
PREVIOUS = """
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


def chain_existing(apps, schema_editor):
    """Key the events already in the ledger, in id order, BATCH at a time."""
    from core import ledger

    CustodyEvent = apps.get_model("evidence", "CustodyEvent")
    events = CustodyEvent.objects.using(schema_editor.connection.alias).order_by("pk")
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(DROP, params=None)
    if events.exists():
        key = ledger.current_key()
        prev_mac, last = ledger.GENESIS_MAC, 0
        while True:
            batch = list(events.filter(pk__gt=last).only("pk", "hash")[:BATCH])
            if not batch:
                break
            for event in batch:
                event.key_id = key.key_id
                event.mac = prev_mac = key.link("custody", prev_mac, event.hash)
            CustodyEvent.objects.using(schema_editor.connection.alias).bulk_update(
                batch, ["key_id", "mac"]
            )
            last = batch[-1].pk
    if postgres:
        schema_editor.execute(CREATE, params=None)


def unchain(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)
        schema_editor.execute(PREVIOUS, params=None)


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="ledger-checkpoints",
        defaults={
            "func": "evidence.tasks.write_ledger_checkpoint",
            "schedule_type": "I",  # MINUTES
            "minutes": settings.BAKKME_LEDGER_CHECKPOINT_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="ledger-checkpoints").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0005_package_lease"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="custodyevent",
            name="key_id",
            field=models.CharField(
                default="", editable=False, help_text="The ledger key's id.", max_length=16
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="custodyevent",
            name="mac",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing, unchain),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
