"""Benchmark: the PDQ index (reports/matching.py) beside python-threatexchange's PDQ indexes on
the same random hashes in the same run: build time and memory, median and p99 lookup time,
and whether the matches are identical; and the time another process takes to map the index the
first one saved. No database needed.

    .venv/bin/python bench/pdq.py                  # 1,000,000 bank hashes (make bench)
    .venv/bin/python bench/pdq.py --size 100000 --queries 10000   # the issue's set (make bench)

Queries: half near copies of bank hashes (0..31 random bits flipped), half random hashes.
References: threatexchange's PDQIndex (HMA's default: faiss IndexBinaryMultiHash, 16 tables,
nflip 0) and PDQIndex2 (faiss IndexFlatL2 range search over
float vectors, exact; 1 KB a hash, so it is built only up to --flat-max hashes). Figures go to
a "PDQ index" section of bench/RESULTS.md, one per size and number of queries.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakkme_safety.settings")
os.environ.setdefault("BAKKME_SECRET_KEY", "bench-only")
os.environ.setdefault("BAKKME_EVIDENCE_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtS0VZLTMyQkE=")
os.environ.setdefault("BAKKME_LEDGER_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtTEVER0VSMzI=")

# One section of bench/RESULTS.md per size and number of queries: each run rewrites its own.
SECTION_START = "<!-- pdq {size}x{queries}: bench/pdq.py rewrites from here -->"
SECTION_END = "<!-- pdq {size}x{queries}: to here -->"


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_build(build):
    before, start = rss_mb(), time.perf_counter()
    index = build()
    return index, time.perf_counter() - start, rss_mb() - before


def lookups(query, queries):
    times, answers = [], []
    for q in queries:
        start = time.perf_counter()
        answers.append(query(q))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--flat-max", type=int, default=200_000)
    args = parser.parse_args()

    import django

    django.setup()
    import faiss
    import numpy as np
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex as TxMultiHash
    from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2 as TxFlat

    from detection.matching import PDQIndex

    faiss.omp_set_num_threads(1)  # one request, one core: as a worker answers
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (args.size, 32), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in codes]
    queries = []
    for i in range(args.queries):
        if i % 2:
            queries.append(rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex())
        else:
            q = codes[rng.integers(args.size)].copy()
            for bit in rng.choice(256, rng.integers(0, 32), replace=False):
                q[bit // 8] ^= 1 << (bit % 8)
            queries.append(q.tobytes().hex())

    rows = []
    ours, build_s, mem = timed_build(lambda: PDQIndex(hexes, range(args.size)))
    med, p99, our_answers = lookups(lambda q: sorted(ours.search(q, 31)), queries)
    rows.append(("ours: numpy multi-index hashing, exact", build_s, mem, med, p99, "-"))
    # Another process of the same machine maps the index the first one saved (detection.matching).
    with tempfile.TemporaryDirectory() as tmp:
        ours.save(Path(tmp) / "index")
        ours = None
        mapped, load_s, mem = timed_build(lambda: PDQIndex.load(Path(tmp) / "index"))
        med, p99, answers = lookups(lambda q: sorted(mapped.search(q, 31)), queries)
        mapped = None
    mapped_row = ["ours, mapped from the saved files by another process", load_s, mem, med, p99]

    def compare(answers):
        same = sum(a == b for a, b in zip(answers, our_answers, strict=True))
        missed = sum(len(set(b) - set(a)) for a, b in zip(answers, our_answers, strict=True))
        return f"{same}/{len(answers)} identical, {missed} of ours missing"

    rows.append((*mapped_row, compare(answers)))

    def tx_query(index):
        return lambda q: sorted(
            (m.metadata, int(m.similarity_info.distance)) for m in index.query(q)
        )

    entries = list(zip(hexes, range(args.size), strict=True))
    tx, build_s, mem = timed_build(lambda: TxMultiHash(entries))
    med, p99, answers = lookups(tx_query(tx), queries)
    rows.append(("threatexchange PDQIndex (IndexBinaryMultiHash)", build_s, mem, med, p99,
                 compare(answers)))  # fmt: skip
    tx = None
    if args.size <= args.flat_max:
        tx, build_s, mem = timed_build(lambda: TxFlat(entries=entries))
        med, p99, answers = lookups(tx_query(tx), queries)
        rows.append(("threatexchange PDQIndex2 (IndexFlatL2), exact", build_s, mem, med, p99,
                     compare(answers)))  # fmt: skip
        tx = None
    found = sum(bool(a) for a in our_answers)
    command = " ".join([".venv/bin/python", "bench/pdq.py", *sys.argv[1:]])
    start = SECTION_START.format(size=args.size, queries=args.queries)
    end = SECTION_END.format(size=args.size, queries=args.queries)
    lines = [
        start,
        f"## PDQ index, {args.size:,} hashes, {args.queries:,} queries (written by `bench/pdq.py`)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, one thread. Command: `{command}`",
        "",
        f"{args.size:,} random PDQ hashes; {len(queries):,} queries (half near copies at 0..31"
        f" bits, half random; {found} with matches), radius 31.",
        "",
        "| index | build s | memory MB | median ms | p99 ms | answers vs ours |",
        "|---|---|---|---|---|---|",
        *[f"| {n} | {b:.2f} | {m:.0f} | {md:.3f} | {p:.3f} | {c} |" for n, b, m, md, p, c in rows],
        "",
        "The mapped row's build is the time to map the saved arrays, its memory what that adds"
        " at once: the pages are the files', read as lookups touch them and shared by the"
        " processes of the machine.",
        end,
    ]
    from bench.report import replace_section

    print("\n".join(lines))
    print(f"figures written to {replace_section(start, end, chr(10).join(lines))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
