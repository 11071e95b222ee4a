"""The prune figure of ``bench/bigtable.py``: how long ``manage.py prune_tasks`` holds up a
consumer while it deletes the oldest ``rows`` of the big table (PostgreSQL).

On the big table's working database: one consumer (``consume_tasks``, its defaults), idle; a
producer (``bench/stream_agent.py``) scheduling a ``stamp`` task every ``interval`` seconds
(10 ms), each returning the moment it started; after ``baseline`` seconds of that,
``manage.py prune_tasks --days D`` (its defaults otherwise: chunks of 1,000 tasks and their
attempts, each in a transaction of its own; rollups kept 90 days), with D set so that its
cutoff falls between the ``rows``-th and the next oldest seeded row (their finish times read
by their keys, ``bench/agent_bigseed.py``): it deletes those ``rows``, give or take the rows
that finish in the second its process takes to start. ``tail`` seconds after it exits, the
producer stops and waits for its last tasks to start. Latency = the task's start - the
commit of its ``schedule()``, on one clock.

The figure is the longest latency of a task waiting at any moment of the prune (committed
before the prune ended, started after it began), against the baseline: the tasks that
started before the prune began. A task still not started 30 s after the producer stopped
counts as missing (and the figure as missed).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from typing import Any

from bench import measure
from bench.databases import Database, db_time
from bench.log import log
from bench.processes import discard_output, output_json, start, stop
from bench.systems import System
from bench.tables import percentile

IDLE_WAIT = 3.0  # seconds between the consumer's start and the first task: it is idle by then
TARGET_MS = 100.0  # issue #20: no consumer held up for longer than this at a time
TASKS = "firefly_tasks_taskmodel"


def cutoff_for(db: Database, seed: dict[str, Any], rows: int) -> tuple[float, int]:
    """The Unix time between the ``rows``-th oldest seeded row's finish and the next oldest
    one's (rows g = n - rows .. n - 1 are the oldest, by their keys start_pk + g), and
    ``rows`` as far as the seed had as many."""
    n, start_pk = seed["n"], seed["start_pk"]
    rows = max(1, min(rows, n - 1))
    gone, kept = start_pk + n - rows, start_pk + n - rows - 1
    found = dict(
        db.query(
            f"SELECT id, COALESCE(completed, failed, cancelled) FROM {TASKS} WHERE id IN (%s, %s)",
            [gone, kept],
        )
    )
    return (db_time(found[gone]) + db_time(found[kept])) / 2, rows


def run(
    system: System,
    db: Database,
    seed: dict[str, Any],
    rows: int,
    *,
    interval: float = 0.01,
    baseline: float = 10.0,
    tail: float = 2.0,
    cap: float = 1800.0,
) -> dict[str, Any]:
    """Prune the ``rows`` oldest rows of ``db`` under a steady stream of tasks; return the
    latencies before and during the prune, and what the prune did."""
    cutoff, rows = cutoff_for(db, seed, rows)
    env = system.env(db)
    tag = f"{system.key}-{db.vendor}"
    consumer = measure.consumer(system, db, "stamp", burst=False, cap=3600,
                                name=f"{tag}-prune-consumer")  # fmt: skip
    producer = prune = None
    try:
        time.sleep(IDLE_WAIT)
        if consumer.poll() is not None:
            raise RuntimeError(f"{system.key} consumer exited early; see bench/results/logs")
        args = json.dumps({"interval": interval, "wait": 30})
        producer = start([system.python, "-m", "bench.stream_agent", args], env, f"{tag}-stream")
        time.sleep(baseline)
        days = (time.time() - cutoff) / 86400
        log(f"  prune_tasks of the {rows:,} oldest rows (--days {days:.4f}) under a task "
            f"every {interval * 1000:g} ms")  # fmt: skip
        began = time.time()
        prune = start([system.python, "-m", "django", "prune_tasks", "--days", repr(days)],
                      env, f"{tag}-prune")  # fmt: skip
        capped = False
        try:
            prune.wait(cap)
        except subprocess.TimeoutExpired:
            capped = True
            stop(prune)
        ended = time.time()
        out = _text(prune)
        time.sleep(tail)
        producer.send_signal(signal.SIGTERM)
        producer.wait(120)
        samples = output_json(producer)["samples"]
    finally:
        for proc in (producer, prune, consumer):
            if proc is not None:
                stop(proc)
    discard_output(consumer)
    deleted = re.search(r"Deleted (\d+) task", out)
    if prune.returncode and not capped:
        raise RuntimeError(f"prune_tasks exited {prune.returncode}; see bench/results/logs")
    before = [d for c, d, _ in samples if d is not None and c + d / 1000 < began]
    during = [
        (d, call) for c, d, call in samples if c <= ended and (d is None or c + d / 1000 >= began)
    ]
    result: dict[str, Any] = {
        "rows": rows,
        "deleted": int(deleted.group(1)) if deleted else None,
        "prune_seconds": ended - began,
        "capped": capped,
        "days": days,
        "interval_ms": interval * 1000,
        "baseline": _stats(before),
        "during": _stats([d for d, _ in during if d is not None]),
        "missing": sum(1 for d, _ in during if d is None),
        "schedule_max_ms": max((call for _, call in during), default=float("nan")),
    }
    worst = result["during"]["max"] if not result["missing"] else float("inf")
    result["worst_ms"] = worst
    base = result["baseline"]
    log(f"  pruned {result['deleted']} rows in {result['prune_seconds']:.1f}s; longest latency "
        f"{worst:.1f} ms during it ({result['during']['n']} tasks), "
        f"{base['max']:.1f} ms before it ({base['n']} tasks)")  # fmt: skip
    return result


def _stats(delays: list[float]) -> dict[str, float]:
    return {
        "n": len(delays),
        "p50": percentile(delays, 50),
        "p99": percentile(delays, 99),
        "max": max(delays, default=float("nan")),
    }


def _text(proc: subprocess.Popen[Any]) -> str:
    """What a finished process printed on stdout (``bench/processes.py`` keeps it in a file)."""
    out, err = proc._bench_files  # type: ignore[attr-defined]
    out.seek(0)
    text: str = out.read().decode(errors="replace")
    out.close()
    err.close()
    return text


def figure(result: dict[str, Any], command: str) -> dict[str, str]:
    """The figure of issue #20: the longest latency during the prune, with its baseline."""
    worst, base = result["worst_ms"], result["baseline"]
    rows, missing = result["rows"], result["missing"]
    value = (
        f"{worst:.0f} ms (before it: max {base['max']:.0f}, p99 {base['p99']:.1f} ms; "
        f"{result['deleted'] or 0:,} rows in {result['prune_seconds']:.0f} s"
        f"{', capped' if result['capped'] else ''}"
        f"{f', {missing} tasks not started' if missing else ''})"
    )
    ok = worst <= TARGET_MS and not result["capped"]
    return {
        "figure": f"prune_tasks of {rows:,} rows: longest claim latency during it, PostgreSQL",
        "target": f"≤ {TARGET_MS:g} ms",
        "value": value,
        "verdict": "meets" if ok else "MISSES",
        "command": command,
    }
