"""Figure 5 — CPU used by an idle consumer.

Per run and database: one consumer of each system, each on a fresh database of its own with
an empty queue, started together with the system's default settings; after a warm-up (3 s,
and on until their start-ups are over: see ``settle``), the CPU time (user + system, all
threads, from /proc/PID/stat; with the processes it started, such as a qcluster's workers or
Celery's pool) each consumer uses during ``--window`` seconds, as % of one core. On
PostgreSQL also the CPU of the server backends serving that database (found by database name
in pg_stat_activity): polling costs the server too. Median over runs.

    python3 bench/idle.py [--quick] [--runs 3] [--db ...] [--window 20]
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser, stores
from bench.processes import cpu_seconds, discard_output, stop, tree_cpu_seconds
from bench.reports import header, save
from bench.systems import System, Unavailable
from bench.tables import median, table, verdict

NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "redis": "Redis"}
TARGET = 1.0  # % of one core
WARMUP = 3.0
SETTLE_LIMIT = 30.0  # seconds after WARMUP at most, waiting for the start-ups to end


def settle(procs: list[Any]) -> None:
    """Wait until the consumers' start-up is over: together they use less than a core, and no
    less in one second than in the second before. A dozen consumers starting at once on two
    cores take longer than WARMUP, and one still starting would count its start-up as idle."""
    deadline = time.monotonic() + SETTLE_LIMIT
    previous = float("inf")
    while time.monotonic() < deadline:
        before = sum(tree_cpu_seconds(p.pid) for p in procs)
        time.sleep(1.0)
        rate = sum(tree_cpu_seconds(p.pid) for p in procs) - before  # cores
        if rate < 1.0 and rate >= previous - 0.05:
            return
        previous = rate


def backend_cpu(db: Database) -> float:
    if db.vendor != "postgres":
        return float("nan")
    total = 0.0
    for (pid,) in db.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        [db.name],
    ):
        with contextlib.suppress(OSError):  # the backend exited meanwhile
            total += cpu_seconds(pid)
    return total


def one_run(vendor: str, systems: list[System], window: float) -> dict[str, dict[str, float]]:
    dbs: dict[str, Database] = {}
    procs: dict[str, Any] = {}
    try:
        for system in systems:
            db = Database(vendor, f"idle{system.key}")
            try:
                measure.prepare(system, db)
            except Unavailable:
                db.drop()
                continue
            dbs[system.key] = db
        for key, db in dbs.items():
            system = next(s for s in systems if s.key == key)
            procs[key] = measure.consumer(system, db, "noop", burst=False, cap=3600,
                                          name=f"{key}-{vendor}-idle")  # fmt: skip
        time.sleep(WARMUP)
        settle(list(procs.values()))
        start = {k: (tree_cpu_seconds(p.pid), backend_cpu(dbs[k])) for k, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        end = {k: (tree_cpu_seconds(p.pid), backend_cpu(dbs[k])) for k, p in procs.items()}
        for key, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{key} consumer exited; see bench/results/logs")
    finally:
        for proc in procs.values():
            stop(proc)
            discard_output(proc)
        for db in dbs.values():
            db.drop()
    return {
        k: {
            "consumer": (end[k][0] - start[k][0]) / elapsed * 100,
            "server": (end[k][1] - start[k][1]) / elapsed * 100,
        }
        for k in procs
    }


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.add_argument("--window", type=float, default=None, help="seconds measured (20)")
    opts = options(p.parse_args())
    window = opts.extra.window or (5 if opts.quick else 20)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for vendor in stores(opts):
        systems = [s for s in opts.systems if s.kind != "raw" and vendor in s.vendors]
        log(f"idle on {vendor}: {', '.join(s.key for s in systems)} for {window:g}s")
        for _ in range(opts.runs):
            for key, value in one_run(vendor, systems, window).items():
                log(
                    f"  {key:8} {vendor:8} consumer {value['consumer']:.2f}% of a core, "
                    f"server {value['server']:.2f}%"
                )
                runs.setdefault((key, vendor), []).append(value)
    report = summarize(opts, runs, window)
    print(report["markdown"])
    save("idle", report)


def summarize(
    opts: Options, runs: dict[tuple[str, str], list[dict[str, float]]], window: float
) -> dict[str, Any]:
    md = header("CPU of an idle consumer", opts)
    md += (
        f"\n% of one core over {window:g} s with an empty queue (median over runs); "
        '"server" = PostgreSQL backends serving that consumer\'s database.\n\n'
    )
    headers = ["system"]
    for vendor in stores(opts):
        headers.append(f"{NAMES[vendor]} consumer")
        if vendor == "postgres":
            headers.append("PostgreSQL server")
    rows = []
    for system in opts.systems:
        if system.kind == "raw":
            continue
        row = [system.label]
        for vendor in stores(opts):
            rs = runs.get((system.key, vendor))
            row.append(f"{median(r['consumer'] for r in rs):.2f}%" if rs else "n/a")
            if vendor == "postgres":
                row.append(f"{median(r['server'] for r in rs):.2f}%" if rs else "n/a")
        rows.append(row)
    md += table(headers, rows) + "\n"
    figures = []
    for vendor in opts.vendors:
        rs = runs.get(("firefly", vendor))
        value = median(r["consumer"] for r in rs) if rs else None
        figures.append(
            {
                "figure": f"Idle consumer CPU, {NAMES[vendor]}",
                "target": f"≤ {TARGET:g}% of a core",
                "value": f"{value:.2f}%" if value is not None else "n/a",
                "verdict": verdict(value, TARGET, higher_is_better=False),
            }
        )
    return {"markdown": md, "figures": figures,
            "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()}}  # fmt: skip


if __name__ == "__main__":
    main()
