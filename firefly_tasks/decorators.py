"""``@task`` and ``@atask``: turn a function into a registered task
(:class:`~firefly_tasks.task.Task`), as in django_firefly_tasks."""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.task import AsyncTask, Task

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncTask", "Task", "atask", "task"]


class DecoratorOptions(TypedDict, total=False):
    """The options of ``@task()`` and ``@atask()`` after ``queue``: see docs/tasks.md."""

    max_retries: int | None
    retry_delay: int | None
    priority: int
    atomic: bool
    retry_backoff: bool
    timeout: float | None
    unique: bool
    unique_key: str | Callable[..., str] | None
    unique_for: datetime.timedelta | float | None
    on_duplicate: Literal["return", "raise"]
    concurrency_limit: int | None
    concurrency_key: str | Callable[..., str] | None
    rate_limit: str | None
    rate_key: str | Callable[..., str] | None
    tags: list[str] | tuple[str, ...]
    on_success: Any
    on_failure: Any
    label: str | None


def task(
    queue: str | None = None, **options: Unpack[DecoratorOptions]
) -> Callable[[Callable[..., Any]], Task]:
    """Register a sync function as a task. Options left as ``None`` come from settings."""
    return _decorator(Task, "task", queue, dict(options))


def atask(
    queue: str | None = None, **options: Unpack[DecoratorOptions]
) -> Callable[[Callable[..., Any]], AsyncTask]:
    """Register an ``async def`` function as a task."""
    return _decorator(AsyncTask, "atask", queue, dict(options))


_T = TypeVar("_T", bound=Task)


def _decorator(
    cls: type[_T], name: str, queue: object, options: dict[str, Any]
) -> Callable[[Callable[..., Any]], _T]:
    if callable(queue):
        raise InvalidTaskError(f"Use @{name}() with parentheses, as in django_firefly_tasks.")
    if queue is not None:
        options["queue"] = queue

    def decorator(func: Callable[..., Any]) -> _T:
        if inspect.iscoroutinefunction(func) != cls.is_async:
            other = "atask" if cls.is_async is False else "task"
            kind = "async" if cls.is_async is False else "not async"
            raise InvalidTaskError(f"{func.__qualname__} is {kind}: decorate it with @{other}.")
        return cls(func, **options)

    return decorator
