"""Firefly as a backend of the Django Tasks framework (DEP 14).

``django.tasks`` on Django 6, or the ``django-tasks`` backport on Django 5.2 (install
``django-firefly[dep14]``): whichever exists, the built-in one first. ``enqueue()`` stores an
ordinary Firefly row, in the same table, run by the same ``consume_tasks`` and shown on the same
dashboard. Its ``backend`` column holds the ``TASKS`` alias it was enqueued through; the consumer
runs such a row only when its ``func_name`` names a framework ``Task`` and that alias is a
:class:`FireflyBackend` (:func:`resolve_framework_task`, called by the registry).

A ``TaskResult`` is read from the row and its attempts: its id is the row's primary key, its
``errors`` are the failed (or lost) attempts, its ``worker_ids`` the consumers that ran them. The
framework's ``task_started`` and ``task_finished`` signals are sent from Firefly's own signals by
the receivers at the end of this module.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import logging
import re
import sys
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from django.utils import timezone

from firefly_tasks import serialization
from firefly_tasks import signals as firefly_signals
from firefly_tasks.conf import settings
from firefly_tasks.context import current_task
from firefly_tasks.exceptions import FireflyError, InvalidTaskError, UnknownTaskError
from firefly_tasks.models import AttemptOutcome, TaskAttempt, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.modules import may_import
from firefly_tasks.options import QUEUE_NAME_MAX_LENGTH, resolve_eta, validate_queue

logger = logging.getLogger("firefly_tasks")

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

Task: Any = _modules["base"].Task
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


IN_PROCESS_WORKER = "in-process"
"""The worker id of attempts run outside a consumer (``run_pending_tasks``, run-immediately)."""

OPTION_DEFAULTS: dict[str, Any] = {
    "MAX_RETRIES": 0,
    "RETRY_DELAY": None,  # FIREFLY_RETRY_DELAY
    "RETRY_BACKOFF": False,
    "ATOMIC": True,
}

_STATUSES: dict[str, Any] = {
    TaskStatus.CREATED: TaskResultStatus.READY,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: TaskResultStatus.FAILED,
}
_FINISHED_AT: dict[str, str] = {
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}
_MAX_ID = 2**63 - 1
_FUNC_NAME_MAX_LENGTH = TaskModel._meta.get_field("func_name").max_length or 255


class FireflyBackend(BaseTaskBackend):
    """``TASKS = {"default": {"BACKEND": "firefly_tasks.backends.FireflyBackend"}}``.

    ``OPTIONS`` (all optional): ``MAX_RETRIES`` (default 0: one attempt, as the framework
    assumes), ``RETRY_DELAY`` in seconds (default ``FIREFLY_RETRY_DELAY``), ``RETRY_BACKOFF``
    (default False) and ``ATOMIC`` (default True: the task's writes commit with its result).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    # Options ----------------------------------------------------------------------------------

    def option_problems(self) -> list[str]:
        """What is wrong with ``OPTIONS``, one sentence each; reported by ``check()``."""
        options = self.options
        if not isinstance(options, dict):
            return [f"OPTIONS must be a dict, not {type(options).__name__}."]
        problems = [
            f"OPTIONS has an unknown key {key!r} (known: {', '.join(OPTION_DEFAULTS)})."
            for key in options
            if key not in OPTION_DEFAULTS
        ]
        for key in ("MAX_RETRIES", "RETRY_DELAY"):
            value = options.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"OPTIONS[{key!r}] must be a non-negative int, not {value!r}.")
        for key in ("RETRY_BACKOFF", "ATOMIC"):
            if not isinstance(options.get(key, False), bool):
                problems.append(f"OPTIONS[{key!r}] must be True or False.")
        return problems

    def _option(self, key: str) -> Any:
        problems = self.option_problems()
        if problems:
            raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {' '.join(problems)}")
        return self.options.get(key, OPTION_DEFAULTS[key])

    @property
    def atomic(self) -> bool:
        return bool(self._option("ATOMIC"))

    # Validation -------------------------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        run_after = task.run_after
        if run_after is not None and not isinstance(
            run_after, datetime.datetime | datetime.timedelta
        ):
            raise InvalidTask(f"run_after must be a datetime or a timedelta, not {run_after!r}.")
        if isinstance(run_after, datetime.timedelta):
            # Django documents a timedelta (relative to enqueue time); the base check only
            # knows datetimes, so it sees the task without it.
            super().validate_task(_with_fields(task, run_after=None))
        else:
            super().validate_task(task)
        try:
            validate_queue(task.queue_name, "queue_name")
        except InvalidTaskError as exc:
            raise InvalidTask(str(exc)) from exc
        if len(task.module_path) > _FUNC_NAME_MAX_LENGTH:
            raise InvalidTask(
                f"The task's path is longer than {_FUNC_NAME_MAX_LENGTH} characters: "
                f"{task.module_path!r}."
            )

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        messages: list[CheckMessage] = [
            Error(
                f"TASKS[{self.alias!r}]: {problem}",
                hint="See docs/dep14.md for FireflyBackend's OPTIONS.",
                id="firefly_tasks.E101",
            )
            for problem in self.option_problems()
        ]
        allowed = settings.QUEUES
        for queue in sorted(self.queues):
            if not isinstance(queue, str) or not queue or len(queue) > QUEUE_NAME_MAX_LENGTH:
                problem = f"is empty or longer than {QUEUE_NAME_MAX_LENGTH} characters"
            elif allowed is not None and queue not in allowed:
                problem = "is not in FIREFLY_QUEUES"
            else:
                continue
            messages.append(
                Error(
                    f"TASKS[{self.alias!r}] lists queue {queue!r}, which {problem}: every task "
                    "enqueued to it would be refused.",
                    hint="Make QUEUES and FIREFLY_QUEUES agree.",
                    id="firefly_tasks.E102",
                )
            )
        return messages

    # Enqueueing -------------------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Store a row for a consumer to run. Inside a transaction it is seen only on commit."""
        self.validate_task(task)
        call_args, call_kwargs = to_json([list(args), dict(kwargs)])
        retry_delay = self._option("RETRY_DELAY")
        now = timezone.now()
        row = TaskModel(
            func_name=task.module_path,
            queue=task.queue_name,
            priority=int(task.priority),
            created=now,
            not_before=_not_before(task.run_after, now),
            # The framework's contract is JSON, whatever FIREFLY_SERIALIZER says.
            serializer="json",
            params_data=serialization.dumps([call_args, call_kwargs], "json", what="arguments"),
            params_preview=serialization.call_preview(
                tuple(call_args), call_kwargs, settings.PREVIEW_LENGTH
            ),
            max_retries=self._option("MAX_RETRIES"),
            retry_delay=settings.RETRY_DELAY if retry_delay is None else retry_delay,
            retry_backoff=self._option("RETRY_BACKOFF"),
            backend=self.alias,
        )
        row.save(force_insert=True)
        firefly_signals.send(firefly_signals.task_scheduled, task=row)
        result = self._result(row, task, attempts=[])
        task_enqueued.send(type(self), task_result=result)
        if settings.RUN_IMMEDIATELY:
            from firefly_tasks.execution import run_immediately

            run_immediately(row)
            _copy_state(self.get_result(result.id), into=result)
        return result

    # Results ----------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        """The result of a row enqueued through this alias, read from the database now."""
        if (
            not isinstance(result_id, str)
            or not result_id.isascii()
            or not result_id.isdigit()
            or result_id != str(int(result_id))
            or int(result_id) > _MAX_ID
        ):
            raise TaskResultDoesNotExist(result_id)
        try:
            row = TaskModel.objects.select_related("worker").get(
                pk=int(result_id), backend=self.alias
            )
        except TaskModel.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_for_row(row)

    def result_for_row(self, row: TaskModel, task: Any = None) -> Any:
        """The ``TaskResult`` of a row of this backend, with its attempts read now."""
        if task is None:
            name = settings.TASK_ALIASES.get(row.func_name, row.func_name)
            found = find_framework_task(name)
            if found is None:
                raise TaskResultDoesNotExist(
                    f"{row.pk}: {name!r} is not a Django Tasks framework task that this process "
                    "can import."
                )
            task = _as_enqueued(found, row)
        attempts = list(TaskAttempt.objects.filter(task_id=row.pk).order_by("number"))
        return self._result(row, task, attempts)

    def _result(self, row: TaskModel, task: Any, attempts: list[TaskAttempt]) -> Any:
        worker_ids = [attempt.worker_name or IN_PROCESS_WORKER for attempt in attempts]
        running = row.status == TaskStatus.RUNNING
        if running:
            worker_ids.append(_worker_name(row))
        errors = [error for attempt in attempts if (error := _task_error(attempt)) is not None]
        if row.status == TaskStatus.CANCELLED:
            errors.append(
                TaskError(
                    exception_class_path=_class_path(TaskCancelled),
                    traceback=f"{TaskCancelled.__name__}: cancelled before it ran",
                )
            )
        finished_field = _FINISHED_AT.get(row.status)
        first_start = attempts[0].started if attempts else None
        last_start = attempts[-1].started if attempts else None
        args, kwargs = serialization.loads(row.params_data, row.serializer)
        result = TaskResult(
            task=task,
            id=str(row.pk),
            status=_STATUSES[row.status],
            enqueued_at=row.created,
            started_at=first_start or (row.started if running else None),
            finished_at=getattr(row, finished_field) if finished_field else None,
            last_attempted_at=row.started if running else last_start,
            args=args,
            kwargs=kwargs,
            backend=row.backend,
            errors=errors,
            worker_ids=worker_ids,
        )
        if row.status == TaskStatus.COMPLETED:
            object.__setattr__(result, "_return_value", row.returned)
        return result


def firefly_backend(alias: str) -> FireflyBackend | None:
    """The ``TASKS`` backend called ``alias`` if it is a :class:`FireflyBackend`."""
    if not alias:
        return None
    try:
        backend = task_backends[alias]
    except ImproperlyConfigured:  # InvalidTaskBackend: no such alias, or it cannot load.
        return None
    return backend if isinstance(backend, FireflyBackend) else None


# Running ------------------------------------------------------------------------------------


class FrameworkTaskAdapter:
    """What the consumer runs for a DEP 14 row: it has what the executor uses of a Firefly
    task (``func``, ``is_async``, ``atomic``, ``name``). ``func`` passes the ``TaskContext``
    when the task takes it, and turns the return value into JSON as the framework requires.
    """

    def __init__(self, task: Any, backend: FireflyBackend | None) -> None:
        self.task = task
        # None: resolved without the row's backend column, so each run checks it instead.
        self.backend = backend
        self.name: str = task.module_path
        self.is_async = inspect.iscoroutinefunction(task.func)
        options_from = backend or firefly_backend(task.backend)
        self.atomic = options_from.atomic if options_from is not None else True
        self.func = self._arun if self.is_async else self._run

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        row, backend = self._running_row()
        if self.task.takes_context:
            args = (self._context(row, backend), *args)
        return to_json(self.task.func(*args, **kwargs), what="The task's return value")

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        row, backend = self._running_row()
        if self.task.takes_context:
            args = (await sync_to_async(self._context)(row, backend), *args)
        return to_json(await self.task.func(*args, **kwargs), what="The task's return value")

    def _running_row(self) -> tuple[TaskModel | None, FireflyBackend | None]:
        running = current_task()
        row = running.row if running is not None else None
        if self.backend is not None:
            return row, self.backend
        backend = firefly_backend(row.backend) if row is not None else None
        if backend is None:
            alias = row.backend if row is not None else None
            raise UnknownTaskError(_not_a_firefly_alias(self.name, alias))
        return row, backend

    def _context(self, row: TaskModel | None, backend: FireflyBackend | None) -> Any:
        if row is None or backend is None:
            raise RuntimeError(f"{self.name} takes a context, which only a consumer can give it.")
        return TaskContext(task_result=backend.result_for_row(row, _as_enqueued(self.task, row)))


def resolve_framework_task(name: str, alias: str | None) -> FrameworkTaskAdapter:
    """The runnable for a DEP 14 row: ``name`` must be a framework ``Task`` and ``alias`` (the
    row's ``backend`` column) a :class:`FireflyBackend`; else :class:`UnknownTaskError`.

    With ``alias=None`` (a caller that does not pass the row's column) the alias is checked from
    the running row when the task is called.
    """
    task = find_framework_task(name)
    if task is None:
        raise UnknownTaskError(
            f"{name!r} is not a Django Tasks framework task (a function decorated with "
            f"{FRAMEWORK}.task in a module of an installed app or of FIREFLY_TASK_MODULES)."
        )
    backend = None
    if alias is not None:
        backend = firefly_backend(alias)
        if backend is None:
            raise UnknownTaskError(_not_a_firefly_alias(name, alias))
    return FrameworkTaskAdapter(task, backend)


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
        return found if isinstance(found, Task) else None
    return None


def _not_a_firefly_alias(name: str, alias: str | None) -> str:
    return (
        f"{name!r} is a Django Tasks framework task, but the row's backend {alias!r} is not a "
        "FireflyBackend alias in TASKS, so Firefly does not run it."
    )


# Helpers ------------------------------------------------------------------------------------


def to_json(value: Any, what: str = "Arguments") -> Any:
    """``value`` after the JSON round trip the framework specifies (tuples become lists...).

    Raises ``TypeError`` (or ``ValueError`` for NaN) when JSON cannot hold it.
    """
    try:
        return json.loads(json.dumps(normalize_json(value), allow_nan=False))
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from exc


def _not_before(run_after: Any, now: datetime.datetime) -> datetime.datetime:
    if isinstance(run_after, datetime.timedelta):
        return now + run_after
    return resolve_eta(run_after, now)


def _with_fields(task: Any, **changes: Any) -> Any:
    """A copy of a (frozen) ``Task`` with ``changes``, without validating it again."""
    clone = object.__new__(type(task))
    for field in dataclasses.fields(task):
        object.__setattr__(clone, field.name, changes.get(field.name, getattr(task, field.name)))
    return clone


def _as_enqueued(task: Any, row: TaskModel) -> Any:
    """The task with the options its row was enqueued with (``using()`` may have changed them)."""
    deferred = row.not_before > row.created
    return _with_fields(
        task,
        priority=row.priority,
        queue_name=row.queue,
        backend=row.backend,
        run_after=row.not_before if deferred else None,
    )


def _copy_state(source: Any, into: Any) -> None:
    for field in dataclasses.fields(source):
        if field.name not in ("task", "id", "args", "kwargs", "backend"):
            object.__setattr__(into, field.name, getattr(source, field.name))


def _worker_name(row: TaskModel) -> str:
    if row.worker_id is None:
        return IN_PROCESS_WORKER
    try:
        worker = row.worker
    except WorkerModel.DoesNotExist:
        worker = None
    return worker.name if worker is not None else str(row.worker_id)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _task_error(attempt: TaskAttempt) -> Any | None:
    if attempt.outcome == AttemptOutcome.FAILED:
        return TaskError(
            exception_class_path=exception_class_path(attempt.error, attempt.traceback),
            traceback=attempt.traceback or attempt.error,
        )
    if attempt.outcome == AttemptOutcome.LOST:
        return TaskError(exception_class_path=_class_path(WorkerLost), traceback=attempt.error)
    return None


# The line of a formatted traceback that names the exception: "module.Class: message". Lines
# of exception groups are prefixed with "| ".
_EXCEPTION_LINE = re.compile(r"^(?:\s*\| )?((?:[A-Za-z_]\w*\.)*)([A-Za-z_]\w*)(?::\s|:$|$)")


def exception_class_path(error: str, traceback: str) -> str:
    """The dotted path of the exception class of a failed attempt.

    Attempts store ``"Name: message"`` and the formatted traceback, whose last exception line
    names the class with its module (none for builtins).
    """
    name = error.partition(":")[0].strip()
    fallback = None
    for line in reversed(traceback.splitlines()):
        match = _EXCEPTION_LINE.match(line)
        if match is None:
            continue
        module, found = match.group(1).rstrip("."), match.group(2)
        path = f"{module or 'builtins'}.{found}"
        if found == name:
            return path
        fallback = fallback or path
    return fallback or "builtins.Exception"


# Signals --------------------------------------------------------------------------------------
# Firefly sends its own signals for every row; rows of a FireflyBackend alias also get the
# framework's, with sender=the backend class and task_result read from the database.


def _announce(signal: Any, row: TaskModel) -> None:
    backend = firefly_backend(row.backend)
    if backend is None:
        return
    fresh = TaskModel.objects.select_related("worker").filter(pk=row.pk).first()
    if fresh is None:
        return
    try:
        result = backend.result_for_row(fresh)
    except TaskResultDoesNotExist as exc:
        logger.info("framework signal not sent id=%s reason=%s", row.pk, exc)
        return
    signal.send(type(backend), task_result=result)


@receiver(firefly_signals.task_started, dispatch_uid="firefly_tasks.backends.started")
def _send_task_started(sender: Any, task: TaskModel, **kwargs: Any) -> None:
    _announce(task_started, task)


@receiver(firefly_signals.task_completed, dispatch_uid="firefly_tasks.backends.completed")
def _send_task_finished_on_completion(sender: Any, task: TaskModel, **kwargs: Any) -> None:
    _announce(task_finished, task)


@receiver(firefly_signals.task_failed, dispatch_uid="firefly_tasks.backends.failed")
def _send_task_finished_on_failure(
    sender: Any, task: TaskModel, will_retry: bool = False, **kwargs: Any
) -> None:
    if not will_retry:
        _announce(task_finished, task)
