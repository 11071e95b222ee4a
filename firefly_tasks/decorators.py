"""``@task`` and ``@atask``: turn a function into something that can be scheduled."""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import warnings
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.utils import timezone

from firefly_tasks import serialization, signals
from firefly_tasks.conf import settings
from firefly_tasks.exceptions import AsyncContextError, InvalidTaskError
from firefly_tasks.options import (
    resolve_eta,
    validate_non_negative,
    validate_priority,
    validate_queue,
)
from firefly_tasks.registry import registry

if TYPE_CHECKING:
    from firefly_tasks.models import TaskModel


@functools.cache
def _unsaved_row() -> dict[str, Any]:
    """The values of a new ``TaskModel`` row by attribute name, in field order: each field's
    default where it is a constant. ``build_row()`` sets the rest (``created``,
    ``not_before``: their defaults are calls)."""
    from firefly_tasks.models import TaskModel

    return {
        field.attname: None
        if field.has_default() and callable(field.default)
        else field.get_default()
        for field in TaskModel._meta.concrete_fields
    }


class Task:
    """A registered sync task. Calling it runs the function inline; ``schedule()`` queues it."""

    is_async = False

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        queue: str | None = None,
        max_retries: int | None = None,
        retry_delay: int | None = None,
        priority: int = 0,
        atomic: bool = True,
        retry_backoff: bool = False,
    ) -> None:
        if queue is not None:
            validate_queue(queue)
        validate_non_negative("max_retries", max_retries)
        validate_non_negative("retry_delay", retry_delay)
        self.func = func
        self.queue = queue
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.priority = validate_priority(priority)
        self.atomic = bool(atomic)
        self.retry_backoff = bool(retry_backoff)
        self.name = f"{func.__module__}.{func.__qualname__}"
        functools.update_wrapper(self, func)
        registry.register(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

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

    def _check_sync_context(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise AsyncContextError(
            f"{self.name} is a sync task scheduled from async code. Use "
            f"`await sync_to_async({self.func.__name__}.schedule)(...)`, or define it with @atask."
        )

    def build_row(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        eta: object,
        now: datetime.datetime,
    ) -> TaskModel:
        """An unsaved row for one call, with every option resolved and every input checked."""
        from firefly_tasks.models import TaskModel

        serializer = settings.SERIALIZER
        values = dict(_unsaved_row())
        values.update(
            func_name=self.name,
            queue=validate_queue(self.queue or settings.DEFAULT_QUEUE),
            priority=self.priority,
            created=now,
            not_before=resolve_eta(eta, now),
            serializer=serializer,
            params_data=serialization.dumps((list(args), kwargs), serializer, what="arguments"),
            params_preview=serialization.call_preview(args, kwargs, settings.PREVIEW_LENGTH),
            max_retries=settings.MAX_RETRIES if self.max_retries is None else self.max_retries,
            retry_delay=settings.RETRY_DELAY if self.retry_delay is None else self.retry_delay,
            retry_backoff=self.retry_backoff,
        )
        # Positional, in field order: Django's fast way to build an instance.
        return TaskModel(*values.values())  # type: ignore[misc]

    def _build_rows(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], eta: object, now: Any
    ) -> list[TaskModel]:
        """Rows for many calls: options are resolved and checked once, on the first call."""
        from firefly_tasks.models import TaskModel

        if not calls:
            return []
        first = self.build_row(*calls[0], eta, now)
        if len(calls) == 1:
            return [first]
        fields = list(_unsaved_row())
        values = [getattr(first, name) for name in fields]
        params_at, preview_at = fields.index("params_data"), fields.index("params_preview")
        serializer, length = first.serializer, settings.PREVIEW_LENGTH
        rows = [first]
        for args, kwargs in calls[1:]:
            values[params_at] = serialization.dumps((list(args), kwargs), serializer, "arguments")
            values[preview_at] = serialization.call_preview(args, kwargs, length)
            rows.append(TaskModel(*values))  # type: ignore[misc]
        return rows

    def _schedule_rows(
        self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]], eta: object
    ) -> list[TaskModel]:
        from firefly_tasks.models import TaskModel

        rows = self._build_rows(calls, eta, timezone.now())
        if not rows:
            return rows
        rows = TaskModel.objects.insert_calls(rows)
        for row in rows:
            signals.send(signals.task_scheduled, task=row)
        if settings.RUN_IMMEDIATELY:
            from firefly_tasks.execution import run_immediately

            for row in rows:
                run_immediately(row)
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


def task(
    queue: str | None = None,
    max_retries: int | None = None,
    retry_delay: int | None = None,
    priority: int = 0,
    atomic: bool = True,
    retry_backoff: bool = False,
) -> Callable[[Callable[..., Any]], Task]:
    """Register a sync function as a task. Options left as ``None`` come from settings."""

    def decorator(func: Callable[..., Any]) -> Task:
        if inspect.iscoroutinefunction(func):
            raise InvalidTaskError(f"{func.__qualname__} is async: decorate it with @atask.")
        return Task(
            func,
            queue=queue,
            max_retries=max_retries,
            retry_delay=retry_delay,
            priority=priority,
            atomic=atomic,
            retry_backoff=retry_backoff,
        )

    _reject_bare_use(queue, "task")
    return decorator


def atask(
    queue: str | None = None,
    max_retries: int | None = None,
    retry_delay: int | None = None,
    priority: int = 0,
    atomic: bool = True,
    retry_backoff: bool = False,
) -> Callable[[Callable[..., Any]], AsyncTask]:
    """Register an ``async def`` function as a task."""

    def decorator(func: Callable[..., Any]) -> AsyncTask:
        if not inspect.iscoroutinefunction(func):
            raise InvalidTaskError(f"{func.__qualname__} is not async: decorate it with @task.")
        return AsyncTask(
            func,
            queue=queue,
            max_retries=max_retries,
            retry_delay=retry_delay,
            priority=priority,
            atomic=atomic,
            retry_backoff=retry_backoff,
        )

    _reject_bare_use(queue, "atask")
    return decorator


def _reject_bare_use(queue: object, name: str) -> None:
    if callable(queue):
        raise InvalidTaskError(f"Use @{name}() with parentheses, as in django_firefly_tasks.")
