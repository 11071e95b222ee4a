"""A steady stream of ``stamp`` tasks, for ``bench/prune_latency.py``:
``python -m bench.stream_agent '{"interval": 0.01, "wait": 30}'``.

Runs in the Python of the system under test, like ``bench/agent.py`` (``DJANGO_SETTINGS_MODULE``
and ``FIREFLY_BENCH_SYSTEM`` from the orchestrator). Schedules one ``stamp`` task every
``interval`` seconds through the system's adapter (autocommit: the commit is when
``schedule()`` returns; after a slow call the next one follows at once, with no burst to catch
up) until SIGTERM; then waits up to ``wait`` seconds for them all to start and prints, as its
last line, ``{"samples": [[commit, delay_ms or null, call_ms], ...]}``: the Unix time of each
commit, the delay from it to the task's start (its return value), and how long the
``schedule()`` call took.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import django

CHUNK = 2000  # keys per read of the start times


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    django.setup()
    from bench.agent_adapters import ADAPTERS, SYSTEM

    adapter = ADAPTERS[SYSTEM]()
    interval = float(args.get("interval", 0.01))
    sent: list[tuple[str, float, float]] = []
    next_at = time.perf_counter()
    while not stopping:
        called = time.perf_counter()
        pk = adapter.schedule("stamp")
        committed = time.time()
        sent.append((str(pk), committed, (time.perf_counter() - called) * 1000))
        next_at = max(next_at + interval, time.perf_counter())
        time.sleep(max(0.0, next_at - time.perf_counter()))
    started: dict[str, Any] = {}
    deadline = time.monotonic() + float(args.get("wait", 30))
    while True:
        waiting = [pk for pk, _, _ in sent if started.get(pk) is None]
        for at in range(0, len(waiting), CHUNK):
            found = adapter.started_at(waiting[at : at + CHUNK])
            started.update({str(k): v for k, v in found.items()})
        if all(started.get(pk) is not None for pk, _, _ in sent):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    samples = [
        [c, (started[pk] - c) * 1000 if started.get(pk) is not None else None, call]
        for pk, c, call in sent
    ]
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    main()
