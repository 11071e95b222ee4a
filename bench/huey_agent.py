"""The Huey side of the benchmarks: ``python -m bench.huey_agent COMMAND 'JSON-ARGS'``.

Runs in Huey's own virtualenv (no Django) with the instance of ``bench/peers/hueyapp.py``. Its
consumer is Huey's own ``huey_consumer``, which never exits by itself and records no
completion time: ``watch`` follows a drain by Huey's own ``pending_count()`` (a task leaves its
storage when a worker takes it, so at most one task a worker is still running when it reads 0).
"""

from __future__ import annotations

import time
from typing import Any

from bench import peer_agent
from bench.peers import hueyapp

huey = hueyapp.huey


def cmd_migrate(args: dict[str, Any]) -> dict[str, Any]:
    return {}  # the storage creates its tables when the instance is made


def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    huey.flush()
    return {}


def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    """``n`` tasks through the task's own call (Huey has no bulk API); with the peewee
    storage, in one transaction."""
    if args.get("reset"):
        cmd_reset({})
    task = getattr(hueyapp, args["workload"])
    n = args["n"]
    began = time.perf_counter()
    database = getattr(huey.storage, "database", None)  # SqlHuey's peewee database
    if database is not None:
        with database.atomic():
            for _ in range(n):
                task()
    else:
        for _ in range(n):
            task()
    return {"seconds": time.perf_counter() - began, "n": n}


def cmd_watch(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.watch(huey.pending_count, args)


def cmd_ready(args: dict[str, Any]) -> dict[str, Any]:
    return {"ready": huey.pending_count()}


def cmd_enqueue(args: dict[str, Any]) -> dict[str, Any]:
    """A task call (its message built, serialized and written) against the storage's own write
    of the same message bytes, ``storage.enqueue(data)``: the floor under the call. Huey has
    no bulk API."""
    data = huey.serialize_task(hueyapp.noop.s())
    result = peer_agent.enqueue_rounds(hueyapp.noop, lambda: huey.storage.enqueue(data), args)
    huey.flush()
    return result


def cmd_latency(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.latency(hueyapp.stamp, args)


if __name__ == "__main__":
    peer_agent.main(
        {
            "migrate": cmd_migrate,
            "reset": cmd_reset,
            "seed": cmd_seed,
            "watch": cmd_watch,
            "ready": cmd_ready,
            "enqueue": cmd_enqueue,
            "latency": cmd_latency,
        }
    )
