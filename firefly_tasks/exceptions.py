"""Exceptions raised by Firefly's public API."""

from __future__ import annotations

from typing import Any, NoReturn


class FireflyError(Exception):
    """Base class of every exception Firefly raises on purpose."""


class InvalidTaskError(FireflyError, ValueError):
    """A task definition or a ``schedule()`` call was given bad input."""


class SerializationError(InvalidTaskError):
    """A value cannot be stored with the chosen serializer, or stored text cannot be read."""


class UnknownQueueError(InvalidTaskError):
    """A queue name that ``FIREFLY_QUEUES`` does not allow."""


class DuplicateTaskError(FireflyError):
    """A call with ``on_duplicate="raise"`` whose unique key an unfinished task holds;
    ``existing`` is that task's row. Nothing was stored."""

    def __init__(self, message: str, existing: object) -> None:
        super().__init__(message)
        self.existing = existing


class TaskFailedError(FireflyError):
    """``wait_result(raise_on_failure=True)``: the task failed or was cancelled. ``task`` is
    its row."""

    def __init__(self, message: str, task: Any) -> None:
        super().__init__(message)
        self.task = task


class UniqueKeyHeldError(FireflyError):
    """A task cannot be requeued: a newer unfinished task holds its unique key. ``held``
    maps each refused task's id to the id of the task holding its key."""

    def __init__(self, message: str, held: dict[int, int]) -> None:
        super().__init__(message)
        self.held = held


class UnknownTaskError(FireflyError, LookupError):
    """A ``func_name`` that names no registered task."""


class AsyncContextError(FireflyError, RuntimeError):
    """A sync task scheduled from async code, or an async task from sync code."""


class InvalidScheduleError(FireflyError, ValueError):
    """A periodic schedule that cannot be used: see ``firefly_tasks.schedules``."""


class Snooze(Exception):
    """Raise it in a task, ``raise Snooze(30)`` (or call :func:`firefly_tasks.snooze`), to run
    the task again ``seconds`` from now without spending a retry: the attempt is recorded
    ``snoozed``, and an atomic task's writes roll back. A task snoozed more than
    ``FIREFLY_MAX_SNOOZES`` times fails instead."""

    MAX_SECONDS = 366 * 24 * 3600

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"Snooze takes a number of seconds, not {seconds!r}.")
        if not 0 <= seconds <= self.MAX_SECONDS:  # NaN fails this too
            raise ValueError(
                f"Snooze takes seconds from 0 to {self.MAX_SECONDS} (a year), not {seconds!r}."
            )
        self.seconds = float(seconds)
        super().__init__(f"snoozed for {self.seconds:g} s")


def snooze(seconds: float) -> NoReturn:
    """Put the running task back to run ``seconds`` from now: ``raise Snooze(seconds)``."""
    raise Snooze(seconds)


class TaskTimeout(BaseException):
    """Raised inside a task that ran past its ``timeout``. It derives from ``BaseException``,
    as ``KeyboardInterrupt`` does, so that ``except Exception`` in the task cannot swallow it;
    ``finally:`` blocks and context managers still run. A task that catches it anyway still
    ends ``timed_out``."""


class TaskCancelled(BaseException):
    """Raised inside a task cancelled while it runs (``cancel(running=True)``), as
    :class:`TaskTimeout` is at a timeout. The attempt ends ``cancelled`` and is never retried."""
