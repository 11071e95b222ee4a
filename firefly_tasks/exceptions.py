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
