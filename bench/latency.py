"""Figure 4 — latency from the commit of ``schedule()`` to the start of the task.

Per run and system: empty the queue, start one consumer (the system's defaults; Firefly:
``consume_tasks``), let it go idle, then schedule a ``stamp`` task every ``--interval``
seconds (autocommit: the commit time is when ``schedule()`` returns). Each task returns
``time.time()`` at its start (the peers whose results are not kept, or are off, append it to
a file instead: ``bench/peer_agent.py``); latency = start - commit, on one machine's clock.
p50/p90/p99 per run, median over runs.

    python3 bench/latency.py [--quick] [--runs 3] [--db ...] [--samples 200] [--interval 0.02]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import measure
from bench.databases import Database
from bench.log import log
from bench.options import Options, options, parser, stores
from bench.processes import agent, discard_output, output_json, stop
from bench.reports import header, save
from bench.systems import System, Unavailable
from bench.tables import median, percentile, table, verdict

NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "redis": "Redis"}
TARGETS = {"postgres": (5.0, 50.0), "sqlite": (100.0, None), "mariadb": (100.0, None)}
IDLE_WAIT = 2.5  # seconds between the consumer's start and the first task: it is idle by then


def one_run(system: System, db: Database, samples: int, interval: float) -> list[float]:
    measure.prepare(system, db)
    agent(system, db, "reset")
    proc = measure.consumer(system, db, "stamp", burst=False, cap=3600,
                            name=f"{system.key}-{db.vendor}-latency")  # fmt: skip
    try:
        time.sleep(IDLE_WAIT)
        if proc.poll() is not None:
            raise RuntimeError(f"{system.key} consumer exited early; see bench/results/logs")
        args = {"samples": samples, "interval": interval}
        result = agent(system, db, "latency", **args)
        if system.kind == "pgq":
            time.sleep(1.0)
    finally:
        stop(proc)
    if system.kind != "pgq":
        discard_output(proc)
        delays = result["delays_ms"]
        missing = result["missing"]
    else:
        stamps = output_json(proc)["stamps"]
        committed = result["committed"]
        delays = [(stamps[k] - committed[k]) * 1000 for k in committed if k in stamps]
        missing = len(committed) - len(delays)
    if missing:
        log(f"  {system.key}: {missing} of {samples} tasks had not started")
    return delays


def main() -> None:
    p = parser(__doc__.split("\n")[1])
    p.add_argument("--samples", type=int, default=None, help="tasks per run (200)")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between tasks")
    opts = options(p.parse_args())
    samples = opts.extra.samples or (50 if opts.quick else 200)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for vendor in stores(opts):
        db = Database(vendor, "latency")
        log(f"latency on {db.durability()}")
        systems = [s for s in opts.systems if s.kind != "raw" and vendor in s.vendors]
        for _ in range(opts.runs):
            for system in systems:
                try:
                    delays = one_run(system, db, samples, opts.extra.interval)
                except Unavailable:
                    continue
                stats = {
                    "p50": percentile(delays, 50),
                    "p90": percentile(delays, 90),
                    "p99": percentile(delays, 99),
                    "max": max(delays, default=float("nan")),
                    "n": len(delays),
                }
                log(
                    f"  {system.key:8} {vendor:8} p50 {stats['p50']:.1f} ms, "
                    f"p99 {stats['p99']:.1f} ms ({len(delays)} tasks)"
                )
                runs.setdefault((system.key, vendor), []).append(stats)
        db.drop()
    report = summarize(opts, runs, samples)
    print(report["markdown"])
    save("latency", report)


def summarize(
    opts: Options, runs: dict[tuple[str, str], list[dict[str, float]]], samples: int
) -> dict[str, Any]:
    md = header("Latency from schedule() commit to task start", opts)
    md += (
        f"\n{samples} tasks per run, one every {opts.extra.interval * 1000:g} ms, one idle "
        "consumer with the system's default settings (django-tasks-db: `db_worker` polls every "
        "1 s by default; django-firefly-tasks 0.4.0 naps 1 ms between polls; django-q2's ORM "
        "broker polls every 0.2 s; Huey's SQL storages poll from 0.1 s, backing off to 10 s; "
        "Procrastinate and PostgresHuey listen with LISTEN/NOTIFY, RedisHuey and Celery block "
        "on Redis). The peers' tasks append their start time to a file. Milliseconds, "
        "median over runs of each run's percentile.\n\n"
    )
    headers = ["system"]
    for vendor in stores(opts):
        headers += [f"{NAMES[vendor]} p50", "p90", "p99"]
    rows = []
    for system in opts.systems:
        if system.kind == "raw":
            continue
        row = [system.label]
        for vendor in stores(opts):
            rs = runs.get((system.key, vendor))
            for q in ("p50", "p90", "p99"):
                row.append(f"{median(r[q] for r in rs):.1f}" if rs else "n/a")
        rows.append(row)
    md += table(headers, rows) + "\n"
    figures = []
    for vendor in opts.vendors:
        rs = runs.get(("firefly", vendor))
        p50 = median(r["p50"] for r in rs) if rs else None
        p99 = median(r["p99"] for r in rs) if rs else None
        t50, t99 = TARGETS[vendor]
        figures.append(
            {
                "figure": f"Latency schedule → start p50, {NAMES[vendor]}",
                "target": f"≤ {t50:g} ms",
                "value": f"{p50:.1f} ms" if p50 is not None else "n/a",
                "verdict": verdict(p50, t50, higher_is_better=False),
            }
        )
        if t99:
            figures.append(
                {
                    "figure": f"Latency schedule → start p99, {NAMES[vendor]}",
                    "target": f"≤ {t99:g} ms",
                    "value": f"{p99:.1f} ms" if p99 is not None else "n/a",
                    "verdict": verdict(p99, t99, higher_is_better=False),
                }
            )
    return {"markdown": md, "figures": figures,
            "runs": {f"{k[0]}/{k[1]}": v for k, v in runs.items()}}  # fmt: skip


if __name__ == "__main__":
    main()
