"""Benchmark: the SLA sweep over 200,000 open cases of which 10,000 fall due, beside a
hand-written SQL UPDATE that marks the same rows, in the same run (target: at most 3x).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench make bench   # runs this too
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench .venv/bin/python bench/sla_sweep.py

PostgreSQL only. It works in its own database, <name>_sla beside the one DATABASE_URL names (it
replaces every case there), created when missing and filled each run; each round restores the
10,000 cases to "due, not yet breached" (untimed, then VACUUM ANALYZE) and times, in alternating
order, the sweep (cases.sla_engine.sweep, queries counted) and the bare UPDATE. The figures
go to the "SLA sweep" section of bench/RESULTS.md (below the notes marker, which bench/run.py
keeps).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakkme_safety.settings")
os.environ.setdefault("BAKKME_SECRET_KEY", "bench-only")
os.environ.setdefault("BAKKME_EVIDENCE_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtS0VZLTMyQkE=")
os.environ.setdefault("BAKKME_LEDGER_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtTEVER0VSMzI=")

SECTION_START = "<!-- sla-sweep: bench/sla_sweep.py rewrites from here -->"
SECTION_END = "<!-- sla-sweep: to here -->"
OPEN = "('new', 'in_review', 'escalated')"
BARE_UPDATE = f"""
    UPDATE cases_case SET breached_at = due_at
    WHERE state IN {OPEN} AND first_action_at IS NULL AND breached_at IS NULL AND due_at <= %s
"""


def fill(cursor, open_cases: int, due: int, now: datetime) -> None:
    """open_cases open cases; `due` of them past their deadline with both warnings sent, the
    rest due later with their next warning later too (so only breaches are due)."""
    cursor.execute(
        "TRUNCATE cases_case, cases_caseevent, cases_slabreach, staff_notification,"
        " cases_emergencychecklistitem RESTART IDENTITY CASCADE"
    )
    cursor.execute(
        """
        INSERT INTO cases_case (
            subject_key, account_platform_id, account_username, content_platform_id, state,
            priority, category, surface, is_child_safety, sla_started_at, due_at, report_count,
            escalated_to, created_at, updated_at, sla_warnings_sent, sla_next_warning_at,
            emergency_notified_at)
        SELECT 'account:u-' || g, 'u-' || g, 'user' || g, 'm-' || g,
               (ARRAY['new', 'new', 'in_review', 'escalated'])[1 + g %% 4],
               p.priority,
               CASE p.priority WHEN 0 THEN 'imminent_danger' WHEN 1 THEN 'grooming'
                               WHEN 2 THEN 'underage_user' ELSE 'other' END,
               'message', p.priority < 3,
               d.due - make_interval(hours => p.hours), d.due, 1,
               CASE WHEN g %% 4 = 3 THEN 'senior_reviewer' ELSE '' END,
               d.due - make_interval(hours => p.hours), %(now)s,
               CASE WHEN g <= %(due)s THEN 2 ELSE 0 END,
               CASE WHEN g <= %(due)s THEN NULL ELSE %(now)s::timestamptz + interval '1 hour' END,
               %(now)s
        FROM generate_series(1, %(n)s) AS g
        CROSS JOIN LATERAL (
            SELECT (ARRAY[1, 1, 1, 2, 3, 3, 3, 1, 1, 0])[1 + g %% 10] AS priority,
                   (ARRAY[24, 24, 24, 48, 72, 72, 72, 24, 24, 1])[1 + g %% 10] AS hours
        ) AS p
        CROSS JOIN LATERAL (
            SELECT CASE WHEN g <= %(due)s
                        THEN %(now)s::timestamptz - make_interval(secs => g %% 1800)
                        ELSE %(now)s::timestamptz + make_interval(secs => 3600 + g %% 86400)
                   END AS due
        ) AS d
        """,
        {"n": open_cases, "due": due, "now": now},
    )


def restore(cursor, due: int) -> None:
    """Put the due cases back to 'due, not breached' and drop what the last run wrote."""
    cursor.execute(
        """
        UPDATE cases_case SET breached_at = NULL,
            state = (ARRAY['new', 'new', 'in_review', 'escalated'])[1 + id %% 4],
            escalated_to = CASE WHEN id %% 4 = 3 THEN 'senior_reviewer' ELSE '' END
        WHERE id <= %s
        """,
        [due],
    )
    cursor.execute("TRUNCATE cases_caseevent, cases_slabreach, staff_notification RESTART IDENTITY")


def vacuum(connection) -> None:
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.autocommit
    raw.autocommit = True
    with raw.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE cases_case")
    raw.autocommit = previous


def _runs(values) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-cases", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from bench.fill import qualify
    from bench.run import code_state, machine, migrated_side_database

    command = migrated_side_database("sla", "bench/sla_sweep.py")
    if command is None:
        return 2
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cases import sla_engine

    now = datetime.now(UTC).replace(microsecond=0)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        fill(cursor, args.open_cases, args.due, now)
        print(f"fill: {args.open_cases} open cases in {time.perf_counter() - started:.1f} s")
    User = get_user_model()
    for name, role in [("bench_senior", "senior_reviewer"), ("bench_cso", "child_safety_officer")]:
        user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": True})
        user.groups.set([Group.objects.get(name=role)])
        qualify(user)
    vacuum(connection)

    sweep_ms, update_ms, queries = [], [], []
    for round_ in range(args.rounds):
        order = ["sweep", "update"] if round_ % 2 == 0 else ["update", "sweep"]
        for what in order:
            with connection.cursor() as cursor:
                restore(cursor, args.due)
            vacuum(connection)
            if what == "sweep":
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    result = sla_engine.sweep(now)
                    sweep_ms.append((time.perf_counter() - started) * 1000)
                queries.append(len(captured))
                assert result.breached == args.due, result
            else:
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.execute(BARE_UPDATE, [now])
                    assert cursor.rowcount == args.due, cursor.rowcount
                update_ms.append((time.perf_counter() - started) * 1000)

    sweep_median, update_median = statistics.median(sweep_ms), statistics.median(update_ms)
    print(f"open cases {args.open_cases}, due {args.due}, rounds {args.rounds}")
    print(f"sweep:  median {sweep_median:.0f} ms  (runs: {_runs(sweep_ms)})")
    print(f"        queries {sorted(set(queries))}; last result {result.as_dict()}")
    print(f"UPDATE: median {update_median:.0f} ms  (runs: {_runs(update_ms)})")
    print(f"ratio sweep / UPDATE: {sweep_median / update_median:.2f} (target <= 3)")
    write_results(
        args,
        machine=machine(),
        code=code_state(),
        command=command,
        sweep_ms=sweep_ms,
        update_ms=update_ms,
        queries=sorted(set(queries)),
        result=result.as_dict(),
    )
    return 0


def write_results(args, *, machine, code, command, sweep_ms, update_ms, queries, result) -> None:
    """Replace the SLA sweep section of bench/RESULTS.md (or add it at the end)."""
    from bench.report import replace_section, run_header

    sweep_median, update_median = statistics.median(sweep_ms), statistics.median(update_ms)
    ratio = sweep_median / update_median
    section = "\n".join(
        [
            SECTION_START,
            *run_header("SLA sweep (written by `bench/sla_sweep.py`)", code, machine, command),
            f"{args.open_cases:,} open cases, {args.due:,} of them past their deadline (breaches"
            f" to record), {args.rounds} rounds, sweep and UPDATE in alternating order, each on"
            " the same restored and vacuumed rows.",
            "",
            "| Measure | median ms | runs (ms) | queries |",
            "|---|---|---|---|",
            f"| sweep (`cases.sla_engine.sweep`) | {sweep_median:.0f} | {_runs(sweep_ms)} | "
            f"{', '.join(map(str, queries))} |",
            f"| hand-written `UPDATE ... SET breached_at = due_at` | {update_median:.0f} | "
            f"{_runs(update_ms)} | 1 |",
            "",
            f"**Ratio sweep / UPDATE: {ratio:.2f}** (target at most 3: "
            f"{'met' if ratio <= 3 else '**missed**'}). The sweep's last result: `{result}`."
            " Beyond the UPDATE it records each breach (SlaBreach) and its escalation"
            " (CaseEvent) with INSERT ... SELECT, and notifies the senior reviewers on duty and"
            " the CSO: one digest notification per person.",
            SECTION_END,
        ]
    )

    path = replace_section(SECTION_START, SECTION_END, section)
    print(f"figures written to {path}")


if __name__ == "__main__":
    sys.exit(main())
