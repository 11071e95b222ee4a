"""Run every benchmark of issue #20 and write the combined report, bench/RESULTS.md.

    python3 bench/run_all.py            # full run: 3 runs per figure, all databases
    python3 bench/run_all.py --quick    # smoke run of every script, 1 run, small sizes
    python3 bench/run_all.py --only drain,latency --db postgres
    python3 bench/run_all.py --report-only   # rewrite RESULTS.md from the saved figures

The aim for the full run is at most 75 minutes (issue #20); the report warns when a run took
longer than ``--budget`` minutes. (The last full run of the first round, issue #7, with fewer
peers and without memory.py, took 41 minutes; the peers and memory.py add to that, so the
report's durations, not this note, say what a run costs now.)

Each script also runs alone (see bench/README.md) and keeps its figures in
bench/results/NAME.json and NAME.md. While the scripts run, a thread samples the machine's load
(bench/load.py); the durations, exit codes and load of the run are kept in
bench/results/run_all.json, so ``--report-only`` writes them again. RESULTS.md has the machine,
the run's durations and load, the targets' table with each figure's command, the hand-written
bench/misses.md ("Misses: what it would take") and every script's tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load
from bench.log import log
from bench.paths import BENCH, RESULTS
from bench.reports import machine
from bench.tables import table

SCRIPTS = ["drain", "scaling", "enqueue", "latency", "idle", "bigtable", "memory"]
REPORT = BENCH / "RESULTS.md"
MISSES = BENCH / "misses.md"
MISSES_HEADING = "## Misses: what it would take"
RUN = RESULTS / "run_all.json"  # the last run's durations, exit codes and load
BUDGET = 75.0  # minutes (issue #20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run of every script")
    p.add_argument("--runs", type=int, default=None, help="runs per measurement (3)")
    p.add_argument("--db", default=None, help="comma-separated databases (all)")
    p.add_argument("--systems", default=None, help="comma-separated systems (all)")
    p.add_argument("--only", default=",".join(SCRIPTS), help="scripts to run: " + ",".join(SCRIPTS))
    p.add_argument("--report-only", action="store_true", help="only combine the saved results")
    p.add_argument(
        "--budget", type=float, default=BUDGET, help=f"minutes a run should take ({BUDGET:g})"
    )
    args = p.parse_args()
    scripts = [s for s in args.only.split(",") if s]
    unknown = [s for s in scripts if not (BENCH / f"{s}.py").exists()]
    if unknown:
        raise SystemExit(f"no such script in bench/: {', '.join(unknown)}")
    passthrough = []
    if args.quick:
        passthrough.append("--quick")
    for flag in ("runs", "db", "systems"):
        value = getattr(args, flag)
        if value is not None:
            passthrough += [f"--{flag}", str(value)]
    if args.report_only:
        run = json.loads(RUN.read_text()) if RUN.exists() else None
    else:
        run = run_scripts(scripts, passthrough, sys.argv[1:])
        RESULTS.mkdir(parents=True, exist_ok=True)
        RUN.write_text(json.dumps(run, indent=1))
    md = combine(scripts, run, args.budget, passthrough)
    REPORT.write_text(md)
    print(md)
    log(f"wrote {REPORT.relative_to(BENCH.parent)}")


def run_scripts(scripts: list[str], passthrough: list[str], argv: list[str]) -> dict[str, Any]:
    """Run each script with ``passthrough`` while sampling the load; what the report needs of
    the run."""
    started = datetime.datetime.now(datetime.UTC)
    sampler = load.LoadSampler()
    sampler.start()
    durations, codes = {}, {}
    began = time.monotonic()
    try:
        for name in scripts:
            log(f"=== {name} ===")
            sampler.mark(name)
            t0 = time.monotonic()
            code = subprocess.call(
                [sys.executable, str(BENCH / f"{name}.py"), *passthrough],
                stdout=subprocess.DEVNULL,
            )
            durations[name] = time.monotonic() - t0
            codes[name] = code
            if code:
                log(f"{name} exited {code}; see its output above and bench/results/logs")
    finally:
        sampler.stop()
    return {
        "started": started.isoformat(timespec="seconds"),
        "argv": argv,
        "passthrough": passthrough,
        "machine": machine(load=False),
        "durations": durations,
        "exit_codes": codes,
        "total": time.monotonic() - began,
        "load": sampler.summary(),
    }


def combine(
    scripts: list[str], run: dict[str, Any] | None, budget: float, passthrough: list[str]
) -> str:
    """RESULTS.md from each script's saved figures and, when there is one, the last run's
    record (``run``)."""
    reports, figures = {}, []
    # A figure without a command of its own is measured again by its script with the run's
    # arguments.
    args = run["passthrough"] if run else passthrough
    for name in scripts:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        reports[name] = report = json.loads(path.read_text())
        for figure in report.get("figures", []):
            default = shlex.join([".venv/bin/python", f"bench/{name}.py", *args])
            figures.append({"command": default, **figure, "script": name})
    md = "# Firefly benchmarks (issue #20)\n\n"
    md += f"{run['machine'] if run else machine(load=False)}.\n\n"
    if run:
        md += run_section(run, reports, budget)
    else:
        md += "No record of a run (bench/results/run_all.json): no durations or load.\n\n"
    md += "## Targets\n\n"
    md += table(
        ["figure", "target", "Firefly", "verdict", "command"],
        [
            [f["figure"], f["target"], f["value"], f["verdict"], f"`{f['command']}`"]
            for f in figures
        ],
    )
    md += "\n\n" + tally(figures) + "\n\n"
    md += misses() + "\n\n"
    md += "\n\n".join(reports[name]["markdown"] for name in scripts if name in reports)
    return md


def run_section(run: dict[str, Any], reports: dict[str, Any], budget: float) -> str:
    """When the run was, its command, and each script's duration, exit code and load."""
    command = shlex.join([".venv/bin/python", "bench/run_all.py", *run["argv"]])
    md = "## The run\n\n"
    md += f"`{command}`, started {run['started']}.\n\n"
    loads = run.get("load", {})
    rows = []
    for name, seconds in run["durations"].items():
        date = reports[name]["date"] if name in reports else "none saved"
        code = run["exit_codes"].get(name, 0)
        rows.append([name, f"{seconds / 60:.1f}", str(code), *load.cells(loads.get(name)), date])
    rows.append(["total", f"{run['total'] / 60:.1f}", "", *load.cells(loads.get("overall")), ""])
    md += table(
        ["script", "minutes", "exit code", "load min / median / max", "CPU busy", "CPU steal",
         "figures saved at"],
        rows,
    )  # fmt: skip
    md += f"\n\n{load.NOTE} A figure saved before the run started comes from an earlier run.\n\n"
    if run["total"] > budget * 60:
        md += (
            f"**Warning: this run took {run['total'] / 60:.1f} minutes, over the budget of "
            f"{budget:g} minutes (issue #20: at most 75).**\n\n"
        )
    return md


def tally(figures: list[dict[str, Any]]) -> str:
    """How many figures meet their target, miss it, or are reported only."""
    count: dict[str, int] = {}
    for figure in figures:
        count[figure["verdict"]] = count.get(figure["verdict"], 0) + 1
    missed = [f["figure"] for f in figures if f["verdict"] == "MISSES"]
    others = len(figures) - sum(count.get(k, 0) for k in ("meets", "MISSES", "reported"))
    line = (
        f"Of {len(figures)} figures: {count.get('meets', 0)} meet their target, "
        f"{len(missed)} miss it, {count.get('reported', 0)} are reported without a target"
        + (f", {others} could not be judged (–)." if others else ".")
    )
    if missed:
        line += " Missed: " + "; ".join(missed) + "."
    return line


def misses() -> str:
    """The hand-written section on what each miss would take (bench/misses.md)."""
    if not MISSES.exists():
        return f"{MISSES_HEADING}\n\n(bench/misses.md is not written yet.)"
    text = MISSES.read_text().strip()
    return text if text.startswith("#") else f"{MISSES_HEADING}\n\n{text}"


if __name__ == "__main__":
    main()
