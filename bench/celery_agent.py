"""The Celery side of the benchmarks: ``python -m bench.celery_agent COMMAND 'JSON-ARGS'``.

Runs in Celery's own virtualenv with the app of ``bench/peers/celeryapp.py`` (Redis broker).
Its consumer is Celery's own ``celery worker``, which never exits by itself and, with results
off, records nothing: ``watch`` follows a drain by the broker's count of the tasks not yet
started, the queue's list plus the messages the worker has prefetched but not yet acknowledged
(Celery acknowledges a task as its pool starts it). The tasks themselves do nothing.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench import peer_agent
from bench.dbconf import NAME, REDIS_URL
from bench.peers import celeryapp

PREFIX = f"{NAME}:"
client = redis.Redis.from_url(REDIS_URL)


def cmd_migrate(args: dict[str, Any]) -> dict[str, Any]:
    return {}


def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    keys = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    return {"keys": len(keys)}


def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    """``n`` tasks through ``apply_async`` on one producer (Celery has no bulk API)."""
    if args.get("reset"):
        cmd_reset({})
    task = getattr(celeryapp, args["workload"])
    n = args["n"]
    began = time.perf_counter()
    with celeryapp.app.producer_or_acquire() as producer:
        for _ in range(n):
            task.apply_async(producer=producer)
    return {"seconds": time.perf_counter() - began, "n": n}


def pending() -> int:
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(PREFIX + celeryapp.QUEUE)
        pipe.hlen(PREFIX + "unacked")
        queued, unacked = pipe.execute()
    return int(queued) + int(unacked)


def cmd_watch(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.watch(pending, {"interval": 0.01, **args})


def cmd_ready(args: dict[str, Any]) -> dict[str, Any]:
    return {"ready": pending()}


def cmd_enqueue(args: dict[str, Any]) -> dict[str, Any]:
    """``delay()`` against a raw ``LPUSH`` of the message it wrote (the same bytes, on a plain
    redis-py connection). Celery has no bulk API."""
    celeryapp.noop.delay()
    key = PREFIX + celeryapp.QUEUE
    message = client.lindex(key, 0)
    result = peer_agent.enqueue_rounds(
        celeryapp.noop.delay, lambda: client.lpush(key, message), args
    )
    cmd_reset({})
    return result


def cmd_latency(args: dict[str, Any]) -> dict[str, Any]:
    return peer_agent.latency(lambda key: celeryapp.stamp.delay(key), args)


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
