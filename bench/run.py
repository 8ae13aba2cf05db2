"""Benchmark: intake, the triage queue and "next case" at 1,000,000 reports in 200,000 cases.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench make bench
    .venv/bin/python bench/run.py --reports 20000 --cases 4000      # a quick check

PostgreSQL only. Creates the database when missing, migrates it, and fills it in bulk (SQL, one
transaction; see bench/fill.py) unless it already holds a fill of the requested size (--refill
to redo it). Then measures, each repeated (median, p90, n):

1. API intake, single: POST /api/v1/reports/ -> reports/s;
2. API intake, batch: POST /api/v1/reports/batch/ with 500 reports each -> reports/s;
3. the queue changelist /admin/cases/case/ as a reviewer, plain, searched and filtered:
   ms and queries;
4. "next case": cases.actions.claim_next_case, the claims released after each round; then
   again with no P0 case waiting (the usual queue: the open P0 cases are decided first).

The same measures run on a small database (<name>_small, 20,000 reports in 4,000 cases) to show
the queue's query count does not grow with the data. At the default size the figures go to
bench/RESULTS.md (the notes below its marker line are kept); a summary is printed either way.

The measures change the data (claims, ~5,000 new reports, new and reopened cases); afterwards
the run puts it back as filled (bench/fill.py, snapshot and restore), so re-runs measure the same
data.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_REPORTS, DEFAULT_CASES = 1_000_000, 200_000
SMALL_REPORTS, SMALL_CASES = 20_000, 4_000
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=DEFAULT_REPORTS)
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES)
    parser.add_argument("--refill", action="store_true", help="fill again even if filled")
    parser.add_argument("--single", type=int, default=300, help="single-report requests")
    parser.add_argument("--batches", type=int, default=10, help="batches of --batch-size")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20, help="GETs per changelist view")
    parser.add_argument("--claim-rounds", type=int, default=3)
    parser.add_argument("--claims-per-round", type=int, default=30)
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the small-size comparison run"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--results",
        help="write RESULTS.md here (default: bench/RESULTS.md at the default size only)",
    )
    return parser.parse_args(argv)


def database_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if urlsplit(url).scheme in POSTGRES_SCHEMES else None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str) -> bool:
    """Create the database named in the URL when missing (through the 'postgres' database)."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def side_database(suffix: str, script: str) -> tuple[str, str] | None:
    """For a benchmark that works in a database of its own beside DATABASE_URL's (named
    <name>_<suffix>): (the command line to quote, that database's URL), and DATABASE_URL set
    to it; None (after saying why) without PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in POSTGRES_SCHEMES:
        print("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return None
    command = command_line(sys.argv[1:]).replace("bench/run.py", script)
    name = urlsplit(url).path.lstrip("/")
    if not name.endswith(f"_{suffix}"):
        url = with_database(url, f"{name}_{suffix}")
    os.environ["DATABASE_URL"] = url
    return command, url


def migrated_side_database(suffix: str, script: str) -> str | None:
    """side_database(), created when missing, Django set up on it and migrated: the command line
    to quote, or None (after saying why) without PostgreSQL."""
    found = side_database(suffix, script)
    if found is None:
        return None
    command, url = found
    ensure_database(url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return command


def machine() -> dict:
    import platform

    import django
    from django.db import connection

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg_version,) = cursor.fetchone()
        cursor.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN"
            " ('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost',"
            " 'synchronous_commit', 'jit') ORDER BY name"
        )
        pg_settings = dict(cursor.fetchall())
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def code_state() -> dict:
    """The commit measured, and the app files changed in the working tree (not committed)."""

    def git(*args):
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if not line[3:].startswith("bench/")
    ]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": changed}


def command_line(argv: list[str]) -> str:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.password:
        url = urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***")))
    args = " ".join(argv)
    if os.environ.get("MAKELEVEL"):  # run through `make bench`
        return f"DATABASE_URL={url} make bench" + (f"  (bench/run.py {args})" if args else "")
    return f"DATABASE_URL={url} .venv/bin/python bench/run.py {args}".rstrip()


def compare_small(url: str, args: argparse.Namespace) -> dict | None:
    """The same measures on a small database, in a child process (its own Django setup)."""
    small_url = with_database(url, urlsplit(url).path.lstrip("/") + "_small")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable,
            __file__,
            f"--reports={SMALL_REPORTS}",
            f"--cases={SMALL_CASES}",
            "--no-compare",
            "--refill",  # two seconds; the small database also serves quick experiments
            f"--json={out.name}",
            f"--single={min(args.single, 100)}",
            f"--batches={min(args.batches, 4)}",
            f"--batch-size={args.batch_size}",
            f"--repeat={args.repeat}",
        ]
        env = {**os.environ, "DATABASE_URL": small_url}
        print(f"\n== small-size comparison: {SMALL_REPORTS} reports in {SMALL_CASES} cases")
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            print(f"small-size run failed ({done.returncode})", file=sys.stderr)
            return None
        return json.loads(Path(out.name).read_text())


def run(args: argparse.Namespace, url: str) -> dict:
    import django

    created = ensure_database(url)
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench import fill as filling

    call_command("migrate", verbosity=0)
    results: dict = {
        "size": {"reports": args.reports, "cases": args.cases},
        "database": connection.settings_dict["NAME"],
        "database_created": created,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_before": os.getloadavg(),
    }

    held = filling.existing_fill()
    if args.refill or not held or (held["reports"], held["cases"]) != (args.reports, args.cases):
        print(f"filling {args.reports:,} reports in {args.cases:,} cases ...", flush=True)
        steps = filling.fill(args.reports, args.cases, datetime.now(UTC))
        results["fill"] = {"reused": False, "seconds": steps["total"], "steps": steps}
        detail = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
        print(f"filled in {steps['total']:.1f} s ({detail})")
    else:
        if filling.restore():
            print("put back the data a previous (interrupted) run had changed")
        results["fill"] = {
            "reused": True,
            "seconds": held["seconds"],
            "filled_at": held["filled_at"].isoformat(timespec="seconds"),
        }
        print(f"reusing the fill of {held['filled_at']:%Y-%m-%d %H:%M} ({held['seconds']:.1f} s)")
    results["contents_before"] = filling.describe()
    print(f"database: {results['contents_before']}", flush=True)

    filling.snapshot()
    try:
        results.update(measure_all(args))
    finally:
        results["contents_after"] = filling.describe()
        started = time.perf_counter()
        filling.restore()
        _progress("put the data back as filled", started)
    results["load_after"] = os.getloadavg()
    results["machine"] = machine()
    results["code"] = code_state()
    return results


def measure_all(args: argparse.Namespace) -> dict:
    """Queue and next case first, on the data as filled; then the intake, which adds to it;
    last next case again with no P0 case waiting."""
    from bench import fill as filling
    from bench import measure
    from reports.actions import create_integration

    reviewer, _ = filling.bench_users()
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    _, token = create_integration(f"bench-intake-{run_id}")
    subjects = measure.Subjects(run_id, random.Random(run_id))

    started = time.perf_counter()
    queue = measure.measure_queue(
        reviewer, measure.queue_variants(measure.queue_sample()), args.repeat
    )
    plans = explain_slowest(queue)  # now, on the data the measure saw
    _progress("queue", started)
    started = time.perf_counter()
    dashboard = measure.measure_dashboard(filling.bench_cso(), args.repeat)
    plans.update(explain_slowest([dashboard]))
    _progress("dashboard", started)
    started = time.perf_counter()
    next_case = measure.measure_next_case(reviewer.pk, args.claim_rounds, args.claims_per_round)
    plans.update(explain_slowest([next_case]))
    _progress("next case", started)
    started = time.perf_counter()
    single = measure.measure_intake_single(token, subjects, args.single)
    _progress("intake single", started)
    started = time.perf_counter()
    batch = measure.measure_intake_batch(token, subjects, args.batches, args.batch_size)
    _progress("intake batch", started)
    started = time.perf_counter()
    cleared = measure.clear_p0_queue()
    next_case_p1 = measure.measure_next_case(
        reviewer.pk,
        args.claim_rounds,
        args.claims_per_round,
        label="next case, no P0 case waiting (the usual queue)",
    )
    next_case_p1.extra["p0_cases_decided_first"] = cleared
    plans.update(explain_slowest([next_case_p1]))
    _progress("next case, no P0 waiting", started)
    return {
        "intake_single": single.as_dict(),
        "intake_batch": batch.as_dict(),
        "queue": [m.as_dict() for m in queue],
        "dashboard": dashboard.as_dict(),
        "next_case": next_case.as_dict(),
        "next_case_p1": next_case_p1.as_dict(),
        "explain": plans,
    }


def explain_slowest(measures) -> dict[str, str]:
    """EXPLAIN ANALYZE of each measure's slowest query; a query met before is named, not
    explained again (the assignee filter's query is the slowest of several views)."""
    from bench.measure import explain

    plans, first_label = {}, {}
    for m in measures:
        if not m.slowest_sql:
            continue
        key = m.slowest_sql.split(" LIMIT ")[0]
        if key in first_label:
            plans[m.label] = f'(the same query as under "{first_label[key]}")'
        else:
            first_label[key] = m.label
            plans[m.label] = explain(m.slowest_sql)
    return plans


def _progress(what: str, started: float) -> None:
    print(f"  measured {what} in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    url = database_url()
    if url is None:
        print(
            "bench/run.py needs PostgreSQL: set DATABASE_URL=postgres://user@host:port/dbname\n"
            "  e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench make bench",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakkme_safety.settings")
    os.environ.setdefault("BAKKME_SECRET_KEY", "bench-only-not-secret")
    os.environ.setdefault("BAKKME_EVIDENCE_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtS0VZLTMyQkE=")
    os.environ.setdefault("BAKKME_LEDGER_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtTEVER0VSMzI=")
    if os.environ.pop("BAKKME_DEBUG", None) is not None:
        print("BAKKME_DEBUG unset: the benchmark runs with DEBUG off.")

    results = run(args, url)
    results["command"] = command_line(argv)
    if not args.no_compare:
        results["small"] = compare_small(url, args)

    from bench.report import markdown, summary

    print(summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    default_size = (args.reports, args.cases) == (DEFAULT_REPORTS, DEFAULT_CASES)
    target = args.results or (str(ROOT / "bench" / "RESULTS.md") if default_size else None)
    if target:
        path = Path(target)
        path.write_text(markdown(results, path.read_text() if path.exists() else ""))
        print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
