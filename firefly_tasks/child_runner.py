"""The batch runner of a process pool's child: a thread's runner that shows on its board what
it executes, for its parent to supervise (``firefly_tasks.pool``)."""

from __future__ import annotations

import datetime
import math
import threading
import time
from typing import Any

from firefly_tasks.batches import BatchRunner
from firefly_tasks.board import Board
from firefly_tasks.liveness import Liveness
from firefly_tasks.models import TaskModel, WorkerModel


class ChildRunner(BatchRunner):
    def __init__(self, worker: WorkerModel, board: Board, liveness: Liveness) -> None:
        self.board = board
        self._positions: dict[int, int] = {}
        self._rows: dict[int, TaskModel] = {}
        super().__init__(worker, threading.Event(), liveness=liveness)

    def run(self, rows: list[TaskModel], revivals: int | None = None) -> Any:
        self._positions = {row.pk: i for i, row in enumerate(rows)}
        self._rows = {row.pk: row for row in rows}
        self.drop_ids(self.board.dropped())  # told before this batch began (SIGUSR1 came early)
        return super().run(rows, revivals)

    def drop_ids(self, pks: frozenset[int]) -> None:
        """The parent told (``Board.drop``) which tasks of this batch were cancelled."""
        for pk in pks:
            if (row := self._rows.get(pk)) is not None:
                self.drop(row)

    @property
    def executing(self) -> tuple[TaskModel, datetime.datetime] | None:
        return self._executing

    @executing.setter
    def executing(self, value: tuple[TaskModel, datetime.datetime] | None) -> None:
        self._executing = value
        board = self.board
        if value is None:
            board.set(pk=-1)
            return
        row, started = value
        board.set(
            pk=row.pk,
            attempt=row.attempt,
            started=started.timestamp(),
            # From about now; a sync body's own, exact one replaces it as it is armed. An
            # ``@atask`` keeps this one: past it and the grace, its child is killed.
            deadline=math.inf if row.timeout is None else time.monotonic() + row.timeout,
            position=self._positions.get(row.pk, -1),
            ran=board.ran + 1,
        )
