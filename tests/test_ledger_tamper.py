"""Tamper evidence: the custody ledger and the audit trail are keyed chains anchored by signed
checkpoints outside the database, so what the tables' owner can do to them (TRUNCATE, cutting
off the tail, editing an event and recomputing the hashes after it) makes verify_custody fail.

The attacks run as the test connection, which owns the tables: on PostgreSQL it first disables
the tables' own triggers (ALTER TABLE ... DISABLE TRIGGER USER, what an owner may do). They run
on SQLite as well, where nothing stops them. The database-role test is PostgreSQL only.
"""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from audit import actions as audit
from audit import chain as audit_chain
from audit.models import AuditEvent
from core import ledger
from evidence import checkpoints, custody, tasks, vault
from evidence.models import CustodyEvent

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"
only_postgres = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL roles and triggers")
TABLES = {"custody": CustodyEvent._meta.db_table, "audit": AuditEvent._meta.db_table}
BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def case(integration):
    return make_report(integration).case


@pytest.fixture
def filled(case, reviewer):
    """A few events in both chains, then a checkpoint of them (as the schedule writes)."""
    for n in range(4):
        vault.collect(io.BytesIO(b"placeholder %d" % n), case=case, original_name=f"f{n}.bin")
        audit.record("login", obj=reviewer, actor=reviewer, detail={"n": n})
    return checkpoints.write_checkpoint("test")


def verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_custody", stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def as_owner(chain: str, *statements) -> None:
    """Run SQL on a ledger's table the way its owner can: past the table's own triggers."""
    table = TABLES[chain]
    with connection.cursor() as cursor:
        if POSTGRES:
            # Inserts' deferred foreign-key checks would otherwise block TRUNCATE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql.format(table=table), params)
        if POSTGRES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def truncate(chain: str) -> None:
    as_owner(chain, ("TRUNCATE {table}" if POSTGRES else "DELETE FROM {table}", []))


def delete_tail(chain: str, count: int = 2) -> None:
    model = CustodyEvent if chain == "custody" else AuditEvent
    tail = list(model.objects.order_by("-pk").values_list("pk", flat=True)[:count])
    as_owner(chain, *[("DELETE FROM {table} WHERE id = %s", [pk]) for pk in tail])


def edit_and_rehash(chain: str) -> None:
    """Change the second event, and (custody) recompute every SHA-256 hash from there on, as
    someone who knows the chain's rules but not the ledger key would."""
    if chain == "audit":
        event = AuditEvent.objects.order_by("pk")[1]
        as_owner(
            chain, ("UPDATE {table} SET object_repr = 'someone else' WHERE id = %s", [event.pk])
        )
        return
    events = list(CustodyEvent.objects.order_by("pk"))
    statements, prev = [], events[0].hash
    for n, event in enumerate(events[1:]):
        if n == 0:
            event.purpose = "changed afterwards"
        event.prev_hash = prev
        event.hash = prev = event.compute_hash()
        statements.append(
            (
                "UPDATE {table} SET purpose = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.purpose, event.prev_hash, event.hash, event.pk],
            )
        )
    as_owner(chain, *statements)


# --- The owner's attacks ------------------------------------------------------------------------


def test_an_untouched_ledger_verifies_against_its_checkpoint(filled):
    code, out = verify()
    assert code == 0, out
    assert f"Checked against checkpoint {filled.name}" in out
    assert "4 custody events" in out and "0 problems" in out


@pytest.mark.parametrize("chain", ["custody", "audit"])
def test_truncating_a_ledger_is_caught(filled, chain):
    truncate(chain)
    code, out = verify()
    assert code == 1, out
    name = "custody ledger" if chain == "custody" else "audit trail"
    assert f"BROKEN {name} is empty, but checkpoint {filled.name}" in out
    assert "emptied (truncated)" in out


@pytest.mark.parametrize("chain", ["custody", "audit"])
def test_deleting_the_tail_is_caught(filled, chain):
    delete_tail(chain)
    code, out = verify()
    assert code == 1, out
    assert "events were removed from its end" in out


def test_editing_an_event_and_recomputing_the_hashes_is_caught(filled):
    edit_and_rehash("custody")
    assert not any("does not follow" in line for line in custody.verify_chain().broken)
    code, out = verify()
    assert code == 1, out
    second = CustodyEvent.objects.order_by("pk")[1]
    assert f"BROKEN custody event {second.pk}: its MAC does not match" in out
    assert "its fields were changed" not in out  # the hashes were made to fit


def test_editing_an_audit_event_is_caught(filled):
    edit_and_rehash("audit")
    code, out = verify()
    assert code == 1, out
    second = AuditEvent.objects.order_by("pk")[1]
    assert f"BROKEN audit event {second.pk}: its MAC does not match" in out


def test_events_forged_without_the_key_are_caught(case, filled, settings):
    """Truncate, then write a new chain with correct hashes but not the ledger key."""
    truncate("custody")
    key = settings.BAKKME_LEDGER_KEY
    settings.BAKKME_LEDGER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
    vault.collect(io.BytesIO(b"placeholder again"), case=case)
    settings.BAKKME_LEDGER_KEY = key
    code, out = verify()
    assert code == 1, out
    assert "which is not configured" in out


# --- Checkpoints ----------------------------------------------------------------------------------


def test_without_a_checkpoint_the_chains_are_checked_alone(case):
    vault.collect(io.BytesIO(b"placeholder"), case=case)
    code, out = verify()
    assert code == 0, out
    assert "No valid checkpoint yet: the chains are checked alone" in out


def _later(name: str, tag: str) -> str:
    """A name that sorts right after `name` (same time, a later suffix)."""
    return name.replace("Z-", f"Z-~{tag}-")


def _store(name: str, data: dict) -> None:
    from django.core.files.base import ContentFile

    from evidence.storage import evidence_storage

    evidence_storage().save(name, ContentFile(json.dumps(data).encode()))


def test_a_forged_checkpoint_is_a_failure(filled):
    forged = filled.as_dict()
    forged["chains"]["custody"]["count"] = 1  # as if the ledger had been one event long
    forged["name"] = _later(filled.name, "forged")
    _store(forged["name"], forged)
    code, out = verify()
    assert code == 1, out
    assert f"BROKEN checkpoint {forged['name']}: its signature does not match" in out
    assert f"Checked against checkpoint {filled.name}" in out  # the latest valid one


def test_an_old_checkpoint_copied_under_a_newer_name_is_a_failure(filled, case):
    vault.collect(io.BytesIO(b"placeholder more"), case=case)
    newer = checkpoints.write_checkpoint("test")
    copy_name = _later(newer.name, "copy")
    _store(copy_name, filled.as_dict())  # sorts after `newer`; it would allow a cut
    code, out = verify()
    assert code == 1, out
    assert f"BROKEN checkpoint {copy_name}: signed as {filled.name}: copied or renamed" in out


def test_a_checkpoint_signed_with_another_key_is_a_failure(filled):
    other = ledger.LedgerKey(os.urandom(32))
    payload = {**filled.payload(), "key_id": other.key_id}
    payload["name"] = _later(filled.name, "other")
    _store(payload["name"], {**payload, "mac": other.mac("checkpoint", ledger.canonical(payload))})
    code, out = verify()
    assert code == 1, out
    assert f"signed with ledger key {other.key_id}, not configured" in out


def test_the_schedule_writes_a_checkpoint_when_a_chain_moved(case, evidence_root):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="ledger-checkpoints")
    assert schedule.func == "evidence.tasks.write_ledger_checkpoint"
    assert schedule.schedule_type == Schedule.MINUTES
    assert schedule.minutes == settings.BAKKME_LEDGER_CHECKPOINT_MINUTES
    vault.collect(io.BytesIO(b"placeholder"), case=case)
    first = tasks.write_ledger_checkpoint()
    assert (evidence_root / first).is_file()
    assert tasks.write_ledger_checkpoint() == "unchanged"  # nothing moved since
    vault.collect(io.BytesIO(b"placeholder two"), case=case)
    second = tasks.write_ledger_checkpoint()
    assert second > first
    latest, problems = checkpoints.latest()
    assert (latest.name, problems) == (second, [])
    assert latest.chains["custody"].count == 2
    stored = json.loads((evidence_root / second).read_bytes())
    assert stored["chains"]["custody"]["last_id"] == CustodyEvent.objects.latest("pk").pk


def test_a_checkpoint_is_only_written_of_committed_events(case):
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable"):
        checkpoints.write_checkpoint("inside a transaction")


# --- The keyed chains ----------------------------------------------------------------------------


def test_old_links_verify_after_a_key_rotation_while_the_old_key_is_listed(case, settings):
    vault.collect(io.BytesIO(b"placeholder"), case=case)
    old = settings.BAKKME_LEDGER_KEY
    settings.BAKKME_LEDGER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings.BAKKME_LEDGER_OLD_KEYS = [old]
    vault.collect(io.BytesIO(b"placeholder two"), case=case)
    assert len(set(CustodyEvent.objects.values_list("key_id", flat=True))) == 2
    assert verify()[0] == 0
    settings.BAKKME_LEDGER_OLD_KEYS = []
    code, out = verify()
    assert code == 1
    assert f"ledger key {ledger.parse_key(old).key_id}, which is not configured" in out


def test_audit_events_verify_whatever_the_database_gives_back(reviewer):
    request = RequestFactory().get("/", REMOTE_ADDR="2001:DB8:0:0::1")
    audit.record("login", obj=reviewer, actor=reviewer, request=request, detail={2: "x", 10: 1.5})
    event = AuditEvent.objects.latest("pk")
    assert event.ip == "2001:db8::1"
    assert audit_chain.verify_chain().broken == []


def test_the_model_refuses_to_change_or_delete_audit_events(reviewer):
    event = AuditEvent.objects.latest("pk")
    event.object_repr = "changed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(object_repr="changed")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


def test_a_deleted_users_audit_events_stay_and_still_verify(client):
    leaver = UserFactory(username="leaver")
    audit.record("login", obj=leaver, actor=leaver)
    pk = leaver.pk
    leaver.delete()  # no UPDATE of the trail: the events keep the id they were written with
    assert AuditEvent.objects.filter(actor_id=pk, actor_name="leaver").exists()
    assert audit_chain.verify_chain().broken == []


class _Editor:
    """What the migrations' functions use of a schema editor (SQLite's real one refuses to
    open inside the test's transaction)."""

    connection = connection

    def execute(self, sql, params=None):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_the_migrations_chain_the_events_already_there(case, reviewer, monkeypatch):
    """Rows written before the keyed chain (no MAC) are keyed, in order, by the migrations."""
    import importlib

    from django.db.migrations.loader import MigrationLoader

    # The migrations' models (plain managers), not the app's append-only ones.
    apps = MigrationLoader(connection).project_state().apps

    vault.collect(io.BytesIO(b"placeholder"), case=case)
    vault.collect(io.BytesIO(b"placeholder two"), case=case)
    for chain in TABLES:
        as_owner(chain, ("UPDATE {table} SET key_id = '', mac = ''", []))
    assert custody.verify_chain().broken and audit_chain.verify_chain().broken
    for module in [
        "evidence.migrations.0006_keyed_custody_chain",
        "audit.migrations.0003_keyed_audit_chain",
    ]:
        migration = importlib.import_module(module)
        monkeypatch.setattr(migration, "BATCH", 1)  # batches, each going on from the MAC before
        migration.chain_existing(apps, _Editor())
    assert custody.verify_chain().broken == []
    assert audit_chain.verify_chain().broken == []


# --- PostgreSQL: the triggers, and the app role ---------------------------------------------------


@only_postgres
@pytest.mark.parametrize("chain", ["custody", "audit"])
def test_the_database_refuses_update_delete_and_truncate(filled, chain):
    table = TABLES[chain]
    for sql in [f"UPDATE {table} SET mac = ''", f"DELETE FROM {table}", f"TRUNCATE {table}"]:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET LOCAL bakkme.allow_ledger_truncate = off")  # as in production
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # inserts' checks, before TRUNCATE
            cursor.execute(sql)
    assert verify()[0] == 0


APP_ROLE_SCRIPT = """
import io
from audit import actions as audit
from evidence import vault
from evidence.models import EvidenceItem
item = EvidenceItem.objects.get()
vault.collect(io.BytesIO(b"placeholder by the app role"), case=item.case)
audit.record("login", actor=None)
print("app role wrote")
"""


@only_postgres
@pytest.mark.django_db(transaction=True)
def test_the_app_role_adds_rows_but_cannot_change_the_ledgers(integration):
    import psycopg

    case = make_report(integration).case
    vault.collect(io.BytesIO(b"placeholder"), case=case)
    role = f"bakkme_app_test_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN")
    try:
        call_command("grant_app_role", role, stdout=io.StringIO())
        db = connection.settings_dict
        url = f"postgres://{role}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {**os.environ, "DATABASE_URL": url}
        env["DJANGO_SETTINGS_MODULE"] = "bakkme_safety.settings_test"
        env["BAKKME_EVIDENCE_ROOT"] = str(settings.STORAGES["evidence"]["OPTIONS"]["location"])
        # The whole write path as the app role: custody record (advisory lock, sequences),
        # the evidence storage, an audit event.
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", APP_ROLE_SCRIPT],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "app role wrote" in done.stdout, done.stdout + done.stderr
        assert CustodyEvent.objects.count() == 2
        refused = []
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"] or 5432, dbname=db["NAME"], user=role
        ) as app:
            app.autocommit = True
            with app.cursor() as cursor:
                # Other tables' rows, yes.
                cursor.execute("UPDATE evidence_evidenceitem SET original_name = original_name")
                for table in TABLES.values():
                    for sql in [
                        f"UPDATE {table} SET mac = ''",
                        f"DELETE FROM {table}",
                        f"TRUNCATE {table}",
                        f"ALTER TABLE {table} DISABLE TRIGGER USER",
                    ]:
                        with pytest.raises(psycopg.Error) as error:
                            cursor.execute(sql)
                        refused.append(str(error.value).splitlines()[0])
        assert all(
            r.startswith(("permission denied for table", "must be owner of table")) for r in refused
        ), refused
        assert verify()[0] == 0
    finally:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


@only_postgres
def test_grant_app_role_refuses_the_owner(db):
    from django.core.management.base import CommandError

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        me = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="owner"):
        call_command("grant_app_role", me)
    with pytest.raises(CommandError, match="There is no role"):
        call_command("grant_app_role", "no_such_role_here")


def test_an_evidence_package_carries_a_checkpoint_of_its_export(case, cso):
    """The bag holds the signed head of the ledger as it stood with the package's EXPORT events,
    so the chain of custody it carries can be checked against the ledger later."""
    import zipfile

    from evidence import packages

    vault.collect(io.BytesIO(b"placeholder"), case=case, original_name="f.bin")
    package = packages.request_package(case, cso, "placeholder", "placeholder", queue=False)
    package = packages.build(package.pk)
    assert package.status == "ready", package.error
    zipped = b"".join(packages.open_download(package, cso))
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        root = packages.download_name(package)
        raw = archive.read(f"{root}/data/ledger-checkpoint.json")
        metadata = json.loads(archive.read(f"{root}/data/metadata.json"))
    assert metadata["ledger_checkpoint"]["file"] == "ledger-checkpoint.json"
    checkpoint = checkpoints.parse(metadata["ledger_checkpoint"]["name"], raw)
    export = CustodyEvent.objects.filter(action="export", detail__package=package.pk).get()
    assert checkpoint.chains[custody.CHAIN].last_id >= export.pk
    assert verify()[0] == 0


def test_no_process_starts_with_a_ledger_key_the_chains_were_not_signed_with(case, settings):
    """A wrong but well-formed ledger key would sign new events that no longer chain onto the
    ones before: the system check (every management command) and the WSGI start refuse it."""
    from evidence import checks

    vault.collect(io.BytesIO(b"placeholder"), case=case)
    audit.record("login", detail={})
    checks.prove_ledger_key_continues_the_chains()  # the right key
    right = settings.BAKKME_LEDGER_KEY
    settings.BAKKME_LEDGER_KEY = base64.urlsafe_b64encode(b"\x07" * 32).decode()
    with pytest.raises(checks.LedgerKeyError, match="custody ledger"):
        checks.prove_ledger_key_continues_the_chains()
    assert [e.id for e in checks.ledger_key_continues_the_chains()] == ["evidence.E004"]
    settings.BAKKME_LEDGER_OLD_KEYS = [right]  # a rotation: the old key listed
    checks.prove_ledger_key_continues_the_chains()
    assert checks.ledger_key_continues_the_chains() == []
