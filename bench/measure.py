"""Measurements shared by the scripts: preparing a system's tables and draining a queue."""

from __future__ import annotations

import resource
import time
from typing import Any

from bench.databases import Database
from bench.log import log
from bench.processes import agent, discard_output, output_json, start, stop
from bench.systems import RAW_MODES, System, Unavailable

_prepared: set[tuple[str, str]] = set()

# Systems whose consumer has no "exit when empty" mode: the orchestrator watches their table.
READY_SQL = {"ff04": "SELECT count(*) FROM django_firefly_tasks_taskmodel WHERE status = 'created'"}


def prepare(system: System, db: Database) -> None:
    """Create the system's tables in ``db`` (once per database)."""
    if db.vendor not in system.vendors:
        raise Unavailable(f"{system.label} does not run on {db.vendor}")
    key = (system.key, db.name)
    if key not in _prepared:
        agent(system, db, "migrate")
        _prepared.add(key)


def seed(
    system: System, db: Database, workload: str, n: int, reset: bool = False
) -> dict[str, Any]:
    return agent(system, db, "seed", workload=workload, n=n, reset=reset)


def consumer(
    system: System,
    db: Database,
    workload: str,
    *,
    concurrency: int | None = None,
    burst: bool = True,
    cap: float = 60,
    name: str = "",
) -> Any:
    """Start one consumer process of ``system``; ``concurrency=None`` is its default
    (1 thread for Firefly; unlimited for pgqueuer, whose jobs run as asyncio tasks)."""
    env = system.env(db)
    tag = name or f"{system.key}-{db.vendor}-consumer"
    if system.kind == "pgq":
        args = {"workload": workload, "concurrency": concurrency or 0, "cap": cap, "drain": burst}
        return start([system.python, "-m", "bench.pgq_agent", "worker", _json(args)], env, tag)
    if system.kind == "raw":
        args = {"mode": RAW_MODES[system.key], "cap": cap}
        return start([system.python, "-m", "bench.raw", "work", _json(args)], env, tag)
    return start(system.consumer_cmd(workload, concurrency, burst), env, tag)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def drain(
    system: System,
    db: Database,
    workload: str,
    n: int,
    *,
    processes: int = 1,
    concurrency: int | None = None,
    cap: float = 30,
    reset: bool = True,
) -> dict[str, Any]:
    """Seed ``n`` tasks, run ``processes`` consumers until the queue is empty or ``cap``
    seconds have passed, and measure throughput from the completion times: tasks completed
    after the first completion / time from the first completion to the last one (process
    start-up is left out). Systems whose consumers record no completion time are watched by
    their agent's ``watch``, which samples the queue's length from the moment it starts."""
    prepare(system, db)
    seed(system, db, workload, n, reset=reset)
    db.analyze()
    before = db.pg_counters()
    since = time.time()
    began = time.monotonic()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    watcher = None
    if system.completion == "watch":
        args = _json({"n": n, "cap": cap})
        watcher = start([system.python, "-m", system.agent_module, "watch", args],
                        system.env(db), f"{system.key}-{db.vendor}-watch")  # fmt: skip
    procs = [
        consumer(system, db, workload, concurrency=concurrency, cap=cap,
                 name=f"{system.key}-{db.vendor}-{workload}")
        for _ in range(processes)
    ]  # fmt: skip
    deadline = began + cap
    ready_sql = READY_SQL.get(system.key)
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in procs):
            break
        if watcher is not None and watcher.poll() is not None:
            break
        if ready_sql and db.query(ready_sql)[0][0] == 0:
            time.sleep(0.3)  # let the last task's completion commit
            break
        time.sleep(0.1)
    capped = any(p.poll() is None for p in procs)
    if watcher is not None:
        capped = watcher.poll() is None
        stop(watcher)  # SIGTERM: it prints what it saw
    for p in procs:
        stop(p)
    wall = time.monotonic() - began
    # The consumers' own CPU time (reaped children: the agents run below are not yet), the
    # database server's left out: on SQLite, all the work there is.
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ended.ru_utime - children.ru_utime) + (ended.ru_stime - children.ru_stime)
    if watcher is not None:
        for p in procs:
            discard_output(p)
        watched = output_json(watcher)
        cpu -= watched["watcher_cpu"]  # reaped above: not the consumer's
        done, first, last = watched["done"], watched["first"], watched["last"]
        first_count = watched["first_count"]
    elif system.completion == "table":
        for p in procs:
            discard_output(p)
        stats = agent(system, db, "stats", since=since)
        done, first, last, first_count = stats["done"], stats["first"], stats["last"], 1
    else:
        outs = [output_json(p) for p in procs]
        done = sum(o["done"] for o in outs)
        firsts = [o["first"] for o in outs if o["first"]]
        lasts = [o["last"] for o in outs if o["last"]]
        first, last = (min(firsts), max(lasts)) if firsts else (None, None)
        first_count = max((o.get("first_count", 1) for o in outs), default=1)
    after = db.pg_counters()
    rate = float("nan")
    if done and first and last and last > first:
        rate = (done - first_count) / (last - first)
    result: dict[str, Any] = {
        "rate": rate,
        "done": done,
        "n": n,
        "capped": capped,
        "wall": wall,
        "cpu_per_task_us": cpu / done * 1e6 if done else float("nan"),
        "exit_codes": [p.returncode for p in procs],
    }
    if before and after and done and watcher is None:  # a watcher's counts would be in it
        result["per_task"] = {k: (after[k] - before[k]) / done for k in after}
    log(
        f"  {system.key:8} {db.vendor:8} {workload:8} p={processes} c={concurrency or '-'}: "
        f"{rate:,.0f}/s ({done}/{n} done{', capped' if capped else ''}, {wall:.1f}s; "
        f"consumer CPU {result['cpu_per_task_us']:.1f} µs/task)"
    )
    return result
