"""A process pool's child: runs the batches its parent claimed, one task at a time.

Started by ``firefly_tasks.pool`` with the ``spawn`` method (a fresh interpreter: forking a
parent that runs threads can deadlock), it sets Django up, then takes batches from its pipe and
runs each as a thread of the thread pool would (``BatchRunner``: the same execution path, group
commits included), on its own database connection: a task's writes commit with its completion
here. Its timeouts and cancels are signals (``firefly_tasks.alarms``). It ignores SIGINT and
SIGTERM (its parent stops it, between batches), and dies with its parent (Linux).

Each reply says how the batch went and whether the child is retiring: once it has run
``--max-tasks-per-child`` tasks, or its peak memory passed ``--max-memory-per-child`` KiB.
"""

from __future__ import annotations

import ctypes
import resource
import signal
import sys
from collections.abc import MutableSequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildOptions:
    worker_id: int
    slot: int
    max_tasks: int | None = None
    max_memory_kib: int | None = None


def main(
    conn: Connection,
    board_cells: MutableSequence[float],
    liveness_cells: MutableSequence[float],
    options: ChildOptions,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    import django

    django.setup()
    _serve(conn, board_cells, liveness_cells, options)


def _serve(
    conn: Connection,
    board_cells: MutableSequence[float],
    liveness_cells: MutableSequence[float],
    options: ChildOptions,
) -> None:
    # Imported here: the spawned interpreter imports this module before Django is set up.
    from django.db import connections

    from firefly_tasks import deadlines
    from firefly_tasks.alarms import Alarms
    from firefly_tasks.batches import BatchInterrupted
    from firefly_tasks.board import Board
    from firefly_tasks.child_runner import ChildRunner
    from firefly_tasks.liveness import SharedLiveness
    from firefly_tasks.models import WorkerModel
    from firefly_tasks.rollups import use_slot

    board = Board(board_cells)
    board.clear()
    use_slot(options.slot)
    worker = WorkerModel.objects.get(pk=options.worker_id)
    runner = ChildRunner(worker, board, SharedLiveness(liveness_cells))
    deadlines.use(Alarms(board, runner.drop_ids))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return  # the parent is gone
            if message is None:
                return
            rows, revivals = message
            try:
                outcomes, handed_back = runner.run(rows, revivals)
                reply: tuple[Any, ...] = ("ran", list(outcomes), [r.pk for r in handed_back])
            except BatchInterrupted as exc:
                connections.close_all()
                reply = ("lost", [r.pk for r in exc.started], [r.pk for r in exc.unstarted])
            board.clear()
            retiring = _retiring(board, options)
            conn.send((reply, runner.batch_size(), retiring))
            if retiring:
                return
    finally:
        connections.close_all()


def _retiring(board: Any, options: ChildOptions) -> bool:
    if options.max_tasks is not None and board.ran >= options.max_tasks:
        return True
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return options.max_memory_kib is not None and peak > options.max_memory_kib
