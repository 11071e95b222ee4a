"""The Django Tasks framework: ``django.tasks`` on Django 6, or the ``django-tasks`` backport on
Django 5.2 (install ``django-firefly[dep14]``); whichever exists, the built-in one first. Its
names, and what Firefly needs of its task objects."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from importlib import import_module
from typing import Any

from firefly_tasks.exceptions import FireflyError
from firefly_tasks.modules import may_import

FRAMEWORK_PACKAGES = ("django.tasks", "django_tasks")


def _import_framework() -> tuple[str, dict[str, Any]]:
    """The framework's package name and its modules; the built-in one wins over the backport."""
    for package in FRAMEWORK_PACKAGES:
        try:
            root = import_module(package)
        except ModuleNotFoundError as exc:
            if exc.name is not None and package.startswith(exc.name):
                continue
            raise
        modules = {
            name: import_module(f"{package}.{name}")
            for name in ("base", "backends.base", "exceptions", "signals")
        }
        # The backport loads its system check (which calls every backend's check()) only from
        # its AppConfig; importing it here registers it even without "django_tasks" installed.
        import_module(f"{package}.checks")
        json_module = "django.utils.json" if package == "django.tasks" else f"{package}.utils"
        modules["json"] = import_module(json_module)
        modules["root"] = root
        return package, modules
    raise ImportError(
        "firefly_tasks.backends needs the Django Tasks framework: Django 6.0 or later, or on "
        'Django 5.2 the django-tasks backport (pip install "django-firefly[dep14]").'
    )


FRAMEWORK, _modules = _import_framework()
"""``"django.tasks"`` or ``"django_tasks"``: the framework this backend speaks."""

FrameworkTask: Any = _modules["base"].Task  # not Firefly's Task (firefly_tasks.task)
TaskContext: Any = _modules["base"].TaskContext
TaskError: Any = _modules["base"].TaskError
TaskResult: Any = _modules["base"].TaskResult
TaskResultStatus: Any = _modules["base"].TaskResultStatus
BaseTaskBackend: Any = _modules["backends.base"].BaseTaskBackend
task_backends: Any = _modules["root"].task_backends
task_enqueued: Any = _modules["signals"].task_enqueued
task_started: Any = _modules["signals"].task_started
task_finished: Any = _modules["signals"].task_finished
normalize_json: Any = _modules["json"].normalize_json

# Django 6 dropped the backport's "Error" suffix from these two names.
_exceptions = _modules["exceptions"]
InvalidTask: Any = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
InvalidTaskBackend: Any = (
    getattr(_exceptions, "InvalidTaskBackend", None) or _exceptions.InvalidTaskBackendError
)
TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist
TaskResultMismatch: Any = _exceptions.TaskResultMismatch


class WorkerLost(FireflyError):
    """In ``TaskResult.errors``: the consumer running an attempt died (no heartbeats)."""


class TaskCancelled(FireflyError):
    """In ``TaskResult.errors``: the task was cancelled (from the dashboard) before it ran."""


def to_json(value: Any, what: str = "Arguments") -> Any:
    """``value`` after the JSON round trip the framework specifies (tuples become lists...).

    Raises ``TypeError`` (or ``ValueError`` for NaN) when JSON cannot hold it.
    """
    try:
        return json.loads(json.dumps(normalize_json(value), allow_nan=False))
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from exc


def with_fields(task: Any, **changes: Any) -> Any:
    """A copy of a (frozen) ``Task`` with ``changes``, without validating it again."""
    clone = object.__new__(type(task))
    for field in dataclasses.fields(task):
        object.__setattr__(clone, field.name, changes.get(field.name, getattr(task, field.name)))
    return clone


def as_enqueued(task: Any, row: Any) -> Any:
    """The task with the options its row was enqueued with (``using()`` may have changed them)."""
    deferred = row.not_before > row.created
    return with_fields(
        task,
        priority=row.priority,
        queue_name=row.queue,
        backend=row.backend,
        run_after=row.not_before if deferred else None,
    )


def find_framework_task(path: str) -> Any | None:
    """The framework ``Task`` that ``path`` (``module.qualname``) names, or None.

    Only modules already imported, of installed apps, or in ``FIREFLY_TASK_MODULES`` are
    imported, as for Firefly's own tasks; and only a ``Task`` instance is ever returned.
    """
    parts = path.split(".")
    for end in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:end])
        module = sys.modules.get(module_name)
        if module is None:
            if not may_import(module_name):
                continue
            try:
                module = import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is not None and module_name.startswith(exc.name):
                    continue  # Not a module (a class path, or nothing): try its parent.
                raise
        # getattr_static: looking a stored name up must never run a property or __getattr__.
        found: Any = module
        for attribute in parts[end:]:
            found = inspect.getattr_static(found, attribute, None)
        return found if isinstance(found, FrameworkTask) else None
    return None
