"""Figure 1 — drain 20,000 no-op tasks with one consumer process.

For each database, a fresh database; for each run and each system: empty the queue, seed
20,000 no-op tasks, ANALYZE, start one consumer (Firefly: ``consume_tasks --burst``), stop
when the queue is empty or after ``--cap`` seconds (slow systems are measured over the first
``--cap`` seconds of the same drain), and compute throughput from the completion times the
system recorded. Consumers that record no completion time and never exit by themselves
(django-q2's ``qcluster``, Huey's and Celery's workers) are followed by their agent's
``watch``, which samples the system's own count of queued tasks; the throughput is then the
tasks gone between its first sample below N and its first sample at 0, over that time.
Medians over the runs; runs of the systems are interleaved.

    python3 bench/drain.py [--quick] [--runs 3] [--db postgres,sqlite,mariadb] [--cap 10]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser, stores
from bench.reports import header, save
from bench.systems import Unavailable
from bench.tables import fmt, median, table, verdict

TARGET = 5000


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.add_argument("--tasks", type=int, default=None, help="tasks to drain (default 20,000)")
    p.add_argument("--cap", type=float, default=None, help="seconds per run at most (10)")
    opts = options(p.parse_args())
    n = opts.extra.tasks or (2000 if opts.quick else 20_000)
    cap = opts.extra.cap or (5 if opts.quick else 10)
    report = run(opts, n, cap)
    print(report["markdown"])
    save("drain", report)


def run(opts: Options, n: int, cap: float) -> dict[str, Any]:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    unavailable: dict[tuple[str, str], str] = {}
    durability = {}
    for vendor in stores(opts):
        db = Database(vendor, "drain")
        durability[vendor] = db.durability()
        log(f"drain on {durability[vendor]}")
        for _run in range(opts.runs):
            for system in opts.systems:
                key = (system.key, vendor)
                if key in unavailable:
                    continue
                try:
                    result = measure.drain(system, db, "noop", n, cap=cap)
                except Unavailable as exc:
                    unavailable[key] = str(exc)
                    continue
                runs.setdefault(key, []).append(result)
        db.drop()
    return summarize(opts, runs, durability, n, cap)


def summarize(
    opts: Options,
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    durability: dict[str, str],
    n: int,
    cap: float,
) -> dict[str, Any]:
    rates = {k: median(r["rate"] for r in v) for k, v in runs.items()}
    done = {k: median(r["done"] for r in v) for k, v in runs.items()}
    vendors = stores(opts)
    rows = []
    for system in opts.systems:
        row = [system.label]
        for vendor in vendors:
            key = (system.key, vendor)
            if key not in rates:
                row.append("n/a")
                continue
            cell = f"{fmt(rates[key])}/s"
            if done[key] < n:
                cell += f" ({fmt(done[key])} of {fmt(n)} in {cap:g}s)"
            row.append(cell)
        rows.append(row)
    ratio_rows = []
    for system in opts.systems:
        if system.key == "firefly":
            continue
        row = [f"Firefly ÷ {system.label}"]
        for vendor in vendors:
            ff, other = rates.get(("firefly", vendor)), rates.get((system.key, vendor))
            row.append(f"{ff / other:.2f}×" if ff and other else "n/a")
        ratio_rows.append(row)
    pg_rows = []
    for system in opts.systems:
        per = [r.get("per_task") for r in runs.get((system.key, "postgres"), [])]
        per = [p for p in per if p]
        if not per:
            continue
        pg_rows.append(
            [system.label]
            + [
                f"{median(p[k] for p in per):.3f}"
                for k in ("commits", "inserted", "updated", "deleted", "fetched", "returned")
            ]
        )
    names = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "redis": "Redis"}
    figures = []
    for vendor in opts.vendors:
        value = rates.get(("firefly", vendor))
        target = TARGET if vendor in ("postgres", "sqlite") else None
        figures.append(
            {
                "figure": f"Drain {fmt(n)} no-op tasks, 1 consumer, {names[vendor]}",
                "target": f"≥ {TARGET:,}/s" if target else "measured",
                "value": f"{fmt(value)}/s",
                "verdict": verdict(value, target) if target else "reported",
            }
        )
    md = header(f"Drain {n:,} no-op tasks with one consumer process", opts)
    md += "\n" + "\n".join(f"- {names[v]}: {d}" for v, d in durability.items()) + "\n\n"
    md += "Tasks/s, median of runs (completions after the first ÷ time from first to last "
    md += f"completion; systems that need more than {cap:g}s are measured over the first "
    md += f"{cap:g}s).\n\n"
    md += table(["system", *(names[v] for v in vendors)], rows) + "\n\n"
    if ratio_rows:
        md += "Ratios measured in the same run:\n\n"
        md += table(["ratio", *(names[v] for v in vendors)], ratio_rows) + "\n\n"
    if pg_rows:
        md += "PostgreSQL work per task (pg_stat_database deltas ÷ tasks done, median):\n\n"
        md += table(
            ["system", "commits", "rows inserted", "rows updated", "rows deleted",
             "rows fetched", "rows returned"],
            pg_rows,
        )  # fmt: skip
        md += "\n"
    return {
        "markdown": md,
        "figures": figures,
        "rates": {f"{k[0]}/{k[1]}": v for k, v in rates.items()},
        "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()},
    }


if __name__ == "__main__":
    main()
