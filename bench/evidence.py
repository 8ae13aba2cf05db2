"""Benchmark: exporting an evidence package of a case with 1 GiB of evidence in 200 files, beside
`sha256sum` and `zip -q -r` over the same plaintext files in the same run (target: the export
takes at most 2.5x their sum); and ingesting 1,000 generated images through vault.collect.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench make bench   # runs this too
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bakkme_bench .venv/bin/python bench/evidence.py

PostgreSQL only. It works in its own database, <name>_evidence beside the one DATABASE_URL names
(dropped and created again each run), and a temporary folder (the vault, the plaintext files,
the packages: about five times --megabytes free) removed at the end. The evidence is random bytes
(os.urandom), collected through vault.collect (untimed). Each round, in alternating order:

1. the export: `manage.py export_evidence` (build the bag, zip, encrypt, store; then verify and
   write the decrypted zip) in a child process of its own, so its peak RSS (VmHWM) is the
   export's and not this script's;
2. the tools: `sha256sum` over the plaintext files, then `zip -q -r` of them (and, for
   reference, `zip -q -r -0`, storing without compression as the package does).

Then the ingest: --images generated 256x256 PNG patterns through vault.collect, per round.
The figures go to the "evidence" section of bench/RESULTS.md.
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakkme_safety.settings")
os.environ.setdefault("BAKKME_SECRET_KEY", "bench-only")
os.environ.setdefault("BAKKME_EVIDENCE_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtS0VZLTMyQkE=")
os.environ.setdefault("BAKKME_LEDGER_KEY", "QkVOQ0gtT05MWS1OT1QtQS1TRUNSRVQtTEVER0VSMzI=")

SECTION_START = "<!-- evidence: bench/evidence.py rewrites from here -->"
SECTION_END = "<!-- evidence: to here -->"
TARGET_RATIO = 2.5
MIB = 1024 * 1024


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    from bench.run import with_database

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def timed(command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def pattern_png(seed: int, side: int = 256) -> bytes:
    """A generated test image: stripes and a circle, different for each seed."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (side, side), (seed % 256, 80, 160))
    draw = ImageDraw.Draw(image)
    for x in range(0, side, 8 + seed % 9):
        draw.rectangle([x, 0, x + 3, side], fill=(200, (x * 7 + seed) % 256, 40))
    offset = seed % (side // 2)
    draw.ellipse([offset, offset, offset + side // 3, offset + side // 3], fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# --- The export, in its own process --------------------------------------------------------------


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    through fork and exec, so a child would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("No VmHWM in /proc/self/status (Linux only).")


def child_export(case_id: int, user: str, out: str) -> int:
    """Run in the child: time export_evidence, print the figures as JSON."""
    import django

    django.setup()
    from django.core.management import call_command

    rss_before = peak_rss_kib()
    started = time.perf_counter()
    printed = io.StringIO()
    call_command(
        "export_evidence",
        str(case_id),
        out=out,
        user=user,
        purpose="benchmark",
        recipient="benchmark",
        stdout=printed,
        stderr=io.StringIO(),
    )
    seconds = time.perf_counter() - started
    rss_after = peak_rss_kib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "maxrss_mib": rss_after / 1024,
                "setup_rss_mib": rss_before / 1024,
                "size": Path(out).stat().st_size,
                "printed": printed.getvalue(),
            }
        )
    )
    return 0


def run_export(case_id: int, user: str, out: Path) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-export",
            str(case_id),
            "--user",
            user,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"The export failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- The run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=1024, help="MiB of evidence in the case")
    parser.add_argument("--images", type=int, default=1000, help="images ingested per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmp", help="folder for the temporary files (default: system temp)")
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--child-export", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        return child_export(args.child_export, args.user, args.out)

    missing = [tool for tool in ("sha256sum", "zip") if shutil.which(tool) is None]
    if missing:
        print(f"Missing the comparison tools: {', '.join(missing)}.", file=sys.stderr)
        return 2
    from bench.run import code_state, machine, side_database

    found = side_database("evidence", "bench/evidence.py")
    if found is None:
        return 2
    command, url = found
    recreate_database(url)
    work = Path(tempfile.mkdtemp(prefix="bakkme-bench-evidence-", dir=args.tmp))
    os.environ["BAKKME_EVIDENCE_ROOT"] = str(work / "vault")
    os.environ["BAKKME_PACKAGE_TEMP_DIR"] = str(work / "package-temp")
    (work / "package-temp").mkdir()
    try:
        figures = measure(args, work)
        figures.update(machine=machine(), code=code_state(), command=command)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, figures)
    if not args.no_results:
        write_results(args, figures)
    return 0


def measure(args, work: Path) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from evidence import vault
    from reports.actions import build_report, create_integration, ingest_reports
    from reports.api.serializers import ReportInSerializer

    call_command("migrate", verbosity=0)
    integration, _ = create_integration("bench-evidence")

    def new_case(n: int):
        payload = {
            "idempotency_key": f"bench-evidence-{n}",
            "source": "in_app",
            "category": "grooming",
            "surface": "message",
            "received_at": datetime.now(UTC).isoformat(),
            "reported_account": {"platform_id": f"bench-u-{n}", "username": f"bench{n}"},
            "content": {"platform_id": f"bench-m-{n}", "type": "message", "text": "placeholder"},
            "description": "placeholder",
        }
        serializer = ReportInSerializer(data=payload)
        serializer.is_valid(raise_exception=True)
        report = build_report(integration, serializer.validated_data, "0" * 64)
        (result,) = ingest_reports(integration, [report])
        return result.report.case

    cso, _ = get_user_model().objects.get_or_create(
        username="bench_cso", defaults={"is_staff": True}
    )
    cso.groups.set([Group.objects.get(name="child_safety_officer")])
    from bench.fill import qualify

    qualify(cso)

    # The evidence: random files, written once as plaintext (for the tools) and collected.
    plain = work / "plain"
    plain.mkdir()
    case = new_case(0)
    each = args.megabytes * MIB // args.files
    started = time.perf_counter()
    for number in range(args.files):
        path = plain / f"file-{number:04d}.bin"
        with open(path, "wb") as out:
            for _ in range(each // MIB):
                out.write(os.urandom(MIB))
            out.write(os.urandom(each % MIB))
        with open(path, "rb") as source:
            vault.collect(source, case=case, original_name=path.name)
    collect_seconds = time.perf_counter() - started
    total = each * args.files
    print(f"{args.files} files, {total / MIB:,.0f} MiB collected in {collect_seconds:.1f} s")

    export_runs, tool_runs = [], []
    for round_ in range(args.rounds):
        order = ["export", "tools"] if round_ % 2 == 0 else ["tools", "export"]
        for what in order:
            if what == "export":
                out = work / f"package-{round_}.zip"
                run = run_export(case.pk, cso.username, out)
                if round_ == 0:  # untimed: the export is a valid bag
                    started = time.perf_counter()
                    call_command("verify_package", str(out), stdout=io.StringIO())
                    run["verify_seconds"] = time.perf_counter() - started
                out.unlink()
                export_runs.append(run)
                print(f"round {round_ + 1}: export {run['seconds']:.1f} s, "
                      f"peak RSS {run['maxrss_mib']:.0f} MiB")  # fmt: skip
            else:
                files = sorted(str(p) for p in plain.iterdir())
                sha = timed(["sha256sum", *files])
                deflated = timed(["zip", "-q", "-r", str(work / "tools.zip"), "plain"], cwd=work)
                (work / "tools.zip").unlink()
                stored = timed(
                    ["zip", "-q", "-r", "-0", str(work / "tools.zip"), "plain"], cwd=work
                )
                (work / "tools.zip").unlink()
                tool_runs.append({"sha256sum": sha, "zip": deflated, "zip0": stored})
                print(f"round {round_ + 1}: sha256sum {sha:.1f} s, zip {deflated:.1f} s, "
                      f"zip -0 {stored:.1f} s")  # fmt: skip

    # Python's zipfile over the same files, stored and deflated: why packages store.
    zip_methods = {}
    for label, method in (("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED)):
        started = time.perf_counter()
        with zipfile.ZipFile(work / "method.zip", "w", compression=method) as archive:
            for path in sorted(plain.iterdir()):
                archive.write(path, path.name)
        zip_methods[label] = {
            "seconds": time.perf_counter() - started,
            "size": (work / "method.zip").stat().st_size,
        }
        (work / "method.zip").unlink()
    shutil.rmtree(plain)

    # The ingest: generated images through vault.collect (PDQ, EXIF, encryption, custody).
    ingest_runs = []
    for round_ in range(args.rounds):
        images = [pattern_png(round_ * args.images + n) for n in range(args.images)]
        image_case = new_case(round_ + 1)
        started = time.perf_counter()
        for n, data in enumerate(images):
            vault.collect(io.BytesIO(data), case=image_case, original_name=f"pattern-{n}.png")
        seconds = time.perf_counter() - started
        ingest_runs.append(args.images / seconds)
        print(f"round {round_ + 1}: ingest {args.images / seconds:.0f} images/s")

    return {
        "total_bytes": total,
        "collect_seconds": collect_seconds,
        "export": export_runs,
        "tools": tool_runs,
        "zip_methods": zip_methods,
        "ingest_per_second": ingest_runs,
        "image_bytes": statistics.median(len(pattern_png(n)) for n in range(20)),
    }


def _median(runs, key):
    return statistics.median(run[key] for run in runs)


def summary(figures: dict) -> dict:
    export = _median(figures["export"], "seconds")
    tools = statistics.median(run["sha256sum"] + run["zip"] for run in figures["tools"])
    tools_stored = statistics.median(run["sha256sum"] + run["zip0"] for run in figures["tools"])
    return {
        "export": export,
        "mb_per_s": figures["total_bytes"] / MIB / export,
        "rss": max(run["maxrss_mib"] for run in figures["export"]),
        "setup_rss": max(run["setup_rss_mib"] for run in figures["export"]),
        "sha256sum": _median(figures["tools"], "sha256sum"),
        "zip": _median(figures["tools"], "zip"),
        "zip0": _median(figures["tools"], "zip0"),
        "tools": tools,
        "ratio": export / tools,
        "ratio_stored": export / tools_stored,
        "ingest": statistics.median(figures["ingest_per_second"]),
    }


def report(args, figures: dict) -> None:
    s = summary(figures)
    print(f"export: median {s['export']:.1f} s ({s['mb_per_s']:.0f} MiB/s), "
          f"peak RSS {s['rss']:.0f} MiB")  # fmt: skip
    print(f"sha256sum + zip: median {s['tools']:.1f} s; ratio {s['ratio']:.2f} "
          f"(target <= {TARGET_RATIO}); against sha256sum + zip -0: "
          f"{s['ratio_stored']:.2f}")  # fmt: skip
    print(f"ingest: median {s['ingest']:.0f} images/s")


def _runs(values, fmt="{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def write_results(args, figures: dict) -> None:
    """Replace the evidence section of bench/RESULTS.md (or add it at the end)."""
    from bench.report import replace_section, run_header

    s = summary(figures)
    code, machine = figures["code"], figures["machine"]
    exports, tools = figures["export"], figures["tools"]
    methods = figures["zip_methods"]
    verify = next((run["verify_seconds"] for run in exports if "verify_seconds" in run), None)
    section = "\n".join(
        [
            SECTION_START,
            *run_header(
                "Evidence packages and ingest (written by `bench/evidence.py`)",
                code,
                machine,
                figures["command"],
            ),
            f"A case with {figures['total_bytes'] / MIB:,.0f} MiB of evidence in {args.files}"
            f" files (random bytes), {args.rounds} rounds, export and tools in alternating order."
            " The export is `manage.py export_evidence` in a child process: build the BagIt bag"
            " (decrypt and check every item, SHA-256 and SHA-512 manifests), zip it (stored)"
            " straight into the encryptor, store it, then check the stored zip and write it"
            " decrypted to a file.",
            "",
            "| Measure | median s | runs (s) | MiB/s |",
            "|---|---|---|---|",
            f"| export (`export_evidence`) | {s['export']:.1f} | "
            f"{_runs(r['seconds'] for r in exports)} | {s['mb_per_s']:.0f} |",
            f"| `sha256sum` | {s['sha256sum']:.1f} | {_runs(r['sha256sum'] for r in tools)} | |",
            f"| `zip -q -r` | {s['zip']:.1f} | {_runs(r['zip'] for r in tools)} | |",
            f"| `zip -q -r -0` (reference: no compression) | {s['zip0']:.1f} | "
            f"{_runs(r['zip0'] for r in tools)} | |",
            "",
            f"**Ratio export / (sha256sum + zip): {s['ratio']:.2f}** (target at most"
            f" {TARGET_RATIO}: {'met' if s['ratio'] <= TARGET_RATIO else '**missed**'}). Against"
            f" sha256sum + `zip -0` (the same work without compression): {s['ratio_stored']:.2f}.",
            "",
            f"Peak RSS of the export process: {s['rss']:.0f} MiB ({s['setup_rss']:.0f} MiB once"
            " Django has started, before the export; the limit for a 2 GiB case is 300 MB)."
            + (
                f" `verify_package` on the first round's zip: valid, {verify:.1f} s."
                if verify
                else ""
            ),  # fmt: skip
            "",
            "Python's zipfile over the same files: stored"
            f" {methods['stored']['seconds']:.1f} s, deflated {methods['deflated']['seconds']:.1f}"
            f" s ({methods['deflated']['size'] / methods['stored']['size']:.3f} of the stored"
            " size): evidence is mostly compressed media, so packages store.",
            "",
            f"Ingest: {args.images:,} generated 256x256 PNG patterns (median"
            f" {figures['image_bytes'] / 1024:.1f} KiB) through `vault.collect` (type, PDQ, EXIF,"
            f" encryption, custody event) per round: **median {s['ingest']:.0f} images/s** (runs:"
            f" {_runs(figures['ingest_per_second'], '{:.0f}')}).",
            SECTION_END,
        ]
    )

    path = replace_section(SECTION_START, SECTION_END, section)
    print(f"figures written to {path}")


if __name__ == "__main__":
    sys.exit(main())
