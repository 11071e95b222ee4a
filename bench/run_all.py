"""Run every benchmark of issue #7 and print the combined report.

    python3 bench/run_all.py            # full run: 3 runs per figure, all databases (~30 min)
    python3 bench/run_all.py --quick    # smoke run (~6 min)
    python3 bench/run_all.py --only drain,latency --db postgres

Each script also runs alone (see bench/README.md). Every script keeps its figures in
bench/results/NAME.json and NAME.md; this one adds bench/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.log import log
from bench.paths import BENCH, RESULTS
from bench.reports import machine
from bench.tables import table

SCRIPTS = ["drain", "scaling", "enqueue", "latency", "idle", "bigtable"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run of every script")
    p.add_argument("--runs", type=int, default=None, help="runs per measurement (3)")
    p.add_argument("--db", default=None, help="comma-separated databases (all)")
    p.add_argument("--systems", default=None, help="comma-separated systems (all)")
    p.add_argument("--only", default=",".join(SCRIPTS), help="scripts to run: " + ",".join(SCRIPTS))
    p.add_argument("--report-only", action="store_true", help="only combine the saved results")
    args = p.parse_args()
    scripts = [s for s in args.only.split(",") if s]
    passthrough = []
    if args.quick:
        passthrough.append("--quick")
    for flag in ("runs", "db", "systems"):
        value = getattr(args, flag)
        if value is not None:
            passthrough += [f"--{flag}", str(value)]
    durations = {}
    began = time.monotonic()
    if not args.report_only:
        for name in scripts:
            log(f"=== {name} ===")
            t0 = time.monotonic()
            code = subprocess.call(
                [sys.executable, str(BENCH / f"{name}.py"), *passthrough],
                stdout=subprocess.DEVNULL,
            )
            durations[name] = time.monotonic() - t0
            if code:
                log(f"{name} exited {code}; see its output above and bench/results/logs")
    total = time.monotonic() - began
    print(combine(scripts, durations, total))


def combine(scripts: list[str], durations: dict[str, float], total: float) -> str:
    sections, figures = [], []
    for name in scripts:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        sections.append(report["markdown"])
        for figure in report.get("figures", []):
            figures.append({**figure, "script": name, "date": report["date"]})
    md = "# Firefly benchmarks (issue #7)\n\n"
    md += f"{machine()}\n\n"
    if durations:
        md += "Durations: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in durations.items())
        md += f"; total {total / 60:.1f} min\n\n"
    md += "## Targets\n\n"
    md += table(
        ["figure", "target", "Firefly", "verdict", "script"],
        [[f["figure"], f["target"], f["value"], f["verdict"], f["script"]] for f in figures],
    )
    md += "\n\n" + "\n\n".join(sections)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "SUMMARY.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
