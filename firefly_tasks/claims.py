"""One worker thread's claims: made when it needs them, or sent ahead while it runs a batch.

A consumer of fast tasks spends its time in turns: the claim waits on the database, the tasks
on Python, the group's commit on the database again. While a thread runs a batch of fast tasks
from a queue that had more than the batch, it sends its next claim ahead, to a thread of its
own with a connection of its own, so that the database works on that claim while the thread
works on its tasks (``FIREFLY_CLAIM_AHEAD``; not on SQLite, where the claim would wait for the
group's commit).

A batch claimed ahead is claimed like any other (``running``, this worker's, its attempt
bumped): this worker's from the moment its claim commits, recovered with the rest if the
consumer dies, and given back (released, not run) if the thread stops or is fenced first, even
if the claim lands after the fence.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from django.db import Error, connections
from django.utils import timezone

from firefly_tasks.budget import Budget
from firefly_tasks.database import queue_connection
from firefly_tasks.dialects import dialect
from firefly_tasks.leftovers import Leftovers
from firefly_tasks.models import TaskModel

logger = logging.getLogger("firefly_tasks")

Job = tuple["Future[list[TaskModel]]", Callable[[], list[TaskModel]]]


@dataclass
class _Pending:
    """A claim sent ahead: its rows to come, how many the budget granted it, its stamp (to
    undo it if its reply is lost) and the worker's revivals read before it was sent."""

    future: Future[list[TaskModel]]
    granted: int
    stamp: datetime.datetime
    revivals: int


class Claims:
    """Claims for one worker thread, counted against the consumer's ``--max-tasks`` budget;
    what a lost reply may have claimed is left to ``leftovers`` to undo."""

    def __init__(
        self,
        queues: list[str],
        worker_id: int,
        budget: Budget,
        leftovers: Leftovers,
        *,
        ahead: bool,
        name: str,
        fenced: Callable[[], bool] = lambda: False,
    ) -> None:
        self.queues = queues
        self.worker_id = worker_id
        self.budget = budget
        self.leftovers = leftovers
        self.may_send_ahead = ahead
        self.name = name
        self.fenced = fenced  # whether the thread was fenced (firefly_tasks.fence)
        self.full = False  # whether the last claim brought all it was granted
        self._pending: _Pending | None = None
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def claim(self, wanted: int) -> list[TaskModel] | None:
        """Claim up to ``wanted`` rows now; ``None`` when ``--max-tasks`` is used up."""
        prepared = self._prepare(wanted)
        if prepared is None:
            return None
        claim, granted, stamp = prepared
        try:
            rows = claim()
        except BaseException:
            self._lost(granted, stamp)
            raise
        return self._got(granted, rows)

    def send_ahead(self, wanted: int, revivals: int) -> None:
        """Start claiming the next batch of up to ``wanted`` rows, if the last claim was full
        and the tasks are fast enough to come in batches (``wanted`` over one)."""
        if not (self.may_send_ahead and self.full and wanted > 1) or self._pending is not None:
            return
        prepared = self._prepare(wanted)
        if prepared is not None:
            claim, granted, stamp = prepared
            self._pending = _Pending(self._submit(claim), granted, stamp, revivals)

    def _prepare(
        self, wanted: int
    ) -> tuple[Callable[[], list[TaskModel]], int, datetime.datetime] | None:
        """A claim of what the budget grants of ``wanted``, with its count and stamp; ``None``
        when ``--max-tasks`` is used up."""
        granted = self.budget.take(wanted)
        if not granted:
            return None
        stamp = timezone.now()
        claim = functools.partial(
            TaskModel.objects.claim, self.queues, granted, self.worker_id, now=stamp
        )
        return claim, granted, stamp

    def collect(self) -> tuple[list[TaskModel], int] | None:
        """The rows claimed ahead and the revivals read before their claim, once it is back;
        ``None`` if none was sent. Raises the claim's error."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        try:
            rows = pending.future.result()
        except BaseException:
            self._lost(pending.granted, pending.stamp)
            raise
        return self._got(pending.granted, rows), pending.revivals

    def ahead(self) -> list[TaskModel]:
        """The rows of the claim sent ahead, if it is back (for the cancel checks, the fence
        and an interrupt, from other threads)."""
        pending = self._pending
        if pending is None or not pending.future.done() or pending.future.exception():
            return []
        return pending.future.result()

    def give_back(self) -> None:
        """Leave what was claimed ahead to ``leftovers``, to release unrun."""
        try:
            collected = self.collect()
        except Exception as exc:  # its stamp is with the leftovers
            if not isinstance(exc, Error):
                logger.warning("a claim sent ahead failed error=%r", exc)
            return
        if collected and collected[0]:
            rows = collected[0]
            logger.info("claimed ahead, not run: %s task(s) go back to the queue", len(rows))
            self.budget.give_back(len(rows))
            self.leftovers.unstarted += rows

    def close(self) -> None:
        """Give back what was claimed ahead; end the thread claiming ahead."""
        self.give_back()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _got(self, granted: int, rows: list[TaskModel]) -> list[TaskModel]:
        self.budget.give_back(granted - len(rows))
        self.full = len(rows) == granted
        return rows

    def _lost(self, granted: int, stamp: datetime.datetime) -> None:
        self.budget.give_back(granted)
        self.leftovers.claim_stamp = stamp  # the claim may have committed: undo it later
        self.full = False

    def _submit(self, claim: Callable[[], list[TaskModel]]) -> Future[list[TaskModel]]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
        future: Future[list[TaskModel]] = Future()
        self._jobs.put((future, claim))
        return future

    def _serve(self) -> None:
        """The claims sent ahead, one at a time, on this thread's own connections."""
        try:
            while (job := self._jobs.get()) is not None:
                future, claim = job
                try:
                    dialect(queue_connection()).check_connection()  # as the thread's own
                    rows = claim()
                except BaseException as exc:
                    connections.close_all()  # a broken connection is not used again
                    future.set_exception(exc)
                    continue
                future.set_result(rows)
                # Then (a fence marks the thread, then reads its rows): a thread fenced before
                # the rows were there would keep them waiting as long as it is stuck.
                if rows and self.fenced():
                    with contextlib.suppress(Error):  # else the thread, back, gives them back
                        TaskModel.objects.release(rows)
        finally:
            connections.close_all()
