"""The benchmark workloads, as Firefly tasks."""

from __future__ import annotations

import time

from firefly_tasks.decorators import task


@task()
def noop() -> None:
    """Nothing: measures the queue's own cost per task."""


@task()
def sleep10() -> None:
    """I/O-bound work: 10 ms of waiting."""
    time.sleep(0.01)


@task()
def stamp() -> float:
    """The moment the task started, for the latency figure."""
    return time.time()


@task()
def spin(seconds: float) -> None:
    """Python code for ``seconds``: what a timeout or a cancel stops (bench/stop_latency.py)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@task()
def sleep(seconds: float) -> None:
    """Blocked in C for ``seconds``: the process pool's signals stop it (bench/stop_latency.py)."""
    time.sleep(seconds)


@task()
def stamp_after(previous: object) -> float:
    """A group's callback or a chain's link: the moment it started."""
    return time.time()


@task()
def tick() -> None:
    """What the schedules of the "fffeat" system enqueue (bench/settings.py): nothing."""


@task(timeout=60)
def featured(i: int) -> None:
    """The no-op of the "fffeat" system (Firefly with its features on): declared with a
    timeout, armed and disarmed around each run and never reached; each call is scheduled with
    a unique key of its own, made from ``i``, and tags (bench/agent_adapters.py)."""
