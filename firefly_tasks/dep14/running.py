"""Running a DEP 14 row: the framework ``Task`` it names, behind what the consumer uses of a
Firefly task. Registered with the task registry by the app's ``ready()``."""

from __future__ import annotations

import inspect
from typing import Any

from asgiref.sync import sync_to_async

from firefly_tasks.context import current_task
from firefly_tasks.dep14.backend import FireflyBackend, firefly_backend
from firefly_tasks.dep14.framework import (
    FRAMEWORK,
    TaskContext,
    as_enqueued,
    find_framework_task,
    to_json,
)
from firefly_tasks.exceptions import UnknownTaskError
from firefly_tasks.models import TaskModel


class FrameworkTaskAdapter:
    """What the consumer runs for a DEP 14 row: it has what the execution path uses of a
    Firefly task (``func``, ``is_async``, ``atomic``, ``name``). ``func`` passes the
    ``TaskContext`` when the task takes it, and turns the return value into JSON as the
    framework requires.
    """

    queue = None

    def __init__(self, task: Any, backend: FireflyBackend) -> None:
        self.task = task
        self.backend = backend
        self.name: str = task.module_path
        self.is_async = inspect.iscoroutinefunction(task.func)
        self.atomic = backend.atomic
        self.func = self._arun if self.is_async else self._run

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        if self.task.takes_context:
            args = (self._context(), *args)
        return to_json(self.task.func(*args, **kwargs), what="The task's return value")

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        if self.task.takes_context:
            args = (await sync_to_async(self._context)(), *args)
        return to_json(await self.task.func(*args, **kwargs), what="The task's return value")

    def _context(self) -> Any:
        running = current_task()
        if running is None:
            raise RuntimeError(f"{self.name} takes a context, which only a consumer can give it.")
        row: TaskModel = running.row
        result = self.backend.result_for_row(row, as_enqueued(self.task, row))
        return TaskContext(task_result=result)


def resolve_framework_task(name: str, alias: str) -> FrameworkTaskAdapter:
    """The runnable for a DEP 14 row: ``name`` must be a framework ``Task`` and ``alias`` (the
    row's ``backend`` column) a :class:`FireflyBackend`; else :class:`UnknownTaskError`."""
    task = find_framework_task(name)
    if task is None:
        raise UnknownTaskError(
            f"{name!r} is not a Django Tasks framework task (a function decorated with "
            f"{FRAMEWORK}.task in a module of an installed app or of FIREFLY_TASK_MODULES)."
        )
    backend = firefly_backend(alias)
    if backend is None:
        raise UnknownTaskError(
            f"{name!r} is a Django Tasks framework task, but the row's backend {alias!r} is "
            "not a FireflyBackend alias in TASKS, so Firefly does not run it."
        )
    return FrameworkTaskAdapter(task, backend)
