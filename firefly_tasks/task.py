"""A registered task: calling it runs the function, ``schedule()`` stores a call for a
consumer, ``using()`` gives a copy with other options. ``@task``/``@atask`` make them."""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import warnings
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from firefly_tasks.exceptions import AsyncContextError, InvalidTaskError
from firefly_tasks.options import TaskOptions
from firefly_tasks.registry import registry

if TYPE_CHECKING:
    from firefly_tasks.models import TaskModel
    from firefly_tasks.workflows import Signature


class Task:
    """A registered sync task. Calling it runs the function inline; ``schedule()`` queues it."""

    is_async = False

    def __init__(self, func: Callable[..., Any], *, atomic: bool = True, **options: Any) -> None:
        self.options = TaskOptions().replace(**options)
        self.func = func
        self.atomic = bool(atomic)
        self.name = f"{func.__module__}.{func.__qualname__}"
        functools.update_wrapper(self, func)
        registry.register(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    # The options every call gets unless ``using()`` changes them.
    @property
    def queue(self) -> str | None:
        return self.options.queue

    @property
    def priority(self) -> int:
        return self.options.priority

    @property
    def max_retries(self) -> int | None:
        return self.options.max_retries

    @property
    def retry_delay(self) -> int | None:
        return self.options.retry_delay

    @property
    def retry_backoff(self) -> bool:
        return self.options.retry_backoff

    @property
    def timeout(self) -> float | None:
        return self.options.timeout

    def using(self, **options: Any) -> Self:
        """A copy of this task whose calls get ``options`` (the decorator's names, and
        ``eta``): ``add.using(queue="urgent", priority=10).schedule(1, 2)``. Each option is
        checked now; the task stays registered once, under its name."""
        configured = copy.copy(self)
        configured.options = self.options.replace(**options)
        return configured

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task's call, not yet scheduled, for a chain or a group: in a chain it
        receives the previous link's result as its first argument (before ``args``)."""
        from firefly_tasks.workflows import Signature

        return Signature(self, args, kwargs, immutable=False)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """This task's call, not yet scheduled, that receives nothing from the tasks it
        waits for (an immutable signature)."""
        from firefly_tasks.workflows import Signature

        return Signature(self, args, kwargs, immutable=True)

    # Scheduling -----------------------------------------------------------------------------

    def schedule(
        self, *args: Any, eta: datetime.datetime | None = None, **kwargs: Any
    ) -> TaskModel:
        """Store a call of this task for a consumer to run; returns the ``TaskModel`` row."""
        self._check_sync_context()
        return self._schedule_rows([(args, kwargs)], eta)[0]

    def schedule_many(
        self, calls: Iterable[Any], *, eta: datetime.datetime | None = None
    ) -> list[TaskModel]:
        """Store many calls in one ``INSERT``. Each item is an args tuple or ``(args, kwargs)``."""
        self._check_sync_context()
        return self._schedule_rows([_split_call(item) for item in calls], eta)

    def schedule_on_commit(
        self, *args: Any, eta: datetime.datetime | None = None, **kwargs: Any
    ) -> None:
        """Store a call of this task once the default database's transaction commits (at
        once outside one); nothing if it rolls back. The call is checked and serialized now.
        With ``FIREFLY_DATABASE`` on a database of its own, ``schedule()`` inside
        ``transaction.atomic()`` commits at once, whatever becomes of the caller's writes."""
        self._check_sync_context()
        import firefly_tasks.calls as stored_calls

        rows = stored_calls.build_rows(
            self.name, self.options, [(args, kwargs)], now=timezone.now(), eta=eta
        )
        on_duplicate = self.options.on_duplicate

        def store() -> None:
            stored_calls.run_if_immediate(stored_calls.store(rows, on_duplicate))

        transaction.on_commit(store, using=DEFAULT_DB_ALIAS)

    def _check_sync_context(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise AsyncContextError(
            f"{self.name} is a sync task scheduled from async code. Use "
            f"`await sync_to_async({self.func.__name__}.schedule)(...)`, or define it with @atask."
        )

    def _schedule_rows(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], eta: object
    ) -> list[TaskModel]:
        import firefly_tasks.calls as stored_calls

        now = timezone.now()
        rows = stored_calls.build_rows(self.name, self.options, calls, now=now, eta=eta)
        rows = stored_calls.store(rows, self.options.on_duplicate)
        stored_calls.run_if_immediate(rows)
        return rows


class AsyncTask(Task):
    """A registered ``async def`` task: ``await task.schedule(...)`` from async code."""

    is_async = True

    def __init__(self, func: Callable[..., Any], **options: Any) -> None:
        super().__init__(func, **options)
        # Calling the task returns the function's coroutine: say so, as the function does.
        markcoroutinefunction(self)

    # The async twin of the sync methods: they return a coroutine of what those return.
    def schedule(  # type: ignore[override]
        self, *args: Any, eta: datetime.datetime | None = None, **kwargs: Any
    ) -> PendingSchedule[TaskModel]:
        """A coroutine that stores a call of this task and returns its ``TaskModel`` row."""
        return PendingSchedule(self, self._schedule_one((args, kwargs), eta))

    def schedule_many(  # type: ignore[override]
        self, calls: Iterable[Any], *, eta: datetime.datetime | None = None
    ) -> PendingSchedule[list[TaskModel]]:
        """A coroutine that stores many calls in one ``INSERT`` and returns their rows."""
        split = [_split_call(item) for item in calls]
        return PendingSchedule(self, sync_to_async(self._schedule_rows)(split, eta))

    async def _schedule_one(
        self, call: tuple[tuple[Any, ...], dict[str, Any]], eta: object
    ) -> TaskModel:
        return (await sync_to_async(self._schedule_rows)([call], eta))[0]


# ``schedule`` returns a coroutine; mark it so that ``async_to_sync(task.schedule)`` and
# ``inspect.iscoroutinefunction`` treat it as the coroutine function it behaves as.
markcoroutinefunction(AsyncTask.schedule)
markcoroutinefunction(AsyncTask.schedule_many)

_Row = TypeVar("_Row")


class PendingSchedule(Coroutine[Any, Any, _Row]):
    """What an async task's ``schedule()`` returns: a coroutine that stores the row and returns
    it. It goes wherever a coroutine goes (``await``, ``asyncio.run()``, ``create_task()``,
    ``gather()``, ``async_to_sync``): ``send``/``throw``/``close`` are the wrapped coroutine's.

    It is not a plain ``async def`` coroutine so that sync code that uses it as the row (as a
    sync task's) gets an error that says what to do, and dropping it warns that nothing was
    scheduled. It cannot refuse when created: ``asyncio.run(task.schedule(...))`` also calls
    ``schedule()`` in sync code and runs the coroutine afterwards.
    """

    def __init__(self, task: AsyncTask, coroutine: Coroutine[Any, Any, _Row]) -> None:
        self._task = task
        self._coroutine = coroutine
        self._started = False

    def __await__(self) -> Generator[Any, None, _Row]:
        self._started = True
        return self._coroutine.__await__()

    def send(self, value: Any) -> Any:
        self._started = True
        return self._coroutine.send(value)

    def throw(self, *args: Any) -> Any:
        self._started = True
        return self._coroutine.throw(*args)

    def close(self) -> None:
        self._started = True  # closed on purpose: nothing to warn about
        self._coroutine.close()

    def __repr__(self) -> str:
        return f"<PendingSchedule of {self._task.name}>"

    def __del__(self) -> None:
        if not self._started:
            self._coroutine.close()  # instead of the coroutine's own, vaguer warning
            warnings.warn(
                f"{self._task.name}.schedule() was never awaited: nothing was scheduled.",
                RuntimeWarning,
                stacklevel=2,
            )

    def __getattr__(self, name: str) -> Any:
        # Names a coroutine may be asked for (asyncio and inspect probe ``cr_code``,
        # ``__qualname__``, ...) are plain misses; anything else is sync code reading the row.
        if name.startswith(("_", "cr_", "gi_")):
            raise AttributeError(name)
        self.close()  # the error below says it all
        short = self._task.func.__name__
        raise AsyncContextError(
            f"{self._task.name} is an async task and nothing was scheduled: use "
            f"`await {short}.schedule(...)` in async code, or "
            f"`async_to_sync({short}.schedule)(...)` in sync code."
        )


_SEQUENCES = (tuple, list)


def _split_call(item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if (
        isinstance(item, _SEQUENCES)
        and len(item) == 2
        and isinstance(item[0], _SEQUENCES)
        and isinstance(item[1], dict)
    ):
        return tuple(item[0]), dict(item[1])
    if isinstance(item, _SEQUENCES):
        return tuple(item), {}
    raise InvalidTaskError(
        f"schedule_many() items are args tuples or (args, kwargs) pairs, not {item!r}."
    )
