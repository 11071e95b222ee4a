"""Exceptions raised by Firefly's public API."""

from __future__ import annotations


class FireflyError(Exception):
    """Base class of every exception Firefly raises on purpose."""


class InvalidTaskError(FireflyError, ValueError):
    """A task definition or a ``schedule()`` call was given bad input."""


class SerializationError(InvalidTaskError):
    """A value cannot be stored with the chosen serializer, or stored text cannot be read."""


class UnknownQueueError(InvalidTaskError):
    """A queue name that ``FIREFLY_QUEUES`` does not allow."""


class UnknownTaskError(FireflyError, LookupError):
    """A ``func_name`` that names no registered task."""


class AsyncContextError(FireflyError, RuntimeError):
    """A sync task scheduled from async code, or an async task from sync code."""


class InvalidScheduleError(FireflyError, ValueError):
    """A periodic schedule that cannot be used: see ``firefly_tasks.schedules``."""


class TaskTimeout(BaseException):
    """Raised inside a task that ran past its ``timeout``. It derives from ``BaseException``,
    as ``KeyboardInterrupt`` does, so that ``except Exception`` in the task cannot swallow it;
    ``finally:`` blocks and context managers still run. A task that catches it anyway still
    ends ``timed_out``."""


class TaskCancelled(BaseException):
    """Raised inside a task cancelled while it runs (``cancel(running=True)``), as
    :class:`TaskTimeout` is at a timeout. The attempt ends ``cancelled`` and is never retried."""
