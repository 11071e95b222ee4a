"""The fence, in one process: a task thread blocked on its database session, the fence ending
that session, and the order in which the two record what became of the task."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from django.db import connection, connections
from django.test import override_settings

from firefly_tasks.batches import BatchInterrupted, BatchRunner
from firefly_tasks.dialects import dialect
from firefly_tasks.fence import Fence
from firefly_tasks.leftovers import Leftovers
from firefly_tasks.models import StuckTask, TaskModel, TaskStatus, WorkerModel
from tests.conftest import outcomes, wait_until
from tests.testapp import tasks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="an SQLite connection is a file handle: no session"
    ),
]

WITHIN = 30  # the task's timeout is 1 s, the grace 0.2 s: ten times that and more


class _ContendedLock:
    """A lock that tells when someone had to wait for it."""

    def __init__(self, contended: threading.Event) -> None:
        self._lock, self._contended = threading.Lock(), contended

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._contended.set()
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


@dataclass
class _Consumer:
    """What the fence reads of its consumer: one task thread."""

    row: WorkerModel | None
    concurrency: int = 1
    held: dict[int, tuple[BatchRunner, list[TaskModel]]] = field(default_factory=dict)

    def held_by(self, thread: int) -> tuple[BatchRunner, list[TaskModel]] | None:
        return self.held.get(thread)


def test_a_thread_woken_by_the_end_of_its_session_waits_for_the_fence_to_settle_its_task(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending the session wakes the thread at once: it finds its connection lost and puts
    what it started back, as interrupted (uncharged, to run again). The fence records the
    attempt timed out just after. Forced here: the fence's end of the session returns only once
    the thread has put its task back or waits for the fence. The fence must come first."""
    worker = WorkerModel.objects.create(name="fenced", hostname="here", pid=1)
    consumer = _Consumer(worker)
    row = tasks.sleep_in_unbounded_query.schedule(60)
    waits, back = threading.Event(), threading.Event()

    def run_claimed() -> None:
        runner = BatchRunner(worker, threading.Event())
        runner.stuck_lock = _ContendedLock(waits)  # type: ignore[assignment]
        leftovers = Leftovers(worker)
        try:
            claimed = TaskModel.objects.claim([row.queue], 1, worker.pk)
            consumer.held[runner.thread] = (runner, claimed)
            runner.run(claimed)
        except BatchInterrupted as exc:  # as the consumer does: put back at its next turn
            connections.close_all()
            leftovers.started += exc.started
            leftovers.put_back()
        finally:
            connections.close_all()
            back.set()

    end_session = type(dialect(connection)).end_session

    def end_then_let_the_thread_go_first(self: object, session: int) -> bool:
        ended = end_session(self, session)  # type: ignore[arg-type]
        wait_until(lambda: back.is_set() or waits.is_set(), timeout=WITHIN)
        return ended

    monkeypatch.setattr(type(dialect(connection)), "end_session", end_then_let_the_thread_go_first)
    fence = Fence(consumer)
    thread = threading.Thread(target=run_claimed, name="task-thread")
    with override_settings(FIREFLY_TIMEOUT_GRACE=0.2):
        thread.start()
        wait_until(lambda: bool(consumer.held), timeout=WITHIN)
        runner = next(iter(consumer.held.values()))[0]
        wait_until(lambda: fence.check() or runner.fenced, timeout=WITHIN)
    thread.join(WITHIN)

    assert back.is_set() and not thread.is_alive()
    row.refresh_from_db()
    assert (row.status, outcomes(row)) == (TaskStatus.FAILED, ["timed_out"])
    assert "its thread was fenced" in row.error
    assert not StuckTask.objects.exists()  # its thread came back: its slots are free
