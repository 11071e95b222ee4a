"""Before and after: Firefly's drain, enqueue and latency figures for two checkouts, measured
in interleaved pairs (one run of each per pair, the order alternating), so that the machine's
drift hits both sides alike; prints, per figure, both medians and the per-pair ratio
after ÷ before with its interquartile range.

    git worktree add /tmp/before REV && ln -s "$PWD/.venv" /tmp/before/.venv
    .venv/bin/python bench/pairs.py /tmp/before . --pairs 10 --db sqlite,postgres

Each side runs ``bench/<script>.py --systems firefly --runs 1`` from its own checkout (the
scripts put that checkout first on the agents' path); ``--args`` passes more arguments to each
(``--args "--tasks 100000 --cap 60"``: longer drains, less noise). Results go to ``--out`` as
JSON too.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import statistics
import subprocess
from pathlib import Path

# Per script: the figures its progress line reports for Firefly, and whether higher is better.
FIGURES: dict[str, list[tuple[str, re.Pattern[str], bool]]] = {
    "drain": [
        ("tasks/s", re.compile(r"\| Firefly \| ([\d,]+)/s"), True),
        # The consumer process's CPU time a task (the database server's not counted): steadier
        # than the rate on a shared machine, and on SQLite all the work there is.
        ("consumer CPU µs/task", re.compile(r"firefly .*consumer CPU ([\d.]+) µs/task"), False),
    ],
    "enqueue": [
        ("schedule() ms", re.compile(r"firefly\s+\w+\s+schedule ([\d.]+) ms"), False),
        (
            "schedule_many() tasks/s",
            re.compile(r"firefly\s+\w+\s+schedule .*many ([\d,]+)/s"),
            True,
        ),
    ],
    "loop_cpu": [
        ("loop CPU µs/task", re.compile(r"loop \w+: CPU ([\d.]+) µs/task"), False),
        ("loop wall µs/task", re.compile(r"loop \w+: .*wall ([\d.]+) µs/task"), False),
    ],
    "latency": [
        ("p50 ms", re.compile(r"firefly\s+\w+\s+p50 ([\d.]+) ms"), False),
        ("p99 ms", re.compile(r"firefly\s+\w+\s+p50 [\d.]+ ms, p99 ([\d.]+) ms"), False),
    ],
}


def measure(checkout: Path, script: str, db: str, extra: list[str]) -> dict[str, float]:
    python = str(checkout / ".venv/bin/python")
    output = subprocess.run(
        [python, f"bench/{script}.py", "--systems", "firefly", "--runs", "1", "--db", db, *extra],
        cwd=checkout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    ).stdout
    values = {}
    for name, pattern, _ in FIGURES[script]:
        found = pattern.search(output)
        values[name] = float(found.group(1).replace(",", "")) if found else math.nan
    return values


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


def _shown(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def report(results: list[dict[str, object]]) -> None:
    print("| database | figure | before | after | after ÷ before, per pair: median (IQR) |")
    print("|---|---|---|---|---|")
    for db in dict.fromkeys(str(r["db"]) for r in results):
        for script, figures in FIGURES.items():
            rows = [r for r in results if r["db"] == db and r["script"] == script]
            for name, _, _ in figures if rows else []:
                before = [r["before"][name] for r in rows]  # type: ignore[index]
                after = [r["after"][name] for r in rows]  # type: ignore[index]
                ratios = [a / b for a, b in zip(after, before, strict=True) if a == a and b]
                if not ratios:
                    continue
                low, high = quartiles(ratios)
                print(
                    f"| {db} | {script}: {name} | {_shown(statistics.median(before))} | "
                    f"{_shown(statistics.median(after))} | "
                    f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f}) |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--scripts", default="drain,enqueue,latency")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pairs.json"))
    parser.add_argument(
        "--args", default="", help='more arguments of each script, e.g. "--tasks 100000"'
    )
    parser.add_argument("--report", action="store_true", help="only print --out's table")
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.out.read_text()))
        return
    results: list[dict[str, object]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for pair in range(args.pairs):
        for db in args.db.split(","):
            for script in args.scripts.split(","):
                sides = [("before", args.before), ("after", args.after)]
                if pair % 2:
                    sides.reverse()
                result: dict[str, object] = {"pair": pair, "db": db, "script": script}
                for label, checkout in sides:
                    result[label] = measure(checkout.resolve(), script, db, shlex.split(args.args))
                results.append(result)
                print(json.dumps(result), flush=True)
                args.out.write_text(json.dumps(results))
    report(results)


if __name__ == "__main__":
    main()
