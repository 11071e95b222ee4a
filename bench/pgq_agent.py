"""The pgqueuer side of the benchmarks: ``python -m bench.pgq_agent COMMAND 'JSON-ARGS'``.

Runs in pgqueuer's own virtualenv (asyncpg, no Django). ``worker`` is a pgqueuer
``QueueManager`` with batches of 100, the way pgqueuer is meant to be run; it records when
each job starts and ends and prints them as JSON when it stops (drained, capped, or SIGTERM).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import asyncpg
from pgqueuer import Queries, QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.types import QueueExecutionMode

from bench.dbconf import NAME, PG


async def connect() -> asyncpg.Connection:
    return await asyncpg.connect(
        host=PG["HOST"], port=int(PG["PORT"]), user=PG["USER"],
        password=PG["PASSWORD"] or None, database=NAME,
    )  # fmt: skip


async def queries() -> tuple[asyncpg.Connection, Queries]:
    conn = await connect()
    return conn, Queries(AsyncpgDriver(conn))


async def cmd_install(args: dict[str, Any]) -> dict[str, Any]:
    conn, q = await queries()
    if not await q.schema_is_installed():
        await q.install()
    await conn.close()
    return {}


async def cmd_reset(args: dict[str, Any]) -> dict[str, Any]:
    conn, q = await queries()
    await q.clear_queue()
    await q.clear_queue_log()
    await q.clear_statistics_log()
    await conn.close()
    return {}


async def cmd_seed(args: dict[str, Any]) -> dict[str, Any]:
    if args.get("reset"):
        await cmd_reset({})
    conn, q = await queries()
    n, chunk, workload = args["n"], args.get("chunk", 5000), args["workload"]
    began = time.perf_counter()
    left = n
    while left > 0:
        size = min(chunk, left)
        await q.enqueue([workload] * size, [None] * size, [0] * size)
        left -= size
    await conn.close()
    return {"seconds": time.perf_counter() - began, "n": n}


async def cmd_ready(args: dict[str, Any]) -> dict[str, Any]:
    conn = await connect()
    ready = await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
    await conn.close()
    return {"ready": ready}


async def cmd_worker(args: dict[str, Any]) -> dict[str, Any]:
    """Consume one workload; ``concurrency`` maps to the entrypoint's concurrency_limit."""
    conn = await connect()
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    workload = args["workload"]
    starts: list[float] = []
    ends: list[float] = []
    stamps: dict[str, float] = {}

    async def noop(job: Any) -> None:
        starts.append(time.time())
        ends.append(time.time())

    async def sleep10(job: Any) -> None:
        starts.append(time.time())
        await asyncio.sleep(0.01)
        ends.append(time.time())

    async def stamp(job: Any) -> None:
        now = time.time()
        starts.append(now)
        stamps[job.payload.decode()] = now
        ends.append(time.time())

    handler = {"noop": noop, "sleep10": sleep10, "stamp": stamp}[workload]
    qm.entrypoint(workload, concurrency_limit=args.get("concurrency", 0))(handler)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, qm.shutdown.set)
    if args.get("cap"):
        loop.call_later(args["cap"], qm.shutdown.set)
    began = time.time()
    mode = QueueExecutionMode.drain if args.get("drain", True) else QueueExecutionMode.continuous
    await qm.run(
        batch_size=args.get("batch", 100), mode=mode, dequeue_timeout=timedelta(seconds=30)
    )
    finished = time.time()
    with_conn = not conn.is_closed()
    if with_conn:
        await conn.close()
    return {
        "done": len(ends),
        "first": min(ends) if ends else None,
        "last": max(ends) if ends else None,
        "first_start": min(starts) if starts else None,
        "began": began,
        "finished": finished,
        "stamps": stamps,
    }


async def cmd_enqueue(args: dict[str, Any]) -> dict[str, Any]:
    """Single ``enqueue()`` calls vs a raw single-row insert into pgqueuer's table; then
    batched ``enqueue()`` of ``chunk`` jobs."""
    conn, q = await queries()
    rounds, per_round = args.get("rounds", 5), args.get("per_round", 200)
    single: list[float] = []
    raw: list[float] = []
    raw_sql = (
        "INSERT INTO pgqueuer (priority, entrypoint, payload, status) "
        "VALUES (0, 'noop', NULL, 'queued')"
    )
    for _ in range(rounds):
        for _ in range(per_round):
            t0 = time.perf_counter()
            await q.enqueue("noop", None)
            single.append(time.perf_counter() - t0)
        for _ in range(per_round):
            t0 = time.perf_counter()
            await conn.execute(raw_sql)
            raw.append(time.perf_counter() - t0)
    n, chunk = args.get("many", 20_000), args.get("chunk", 1000)
    t0 = time.perf_counter()
    for _ in range(n // chunk):
        await q.enqueue(["noop"] * chunk, [None] * chunk, [0] * chunk)
    many = n / (time.perf_counter() - t0)
    await conn.close()
    return {
        "single_ms": statistics.median(single) * 1000,
        "raw_single_ms": statistics.median(raw) * 1000,
        "single_per_s": 1 / statistics.median(single),
        "raw_single_per_s": 1 / statistics.median(raw),
        "many_per_s": many,
    }


async def cmd_latency(args: dict[str, Any]) -> dict[str, Any]:
    """Enqueue ``stamp`` jobs at a steady rate; the worker reports when each started."""
    conn, q = await queries()
    samples, interval = args.get("samples", 200), args.get("interval", 0.025)
    committed: dict[str, float] = {}
    next_at = time.perf_counter()
    for i in range(samples):
        await q.enqueue("stamp", str(i).encode())
        committed[str(i)] = time.time()
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await conn.close()
    return {"committed": committed}


COMMANDS = {
    "install": cmd_install,
    "migrate": cmd_install,
    "reset": cmd_reset,
    "seed": cmd_seed,
    "ready": cmd_ready,
    "worker": cmd_worker,
    "enqueue": cmd_enqueue,
    "latency": cmd_latency,
}


def main() -> None:
    command = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    os.environ.setdefault("PGQUEUER_LOG_LEVEL", "WARNING")
    result = asyncio.run(COMMANDS[command](args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
