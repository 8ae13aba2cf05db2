r"""Benchmark: the exact-hash lookup (MD5 / SHA-256) of detection.matching.match_hashes against
hash banks of 1,000,000 MD5 and 1,000,000 SHA-256 entries: median and p99 time, SQL queries
per lookup, and the lookup query's plan.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench make bench   # runs this too
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench \
        .venv/bin/python bench/exact_hashes.py

PostgreSQL only. It works in its own database, <name>_exacthash beside the one DATABASE_URL
names (created when missing), and fills the banks again each run (COPY, untimed, then VACUUM
ANALYZE). The banked hashes are those of made-up files (a random salt and a counter): three
enabled banks hold the MD5 of files 0 .. size-1 and the SHA-256 of files size/2 .. 3*size/2-1,
so a banked file matches by MD5, by SHA-256 or by both. Each query is a file's MD5 and SHA-256
passed to match_hashes(md5=..., sha256=...) as ingest does; half the files are banked, half are
not, in shuffled order, and every answer is checked. The figures go to the "exact-hash lookup"
section of bench/RESULTS.md.
"""

import argparse
import hashlib
import os
import random
import re
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
os.environ.pop("BAKKME_DEBUG", None)  # DEBUG off: no query log in the timed loop

SECTION_START = "<!-- exacthash: bench/exact_hashes.py rewrites from here -->"
SECTION_END = "<!-- exacthash: to here -->"
BANKS = ("bench-ncmec", "bench-industry", "bench-internal")
WARM_UP = 50
SALT = os.urandom(16)  # new files each run


# --- The made-up files and their hashes ----------------------------------------------------------


def md5_of(file: int) -> str:
    return hashlib.md5(SALT + file.to_bytes(8, "big")).hexdigest()  # noqa: S324 - bank hash


def sha256_of(file: int) -> str:
    return hashlib.sha256(SALT + file.to_bytes(8, "big")).hexdigest()


def md5_files(size: int) -> range:
    return range(size)


def sha256_files(size: int) -> range:
    return range(size // 2, size // 2 + size)


def expected(file: int, size: int) -> set[tuple[str, str]]:
    """The (signal type, value) of the entries a file matches."""
    found = set()
    if file in md5_files(size):
        found.add(("md5", md5_of(file)))
    if file in sha256_files(size):
        found.add(("sha256", sha256_of(file)))
    return found


def pick_files(count: int, size: int, rng: random.Random) -> list[int]:
    """Half banked files (by MD5, SHA-256 or both), half files never banked, shuffled."""
    banked = [rng.randrange(size // 2 + size) for _ in range(count // 2)]
    absent = [rng.randrange(10 * size, 20 * size) for _ in range(count - count // 2)]
    files = banked + absent
    rng.shuffle(files)
    return files


# --- The banks -------------------------------------------------------------------------------


def fill(size: int) -> float:
    """Empty the banks and COPY in the entries; VACUUM ANALYZE. Returns the seconds taken."""
    from django.db import connection

    from detection.models import HashBank

    started = time.perf_counter()
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE reports_hashbank, reports_hashentry RESTART IDENTITY CASCADE")
    banks = [
        HashBank.objects.create(name=name, source="industry", enabled=True).pk for name in BANKS
    ]
    columns = "bank_id, signal_type, value, note, created_at, false_positives"
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY reports_hashentry ({columns}) FROM STDIN") as copy:
            for file in md5_files(size):
                copy.write_row((banks[file % 3], "md5", md5_of(file), "", now, 0))
            for file in sha256_files(size):
                copy.write_row((banks[(file + 1) % 3], "sha256", sha256_of(file), "", now, 0))
        cursor.execute("VACUUM ANALYZE reports_hashentry")
        cursor.execute("ANALYZE reports_hashbank")
    return time.perf_counter() - started


def table_sizes() -> dict[str, int]:
    """Bytes of the entries table and of each of its indexes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'table', pg_relation_size('reports_hashentry') UNION ALL"
            " SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)"
            " FROM pg_index WHERE indrelid = 'reports_hashentry'::regclass"
        )
        return dict(cursor.fetchall())


# --- The lookups -------------------------------------------------------------------------------


def lookup(file: int):
    from detection.matching import match_hashes

    return match_hashes(md5=md5_of(file), sha256=sha256_of(file))


def check(file: int, matches, size: int) -> None:
    got = {(m.entry.signal_type, m.entry.value) for m in matches}
    want = expected(file, size)
    if got != want:
        raise SystemExit(f"Wrong answer for file {file}: got {sorted(got)}, want {sorted(want)}.")


def time_lookups(files: list[int], size: int) -> dict[str, list[float]]:
    """Milliseconds per lookup, split into hits and misses; every answer checked (untimed)."""
    times: dict[str, list[float]] = {"hit": [], "miss": []}
    for file in files:
        started = time.perf_counter()
        matches = lookup(file)
        ms = (time.perf_counter() - started) * 1000
        check(file, matches, size)
        times["hit" if expected(file, size) else "miss"].append(ms)
    return times


def queries_and_plan(size: int) -> tuple[int, int, str]:
    """SQL queries of one hit and one miss, and EXPLAIN ANALYZE of the hit's lookup query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.measure import explain

    hit, miss = size // 2, 15 * size  # banked by both MD5 and SHA-256; never banked
    with CaptureQueriesContext(connection) as hit_queries:
        check(hit, lookup(hit), size)
    with CaptureQueriesContext(connection) as miss_queries:
        check(miss, lookup(miss), size)
    plan = explain(hit_queries.captured_queries[0]["sql"])
    return len(hit_queries), len(miss_queries), plan


def execution_ms(plan: str) -> str:
    """The "Execution Time" of an EXPLAIN ANALYZE plan, in ms ("?" when missing)."""
    found = re.search(r"Execution Time: ([0-9.]+) ms", plan)
    return found.group(1) if found else "?"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


# --- The run -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="MD5 and SHA-256 entries each")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1, help="for the choice of query files")
    args = parser.parse_args()

    from bench.run import code_state, machine, migrated_side_database

    command = migrated_side_database("exacthash", "bench/exact_hashes.py")
    if command is None:
        return 2
    print(f"filling {args.size:,} MD5 and {args.size:,} SHA-256 entries ...", flush=True)
    fill_seconds = fill(args.size)
    print(f"filled in {fill_seconds:.1f} s", flush=True)

    rng = random.Random(args.seed)
    time_lookups(pick_files(WARM_UP, args.size, rng), args.size)
    times = time_lookups(pick_files(args.queries, args.size, rng), args.size)
    hit_queries, miss_queries, plan = queries_and_plan(args.size)
    figures = {
        "command": command,
        "size": args.size,
        "fill_seconds": fill_seconds,
        "times": times,
        "queries": {"hit": hit_queries, "miss": miss_queries},
        "plan": plan,
        "tables": table_sizes(),
        "machine": machine(),
        "code": code_state(),
    }
    print(plan)
    for line in table(figures):
        print(line)
    write_results(figures)
    return 0


def _queries_shown(queries: dict) -> str:
    if queries["hit"] == queries["miss"]:
        return str(queries["hit"])
    return f"{queries['miss']} or {queries['hit']}"


def _queries_sentence(queries: dict) -> str:
    if queries["hit"] == queries["miss"] == 1:
        return "A lookup is one SQL query, hit or miss: the matched entries come with their banks."
    return f"A miss is {queries['miss']} SQL queries, a hit {queries['hit']}."


def table(figures: dict) -> list[str]:
    times, queries = figures["times"], figures["queries"]
    rows = [
        ("hits (banked file)", times["hit"], str(queries["hit"])),
        ("misses (file not banked)", times["miss"], str(queries["miss"])),
        ("all", times["hit"] + times["miss"], _queries_shown(queries)),
    ]
    return [
        "| lookups | n | median ms | p99 ms | SQL queries |",
        "|---|---|---|---|---|",
        *[
            f"| {label} | {len(ms)} | {statistics.median(ms):.3f} | {p99(ms):.3f} | {n} |"
            for label, ms, n in rows
        ],
    ]


def write_results(figures: dict) -> None:
    """Replace the exact-hash section of bench/RESULTS.md (or add it at the end)."""
    from bench.report import replace_section, run_header

    code, machine = figures["code"], figures["machine"]
    size, tables = figures["size"], figures["tables"]
    times = figures["times"]
    ratio = statistics.median(times["hit"]) / statistics.median(times["miss"])
    indexes = ", ".join(
        f"`{name}` {b / 2**20:.0f} MiB" for name, b in tables.items() if name != "table"
    )
    section = "\n".join(
        [
            SECTION_START,
            *run_header(
                "Exact-hash lookup (written by `bench/exact_hashes.py`)",
                code,
                machine,
                figures["command"],
            ),
            f"{size:,} MD5 and {size:,} SHA-256 entries (hashes of made-up files) in"
            f" {len(BANKS)} enabled banks, filled by COPY in {figures['fill_seconds']:.0f} s"
            f" (untimed), then VACUUM ANALYZE; table {tables['table'] / 2**20:.0f} MiB, indexes:"
            f" {indexes}. {len(times['hit']) + len(times['miss']):,} lookups after {WARM_UP}"
            " warm-up ones, one after another: each is"
            " `detection.matching.match_hashes(md5=..., sha256=...)` with a file's two hashes, as"
            " at ingest; half the files are banked (by MD5, SHA-256 or both), half not. Every"
            " answer was checked: each banked file returned its entries, each other file none.",
            "",
            *table(figures),
            "",
            "**Exact-hash lookup median: "
            f"{statistics.median(times['hit'] + times['miss']):.3f} ms** (an index lookup; hits"
            f" / misses {ratio:.2f}). {_queries_sentence(figures['queries'])} The lookup query"
            " runs in"
            f" {execution_ms(figures['plan'])} ms in PostgreSQL (below): most of each lookup is"
            " Django building the queries and the round trips.",
            "",
            "EXPLAIN (ANALYZE, BUFFERS) of the lookup query for a hit (a file banked by both"
            " hashes):",
            "",
            "```",
            figures["plan"],
            "```",
            SECTION_END,
        ]
    )
    print(f"figures written to {replace_section(SECTION_START, SECTION_END, section)}")


if __name__ == "__main__":
    sys.exit(main())
