"""Stopping a task's body in a process pool's child: signals, not a watchdog thread.

A child runs one task at a time in its main thread. Its body is *armed* as in a thread
(``firefly_tasks.deadlines``), but the timeout is an interval timer: at the deadline SIGALRM's
handler raises :class:`~firefly_tasks.exceptions.TaskTimeout`, and SIGUSR1 (sent by the parent,
which wrote the body's task in the child's board first) raises
:class:`~firefly_tasks.exceptions.TaskCancelled`. Python runs a signal's handler in the main
thread between two bytecodes, and a signal interrupts a blocking system call (``time.sleep``, a
socket read) to run it: the exception arrives there and ``finally:`` blocks run. A body that
does not stop (a loop in C code) is killed by the parent after ``FIREFLY_TIMEOUT_GRACE``.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Hashable
from types import FrameType

from firefly_tasks.board import Board
from firefly_tasks.deadlines import cancel_async
from firefly_tasks.exceptions import TaskCancelled, TaskTimeout


class Alarms:
    """The child's :class:`~firefly_tasks.deadlines.Guard`: install once, in the main thread."""

    def __init__(self, board: Board, on_drop: Callable[[frozenset[int]], None]) -> None:
        self.board = board
        self.on_drop = on_drop  # tasks of the batch cancelled before they started
        self.token: Hashable = None
        self.seconds: float | None = None
        self.armed = False
        self.raised: type[BaseException] | None = None
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGUSR1, self._on_cancel)

    def arm(self, seconds: float | None, token: Hashable = None) -> None:
        self.token, self.seconds, self.raised = token, seconds, None
        # Armed first: a short timer may fire as soon as it is set (the caller's disarm()
        # takes what it raises here).
        self.armed = True
        if seconds is None:
            self.board.set(deadline=math.inf)
        else:
            self.board.set(deadline=time.monotonic() + seconds)
            signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm(self) -> type[BaseException] | None:
        while True:
            try:
                self.armed = False  # from here on, the handlers raise nothing
                if self.seconds is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    # The next task shows on the board before it is armed: not with this
                    # deadline, or its child could be killed for this one's.
                    self.board.set(deadline=math.inf)
                return self.raised
            except (TaskTimeout, TaskCancelled):
                continue  # raised just before ``armed`` was cleared: already recorded

    def cancelled(self, thread: int) -> bool:
        return self.raised is TaskCancelled

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.armed and self.raised is None:
            self.raised = TaskTimeout
            raise TaskTimeout(f"the attempt ran past its timeout of {self.seconds:g} s")

    def _on_cancel(self, signum: int, frame: FrameType | None) -> None:
        self.on_drop(self.board.dropped())
        wanted = (int(self.board.cancel_pk), int(self.board.cancel_attempt))
        if not self.armed:
            cancel_async(wanted)  # an ``@atask`` body, in its loop's thread
            return
        if self.raised is None and wanted == self.token:
            self.raised = TaskCancelled
            raise TaskCancelled("the task was cancelled while it ran")
