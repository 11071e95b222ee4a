"""Running a task alone in its process, so that a crash is charged only to its cause.

A task recovered from a dead consumer is not known to have been the one that killed it (see
:class:`~firefly_tasks.models.Isolation`). It runs next with nothing else running in its
consumer: every worker thread runs its other tasks under :meth:`IsolationLock.shared`, and
the isolated task under :meth:`IsolationLock.alone`, which waits for the others to finish the
task at hand and holds them back until it is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class IsolationLock:
    """A shared/exclusive lock that lets an exclusive holder in before new shared ones."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting_alone = 0
        self._waiting_shared = 0

    @contextmanager
    def shared(self) -> Iterator[bool]:
        """Hold the lock with the other shared holders; yields whether it had to wait (for a
        task run alone, which may have taken any time)."""
        condition = self._condition
        with condition:
            waited = bool(self._alone or self._waiting_alone)
            self._waiting_shared += waited
            while self._alone or self._waiting_alone:
                condition.wait()
            self._waiting_shared -= waited
            self._shared += 1
        try:
            yield waited
        finally:
            with condition:
                self._shared -= 1
                if not self._shared:
                    condition.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        condition = self._condition
        with condition:
            self._waiting_alone += 1
            try:
                while self._alone or self._shared:
                    condition.wait()
            finally:
                self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with condition:
                self._alone = False
                condition.notify_all()
