"""A consumer's memory: idle after start-up, then after each of ``--rounds`` drains of
``--tasks`` no-op tasks (100,000 by default, 2,000 with ``--quick``), for the thread pool and
the process pool, on each database of ``--db``.

A real ``consume_tasks`` process (``--concurrency 4``) on a fresh database, one for each pool
and database; each round schedules its tasks with ``schedule_many`` (calls of 10,000) and waits
until none is left unfinished, then lets the consumer idle a second before reading its memory
from ``/proc``: the resident set (``VmRSS``) of the consumer and its children summed, and their
proportional set (``Pss`` of ``smaps_rollup``: a page shared by n processes counts 1/n in each),
which is what the machine pays for processes that share pages. The process pool spawns each
child when its slot first gets a batch: its idle figure is the parent alone. The finished rows
stay in the table, as they would until ``prune_tasks``.

The bound (issue #20: "no growth beyond a bound you state"): the RSS after the last drain is at
most 10 MiB above the RSS after the first, for either pool (the process pool's children
summed). The first drain fills what a consumer keeps for good: Django's and the driver's
caches, the statements it builds once a database, SQLite's page cache of each connection
(about 2 MiB at most), Python's allocator arenas sized for the largest claimed batch (250
tasks, their rows and their results). Every later drain runs the same code over batches of the
same size, so a consumer that keeps nothing per task comes back to the same level, give or
take what the allocators hold on to (a few MiB: an arena is returned only when wholly empty,
glibc trims lazily). A consumer that keeps something per task does not: over the two drains
after the first (200,000 tasks) 10 MiB is 52 bytes a task, so keeping a dict, a model instance
or a task's row (hundreds of bytes) breaks the bound; one small object a task (a float in a
list, about 32 bytes) would not. With ``--quick`` (2,000 tasks a drain) the same 10 MiB is
2.6 KiB a task, and the caches are still filling: a smoke test of the script, not of the bound.

    .venv/bin/python bench/memory.py [--quick] [--db postgres,sqlite,mariadb] [--tasks 100000]
        [--rounds 3] [--pool thread,process]

Each pool and database is measured once (the drains are the repetition): ``--runs`` and
``--systems``, which ``bench/run_all.py`` and ``bench/pairs.py`` pass to every script, are
accepted and ignored. Figures go to ``bench/results/memory.json`` and ``memory.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scratch
from bench.log import log
from bench.options import Options, options, parser
from bench.reports import command, header, save
from bench.tables import table, verdict

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 10_000  # tasks a schedule_many call
BOUND_MIB = 10.0  # RSS after the last drain - RSS after the first
DRAIN_TIMEOUT = 1800  # seconds a round may take before the measurement fails
NAMES = {"postgres": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--tasks", type=int, default=None, help="tasks a drain (100,000; quick 2,000)")
    p.add_argument("--rounds", type=int, default=3, help="drains a consumer (3)")
    p.add_argument("--pool", default="thread,process", help="pools: thread,process")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.tasks is None:
        args.tasks = 2000 if args.quick else 100_000
    if args.child:  # one pool, in a process of its own (Django is set up once a process)
        with scratch.database(args.db, f"memory{args.child}") as name:
            print(json.dumps(measure(args, args.child, name)))
        return
    opts = options(args)
    pools = [pool for pool in args.pool.split(",") if pool]
    results: dict[str, dict[str, Any]] = {}
    for vendor in opts.vendors:
        for pool in pools:
            log(f"memory: {pool} pool on {vendor}, {args.rounds} drains of {args.tasks:,}")
            child = [sys.executable, __file__, "--db", vendor, "--tasks", str(args.tasks),
                     "--rounds", str(args.rounds), "--child", pool]  # fmt: skip
            done = subprocess.run(child, capture_output=True, text=True)
            if done.returncode:
                log(f"  the {pool} pool's run on {vendor} failed:\n{done.stderr[-3000:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            log("  RSS MiB: " + ", ".join(f"{r['rss']:.1f}" for r in result["readings"]))
            results[f"{pool}/{vendor}"] = result
    report = summarize(opts, pools, results)
    print(report["markdown"])
    save("memory", report)


def summarize(
    opts: Options, pools: list[str], results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    extra = opts.extra
    md = header("Consumer memory", dataclasses.replace(opts, runs=1))
    md += (
        f"\nOne `consume_tasks --concurrency 4` a pool and database, idle after start-up, then "
        f"after each of {extra.rounds} drains of {extra.tasks:,} no-op tasks. MiB of the "
        "consumer and its children: RSS summed (PSS, each shared page counted once across "
        f"them). Bound: RSS after the last drain ≤ RSS after the first + {BOUND_MIB:g} MiB "
        "(the first drain fills the caches; see bench/memory.py)"
    )
    later = extra.tasks * (extra.rounds - 1)
    if later:
        md += (
            f": over the {later:,} tasks after the first drain, a leak of "
            f"{BOUND_MIB * 2**20 / later:,.0f} bytes a task or more breaks it"
        )
    md += ".\n"
    figures = []
    for vendor in opts.vendors:
        rows = []
        for pool in pools:
            result = results.get(f"{pool}/{vendor}")
            figures.append(figure(opts, vendor, pool, result))
            if result is not None:
                rows.append(
                    [pool, *(f"{r['rss']:.1f} ({r['pss']:.1f})" for r in result["readings"]),
                     " / ".join(f"{s:.1f}" for s in result["seconds"])]
                )  # fmt: skip
        if rows:
            md += f"\n### {NAMES[vendor]}\n\n"
            md += table(
                ["pool", "idle", *(f"after drain {i + 1}" for i in range(extra.rounds)),
                 "seconds a round"],
                rows,
            )  # fmt: skip
            md += "\n"
    return {"markdown": md, "figures": figures, "runs": results}


def figure(opts: Options, vendor: str, pool: str, result: dict[str, Any] | None) -> dict[str, str]:
    """The verdict of one pool on one database: RSS after the last drain - after the first."""
    extra = opts.extra
    args = ["--db", vendor, "--pool", pool, *(["--quick"] if opts.quick else [])]
    if extra.tasks != (2000 if opts.quick else 100_000):
        args += ["--tasks", str(extra.tasks)]
    if extra.rounds != 3:
        args += ["--rounds", str(extra.rounds)]
    readings = result["readings"] if result else []
    growth = readings[-1]["rss"] - readings[1]["rss"] if len(readings) > 2 else None
    if growth is not None:
        value = (
            f"{growth:+.1f} MiB (idle {readings[0]['rss']:.1f}, after the first drain "
            f"{readings[1]['rss']:.1f}, after the last {readings[-1]['rss']:.1f} MiB)"
        )
    else:
        value = "n/a: the run failed" if result is None else "n/a: fewer than 2 drains"
    return {
        "figure": f"Memory: consumer RSS growth, first drain to last, {pool} pool, {NAMES[vendor]}",
        "target": f"≤ +{BOUND_MIB:g} MiB",
        "value": value,
        "verdict": verdict(growth, BOUND_MIB, higher_is_better=False),
        "command": command("memory", None, *args),
    }


def memory_mib(pid: int) -> dict[str, float]:
    """RSS and PSS of ``pid`` and its descendants, in MiB."""
    rss = pss = 0
    for found in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{found}/status").read_text()
            rollup = Path(f"/proc/{found}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss += sum(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
        pss += sum(int(ln.split()[1]) for ln in rollup.splitlines() if ln.startswith("Pss:"))
    return {"rss": rss / 1024, "pss": pss / 1024}


def descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return children + [grand for child in children for grand in descendants(child)]


def measure(args: argparse.Namespace, pool: str, name: str) -> dict[str, Any]:
    scratch.set_up(args.db, name)
    from django.db import connection

    from bench.benchapp.tasks import noop
    from firefly_tasks.models import TaskModel, TaskStatus

    consumer = subprocess.Popen(
        [sys.executable, "-m", "django", "consume_tasks", "--concurrency", "4", "--pool", pool],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    unfinished = (TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.BLOCKED)
    try:
        time.sleep(5)  # start-up, the pool's children included
        readings, seconds = [memory_mib(consumer.pid)], []
        for _ in range(args.rounds):
            began = time.monotonic()
            for start in range(0, args.tasks, CHUNK):
                noop.schedule_many([() for _ in range(min(CHUNK, args.tasks - start))])
            while TaskModel.objects.filter(status__in=unfinished).exists():
                if consumer.poll() is not None:
                    raise RuntimeError(f"the consumer exited {consumer.returncode}")
                if time.monotonic() - began > DRAIN_TIMEOUT:
                    raise RuntimeError(f"a drain took over {DRAIN_TIMEOUT} s")
                time.sleep(0.2)
            seconds.append(time.monotonic() - began)
            time.sleep(1)
            readings.append(memory_mib(consumer.pid))
        return {"readings": readings, "seconds": seconds}
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(60)
        connection.close()


if __name__ == "__main__":
    main()
