"""bench/run.py's figures as a printed summary and as bench/RESULTS.md."""

from pathlib import Path

NOTES_MARKER = "<!-- notes: bench/run.py rewrites everything above this line and keeps the rest -->"

QUEUE_MAX_QUERIES = 15
QUEUE_MEDIAN_MS = 150
NEXT_CASE_MEDIAN_MS = 20
BATCH_REPORTS_PER_S = 2000
FILL_SECONDS = 600
DASHBOARD_MEDIAN_MS = 500


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _max_queries(results: dict | None) -> int | None:
    if not results:
        return None
    return max(max(m["queries"]) for m in results["queue"])


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(measure, figure, target, met) rows."""
    default = results["queue"][0]
    slowest_view = max(results["queue"], key=lambda m: m["median_ms"])
    small = results.get("small")
    full_q, small_q = _max_queries(results), _max_queries(small)
    fill = results["fill"]
    rows = [
        (
            "Fill (bulk, "
            + ("reused; time of the original fill)" if fill["reused"] else "this run)"),
            f"{fill['seconds']:.0f} s",
            f"< {FILL_SECONDS} s",
            fill["seconds"] < FILL_SECONDS,
        ),
        (
            "API intake, single",
            f"{results['intake_single']['extra']['reports_per_s']:.0f} reports/s",
            "(none)",
            None,
        ),
        (
            "API intake, batch of 500",
            f"{results['intake_batch']['extra']['reports_per_s']:.0f} reports/s",
            f">= {BATCH_REPORTS_PER_S} reports/s",
            results["intake_batch"]["extra"]["reports_per_s"] >= BATCH_REPORTS_PER_S,
        ),
        (
            "Queue page (default view), median",
            f"{default['median_ms']:.0f} ms",
            f"< {QUEUE_MEDIAN_MS} ms",
            default["median_ms"] < QUEUE_MEDIAN_MS,
        ),
        (
            f"Queue page, slowest view measured ({slowest_view['label']}), median",
            f"{slowest_view['median_ms']:.0f} ms",
            f"< {QUEUE_MEDIAN_MS} ms",
            slowest_view["median_ms"] < QUEUE_MEDIAN_MS,
        ),
        (
            f"Queue page queries, most of any view ({results['size']['reports']:,} reports)",
            str(full_q),
            f"<= {QUEUE_MAX_QUERIES}",
            full_q <= QUEUE_MAX_QUERIES,
        ),
    ]
    if small:
        rows.append(
            (
                f"Queue page queries, most of any view ({small['size']['reports']:,} reports)",
                str(small_q),
                f"<= {QUEUE_MAX_QUERIES}, same as full size",
                small_q <= QUEUE_MAX_QUERIES and small_q == full_q,
            )
        )
    rows.append(
        (
            "CSO dashboard (last 30 days), median",
            f"{results['dashboard']['median_ms']:.0f} ms",
            f"< {DASHBOARD_MEDIAN_MS} ms",
            results["dashboard"]["median_ms"] < DASHBOARD_MEDIAN_MS,
        )
    )
    for key, label in [
        ("next_case", "Next case (claim_next_case), P0 cases waiting, median"),
        ("next_case_p1", "Next case, no P0 case waiting (the usual queue), median"),
    ]:
        rows.append(
            (
                label,
                f"{results[key]['median_ms']:.1f} ms",
                f"< {NEXT_CASE_MEDIAN_MS} ms",
                results[key]["median_ms"] < NEXT_CASE_MEDIAN_MS,
            )
        )
    return rows


def summary(results: dict) -> str:
    size = results["size"]
    lines = ["", f"== {size['reports']:,} reports in {size['cases']:,} cases"]
    for measure, figure, target, met in targets(results):
        verdict = "" if met is None else ("  ok" if met else "  MISSED")
        lines.append(f"{measure:<75} {figure:>16}  target {target}{verdict}")
    lines.append("")
    small = {m["label"]: m for m in (results.get("small") or {}).get("queue", [])}
    for m in results["queue"]:
        other = small.get(m["label"])
        at_small = (
            f"  (small: {other['median_ms']:.0f} ms, {other['query_counts']} q)" if other else ""
        )
        lines.append(
            f"  {m['label']:<50} median {m['median_ms']:7.1f} ms  p90 {m['p90_ms']:7.1f} ms"
            f"  queries {m['query_counts']}{at_small}"
        )
    return "\n".join(lines)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _statuses(measure: dict) -> str:
    counts = measure["extra"].get("statuses", {})
    return ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))


def _loads(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown(results: dict, previous: str = "") -> str:
    m, size, fill = results["machine"], results["size"], results["fill"]
    small = results.get("small")
    before, after = results["contents_before"], results["contents_after"]
    out = [
        "# Benchmark: intake, triage queue, next case, CSO dashboard",
        "",
        f"Generated by `bench/run.py` on {results['started_at']} (UTC): "
        f"{size['reports']:,} reports in {size['cases']:,} cases, PostgreSQL.",
        "",
        "## Command",
        "",
        "```",
        results["command"],
        "```",
        "",
        "## Code measured",
        "",
        f"Commit `{results['code']['commit']}`"
        + (
            "; app files changed in the working tree (not committed): "
            + ", ".join(f"`{name}`" for name in results["code"]["uncommitted"])
            if results["code"]["uncommitted"]
            else "; clean working tree."
        ),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['nproc']} cores (`nproc`); RAM {m['ram_gib']} GiB; "
        f"Linux {m['kernel']}",
        f"- PostgreSQL {m['postgresql']} on the same machine, settings as installed: "
        + ", ".join(f"{k}={v}" for k, v in m["postgresql_settings"].items()),
        f"- Python {m['python']}, Django {m['django']}; DEBUG off (settings "
        "`bakkme_safety.settings`)",
        f"- Load average (1, 5, 15 min) before: {_loads(results['load_before'])}; "
        f"after: {_loads(results['load_after'])}. The machine was shared "
        "(another engineer's test runs), so timings are noisy.",
        "",
        "## Data",
        "",
    ]
    if fill["reused"]:
        out.append(
            f"- Fill reused (made {fill['filled_at']} in {fill['seconds']:.0f} s); "
            "`--refill` redoes it."
        )
    else:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in fill["steps"].items() if k != "total")
        out.append(f"- Filled this run in **{fill['seconds']:.0f} s** ({steps}).")
    out += [
        f"- Before the measures: {before['cases']:,} cases, {before['reports']:,} reports; "
        f"cases by state: " + ", ".join(f"{k} {v:,}" for k, v in before["states"].items()),
        f"- Reports per case: median {before['reports_per_case_median']}, "
        f"max {before['reports_per_case_max']} (mean "
        f"{before['reports'] / before['cases']:.1f}).",
        f"- At the end of the measures: {after['cases']:,} cases, {after['reports']:,} reports "
        "(then put back as filled).",
        "",
        "## Figures against the targets",
        "",
        *_table(
            ["Measure", "Figure", "Target", "Met?"],
            [
                [measure, figure, target, "" if met is None else _met(met)]
                for measure, figure, target, met in targets(results)
            ],
        ),
        "",
        "## Detail",
        "",
        "### API intake (django.test.Client, one request after another)",
        "",
    ]
    intake_rows = [
        [
            r["label"] + where,
            r["n"],
            _ms(r["median_ms"]),
            _ms(r["p90_ms"]),
            f"{r['extra']['reports_per_s']:.0f}",
            ", ".join(map(str, r["query_counts"])),
            f"{r['slowest_sql_ms']:.1f}",
            _statuses(r),
        ]
        for key in ["intake_single", "intake_batch"]
        for where, r in [("", results[key]), (" (small size)", (small or {}).get(key))]
        if r
    ]
    out += _table(
        [
            "Measure",
            "n",
            "median ms/request",
            "p90 ms",
            "reports/s",
            "queries/request",
            "slowest query ms",
            "answers (report: status)",
        ],
        intake_rows,
    )
    out += [
        "",
        "Reports: 65% about new accounts, 30% about open cases (joining them), 5% about decided "
        "cases (reopening them); in a batch 5% also repeat a subject of the same batch. Every "
        "report has a new idempotency key, so every answer should be 201.",
        "",
        "### Queue changelist (/admin/cases/case/ as a reviewer)",
        "",
    ]
    small_queue = {q["label"]: q for q in (small or {}).get("queue", [])}
    queue_rows = []
    for q in results["queue"]:
        s = small_queue.get(q["label"])
        queue_rows.append(
            [
                f"{q['label']}<br>`{q['extra']['url']}`",
                q["n"],
                _ms(q["median_ms"]),
                _ms(q["p90_ms"]),
                ", ".join(map(str, q["query_counts"])),
                f"{q['slowest_sql_ms']:.1f}",
                q["extra"]["rows"],
                _ms(s["median_ms"]) if s else "",
                ", ".join(map(str, s["query_counts"])) if s else "",
            ]
        )
    out += _table(
        [
            "View",
            "n",
            "median ms",
            "p90 ms",
            "queries",
            "slowest query ms",
            "rows",
            "small: median ms",
            "small: queries",
        ],
        queue_rows,
    )
    small_dashboard = (small or {}).get("dashboard")
    out += [
        "",
        "### CSO dashboard (/admin/dashboard/ as the Child Safety Officer)",
        "",
        *_table(
            ["Measure", "n", "median ms", "p90 ms", "queries", "slowest query ms"],
            [
                [
                    r["label"] + where,
                    r["n"],
                    _ms(r["median_ms"]),
                    _ms(r["p90_ms"]),
                    ", ".join(map(str, r["query_counts"])),
                    f"{r['slowest_sql_ms']:.1f}",
                ]
                for where, r in [("", results["dashboard"]), (" (small size)", small_dashboard)]
                if r
            ],
        ),
    ]
    out += [
        "",
        "### Next case (cases.actions.claim_next_case)",
        "",
        "Each round claims cases one after another (each the most urgent free one), then "
        "releases them all, so the queue is not drained. The second measure first decides the "
        "open P0 cases (the usual state: P0 cases have a one-hour SLA and are taken at once), so "
        "the most urgent free case is a P1.",
        "",
    ]
    next_rows = []
    for key in ["next_case", "next_case_p1"]:
        for where, r in [("", results[key]), (" (small size)", (small or {}).get(key))]:
            if r:
                next_rows.append(
                    [
                        r["label"] + where,
                        f"{r['n']} ({r['extra']['rounds']} x {r['extra']['per_round']})",
                        _ms(r["median_ms"]),
                        _ms(r["p90_ms"]),
                        ", ".join(map(str, r["query_counts"])),
                        f"{r['slowest_sql_ms']:.1f}",
                    ]
                )
    out += _table(
        ["Measure", "n (rounds x claims)", "median ms", "p90 ms", "queries", "slowest query ms"],
        next_rows,
    )
    out += [
        "",
        "## Plans of the slowest query (EXPLAIN ANALYZE, BUFFERS, right after each measure)",
        "",
    ]
    for label, plan in results["explain"].items():
        if plan.startswith("(the same query"):
            out += [f"### {label}", "", plan, ""]
        elif plan:
            out += [f"### {label}", "", "```", plan, "```", ""]
    notes = previous.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in previous else "\n"
    return "\n".join(out) + "\n" + NOTES_MARKER + notes


def replace_section(start: str, end: str, section: str) -> Path:
    """Put `section` (which begins with `start` and ends with `end`) into bench/RESULTS.md in
    place of the one there, or at the end; the rest of the file is kept."""
    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path


def run_header(title: str, code: dict, machine: dict, command: str) -> list[str]:
    """The opening lines of a benchmark's own section: its title, when and where it ran (from
    bench.run.code_state() and machine()), and the command that ran it."""
    from datetime import UTC, datetime

    changed = " (app files changed in the working tree)" if code["uncommitted"] else ""
    return [
        f"## {title}",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on commit `{code['commit']}`{changed};"
        f" {machine['cpu']}, {machine['nproc']} cores, {machine['ram_gib']} GiB RAM,"
        f" PostgreSQL {machine['postgresql']}, Python {machine['python']}. Command:",
        "",
        "```",
        command,
        "```",
        "",
    ]
