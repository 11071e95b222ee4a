"""The registry of tasks: the only functions a consumer will ever run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any, Protocol

from django.utils.module_loading import autodiscover_modules

from firefly_tasks.conf import settings
from firefly_tasks.exceptions import UnknownTaskError
from firefly_tasks.modules import in_installed_app


class RegisteredTask(Protocol):
    """What the registry and the consumer use of a task: a
    :class:`~firefly_tasks.decorators.Task`, or the adapter of a DEP 14 framework task."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    atomic: bool

    @property
    def queue(self) -> str | None: ...


class TaskRegistry:
    """Task name (``module.qualname``) to its :class:`RegisteredTask`."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}
        self._lock = threading.Lock()
        # Finds the framework task a DEP 14 row names: set by the app's ready() when TASKS
        # uses FireflyBackend (firefly_tasks.dep14.running.resolve_framework_task).
        self.framework_resolver: Callable[[str, str], RegisteredTask] | None = None

    def register(self, task: RegisteredTask) -> None:
        with self._lock:
            self._tasks[task.name] = task

    def get(self, name: str) -> RegisteredTask | None:
        return self._tasks.get(name)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __iter__(self) -> Iterator[RegisteredTask]:
        return iter(list(self._tasks.values()))

    def known_names(self) -> set[str]:
        """The stored names that resolve here without importing anything: the registered
        tasks' names, and the old names ``FIREFLY_TASK_ALIASES`` maps to them."""
        return set(self._tasks) | set(settings.TASK_ALIASES)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def autodiscover(self) -> None:
        """Import every installed app's ``tasks`` module and ``FIREFLY_TASK_MODULES``."""
        autodiscover_modules("tasks")
        for module in settings.TASK_MODULES:
            import_module(module)

    def resolve(
        self, func_name: str, backend: str = "", aliases: dict[str, str] | None = None
    ) -> RegisteredTask:
        """The task to run for a stored ``func_name``, following ``FIREFLY_TASK_ALIASES``.

        A name not registered yet is looked up once more after importing its module, but only
        when that module belongs to an installed app (a task defined in ``views.py`` runs);
        importing registers decorated functions only, so nothing undecorated ever runs.

        ``backend`` is the row's ``backend`` column. A Firefly row (``""``) resolves only to a
        registered task, and a DEP 14 row (a ``TASKS`` alias) only to a Django Tasks
        framework task, through the resolver the app registers when ``TASKS`` uses
        ``FireflyBackend``. ``aliases``, when given, stands for ``FIREFLY_TASK_ALIASES`` (read
        once per batch by the consumer).
        """
        name = (settings.TASK_ALIASES if aliases is None else aliases).get(func_name, func_name)
        if backend:
            if self.framework_resolver is None:
                raise UnknownTaskError(
                    f"{name!r} was enqueued through the Django Tasks framework (backend "
                    f"{backend!r}), but TASKS names no FireflyBackend here, or the framework "
                    "is not installed."
                )
            return self.framework_resolver(name, backend)
        task = self._tasks.get(name)
        if task is None and self._import_owner(name):
            task = self._tasks.get(name)
        if task is None:
            hint = "" if name == func_name else f" (alias of {func_name!r})"
            raise UnknownTaskError(
                f"{name!r}{hint} is not a registered task. Decorate it with @task or @atask in "
                "an installed app's module, list its module in FIREFLY_TASK_MODULES, or map the "
                "old name to the new one in FIREFLY_TASK_ALIASES."
            )
        return task

    def _import_owner(self, name: str) -> bool:
        parts = name.split(".")
        for end in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:end])
            if not in_installed_app(module):
                return False
            try:
                import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is not None and module.startswith(exc.name):
                    continue  # `module` is a class path or does not exist: try its parent.
                raise
            return True
        return False


registry = TaskRegistry()
