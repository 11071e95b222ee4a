"""Celery (no Django) as a peer of the benchmarks: the app its worker runs (``celery -A
bench.peers.celeryapp worker``) and the benchmark workloads.

Redis is the broker; every key of a benchmark run starts with its name (kombu's
``global_keyprefix``), so runs never share a queue. Results are off (``ignore_result``), as
for any task whose return value nobody reads. Celery's defaults otherwise; the worker's
pool, concurrency and prefetch come from its command line (bench/systems.py).
"""

from __future__ import annotations

import time

from celery import Celery

from bench.dbconf import NAME, REDIS_URL
from bench.peer_agent import write_stamp

app = Celery("bench", broker=REDIS_URL)
app.conf.broker_transport_options = {"global_keyprefix": f"{NAME}:"}
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True
QUEUE = app.conf.task_default_queue  # "celery"


@app.task
def noop() -> None:
    pass


@app.task
def sleep10() -> None:
    time.sleep(0.01)


@app.task
def stamp(key: str) -> None:
    write_stamp(key)
