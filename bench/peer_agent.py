"""What the agents of the peers added beside pgqueuer share (procrastinate, django-q2, Huey,
Celery): stamps, the latency loop, the timed enqueue rounds, the queue watcher, the command line.

Pure Python with no third-party import: it runs in every peer's virtualenv, and the peers'
task modules import ``write_stamp`` from it. An agent is ``python -m bench.NAME_agent COMMAND
'JSON-ARGS'`` and prints one JSON object on its last line, as ``bench/agent.py`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.dbconf import NAME

# The peer's own settings for this system (System.options in bench/systems.py), as JSON.
OPTIONS: dict[str, Any] = json.loads(os.environ.get("FIREFLY_BENCH_PEER", "{}"))


# Stamps: when a latency task started -------------------------------------------------------


def stamps_path() -> str:
    """One file per benchmark database: the stamp tasks of its consumer append to it."""
    return os.path.join(tempfile.gettempdir(), f"ffbench-stamps-{os.path.basename(NAME)}.txt")


def write_stamp(key: str) -> None:
    """Called first thing by a peer's ``stamp`` task: one short append (atomic with
    O_APPEND), whatever process or thread of the consumer runs it."""
    now = time.time()
    with open(stamps_path(), "a") as handle:
        handle.write(f"{key} {now!r}\n")


def read_stamps() -> dict[str, float]:
    try:
        with open(stamps_path()) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return {}
    return {key: float(value) for key, value in (line.split() for line in lines if line)}


def clear_stamps() -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(stamps_path())


def latency(schedule_stamp: Callable[[str], None], args: dict[str, Any]) -> dict[str, Any]:
    """Schedule ``stamp`` tasks at a steady rate (each call commits before it returns) and
    report, per task, the delay from the commit to the start the task stamped."""
    samples, interval = args.get("samples", 200), args.get("interval", 0.025)
    clear_stamps()
    committed: dict[str, float] = {}
    next_at = time.perf_counter()
    for i in range(samples):
        key = str(i)
        schedule_stamp(key)
        committed[key] = time.time()
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + args.get("wait", 30)
    started = read_stamps()
    while time.monotonic() < deadline and not all(k in started for k in committed):
        time.sleep(0.2)
        started = read_stamps()
    clear_stamps()
    delays = [(started[k] - committed[k]) * 1000 for k in committed if k in started]
    return {"delays_ms": delays, "missing": samples - len(delays)}


# Enqueue ------------------------------------------------------------------------------------


def enqueue_rounds(
    call: Callable[[], Any], raw: Callable[[], Any], args: dict[str, Any]
) -> dict[str, Any]:
    """Single calls of the peer's API against raw writes of what one call wrote, alternating
    in rounds; median time of each."""
    rounds, per_round = args.get("rounds", 5), args.get("per_round", 200)
    single: list[float] = []
    raw_times: list[float] = []
    for _ in range(rounds):
        for function, times in ((call, single), (raw, raw_times)):
            for _ in range(per_round):
                t0 = time.perf_counter()
                function()
                times.append(time.perf_counter() - t0)
    return {
        "single_ms": statistics.median(single) * 1000,
        "raw_single_ms": statistics.median(raw_times) * 1000,
        "single_per_s": 1 / statistics.median(single),
        "raw_single_per_s": 1 / statistics.median(raw_times),
    }


def bulk_rate(call_chunk: Callable[[int], Any], args: dict[str, Any]) -> float:
    """Tasks/s of the peer's bulk API over ``many`` tasks in calls of ``chunk``."""
    n: int = args.get("many", 20_000)
    chunk: int = args.get("chunk", 1000)
    t0 = time.perf_counter()
    for _ in range(n // chunk):
        call_chunk(chunk)
    return n / (time.perf_counter() - t0)


# Watching a drain ---------------------------------------------------------------------------


def watch(pending: Callable[[], int], args: dict[str, Any]) -> dict[str, Any]:
    """For consumers that record no completion time and never exit by themselves: sample the
    number of tasks not yet taken (the peer's own count) until it is 0, ``cap`` seconds have
    passed, or SIGTERM. ``first`` is the first sample below ``n``, with ``first_count`` tasks
    gone by then; ``last`` the first sample at 0 (or the last one). Each sample's count is
    exact, so only the end needs a fine step: samples come every ``interval`` seconds once
    fewer than 2,000 tasks are left, up to 10 times less often before (a count of a long
    table costs its database in proportion)."""
    n, cap, interval = args["n"], args.get("cap", 60), args.get("interval", 0.02)
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    deadline = time.monotonic() + cap
    first = last = None
    first_count = done = 0
    while not stopping and time.monotonic() < deadline:
        left = pending()
        now = time.time()
        if left < n:
            done = n - left
            if first is None:
                first, first_count = now, done
            last = now
            if left == 0:
                break
        time.sleep(interval * min(10.0, max(1.0, left / 2000)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "done": done,
        "first": first,
        "last": last,
        "first_count": first_count or 1,
        "watcher_cpu": usage.ru_utime + usage.ru_stime,
    }


# Command line -------------------------------------------------------------------------------


def main(commands: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    command = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = commands[command](args)
    print(json.dumps(result, default=str))
