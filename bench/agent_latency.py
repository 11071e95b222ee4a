"""The agent's ``latency`` command: when each scheduled task started, after the commit of its
``schedule()``."""

from __future__ import annotations

import time
from typing import Any

from bench.agent_adapters import Adapter


def cmd_latency(a: Adapter, args: dict[str, Any]) -> dict[str, Any]:
    """Schedule ``stamp`` tasks at a steady rate and report, per task, the delay between the
    commit of its ``schedule()`` (autocommit: when the call returns) and its start."""
    samples, interval = args.get("samples", 200), args.get("interval", 0.025)
    committed: dict[Any, float] = {}
    next_at = time.perf_counter()
    for _ in range(samples):
        pk = a.schedule("stamp")
        committed[str(pk)] = time.time()
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.monotonic() + args.get("wait", 30)
    started: dict[Any, float | None] = {}
    while time.monotonic() < deadline:
        started = {str(k): v for k, v in a.started_at(list(committed)).items()}
        if all(started.get(k) is not None for k in committed):
            break
        time.sleep(0.2)
    delays = [(started[k] - committed[k]) * 1000 for k in committed if started.get(k) is not None]
    return {"delays_ms": delays, "missing": samples - len(delays)}
