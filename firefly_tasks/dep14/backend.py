"""Firefly as a backend of the Django Tasks framework (DEP 14).

``enqueue()`` stores an ordinary Firefly row, built and checked as ``@task`` builds its own
(``firefly_tasks.calls``), in the same table, run by the same ``consume_tasks`` and shown on
the same dashboard. Its ``backend`` column holds the ``TASKS`` alias it was enqueued through;
the consumer runs such a row only when its ``func_name`` names a framework ``Task`` and that
alias is a :class:`FireflyBackend` (``firefly_tasks.dep14.running``). Results are read from the
row and its attempts (``firefly_tasks.dep14.results``).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from firefly_tasks import calls, waiting
from firefly_tasks.conf import settings
from firefly_tasks.dep14 import announce
from firefly_tasks.dep14.framework import (
    FRAMEWORK as FRAMEWORK,
)
from firefly_tasks.dep14.framework import (
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    as_enqueued,
    find_framework_task,
    task_backends,
    task_enqueued,
    to_json,
    with_fields,
)
from firefly_tasks.dep14.framework import TaskCancelled as TaskCancelled
from firefly_tasks.dep14.framework import WorkerLost as WorkerLost
from firefly_tasks.dep14.results import IN_PROCESS_WORKER as IN_PROCESS_WORKER
from firefly_tasks.dep14.results import build_result, copy_state
from firefly_tasks.dep14.results import exception_class_path as exception_class_path
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskAttempt, TaskModel
from firefly_tasks.options import TaskOptions, validate_queue, validate_timeout

OPTION_DEFAULTS: dict[str, Any] = {
    "MAX_RETRIES": 0,
    "RETRY_DELAY": None,  # FIREFLY_RETRY_DELAY
    "RETRY_BACKOFF": False,
    "ATOMIC": True,
    "TIMEOUT": None,  # FIREFLY_TASK_TIMEOUT
}

_MAX_ID = 2**63 - 1
_FUNC_NAME_MAX_LENGTH = TaskModel._meta.get_field("func_name").max_length or 255


class FireflyBackend(BaseTaskBackend):  # type: ignore[misc]  # the framework's, found at import
    """``TASKS = {"default": {"BACKEND": "firefly_tasks.backends.FireflyBackend"}}``.

    ``OPTIONS`` (all optional): ``MAX_RETRIES`` (default 0: one attempt, as the framework
    assumes), ``RETRY_DELAY`` in seconds (default ``FIREFLY_RETRY_DELAY``), ``RETRY_BACKOFF``
    (default False), ``ATOMIC`` (default True: the task's writes commit with its result) and
    ``TIMEOUT`` in seconds (default ``FIREFLY_TASK_TIMEOUT``: docs/timeouts.md).
    """

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # From the first FireflyBackend on, this process sends the framework's signals for
        # its rows; a project that never uses one pays nothing per task.
        announce.connect(firefly_backend)

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
        timeout = options.get("TIMEOUT")
        try:
            validate_timeout(timeout)
        except InvalidTaskError as exc:
            problems.append(f"OPTIONS['TIMEOUT']: {exc}")
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
            super().validate_task(with_fields(task, run_after=None))
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
        for queue in sorted(self.queues, key=str):
            try:
                validate_queue(queue)
            except InvalidTaskError as exc:
                messages.append(
                    Error(
                        f"TASKS[{self.alias!r}] lists queue {queue!r}: {exc} Every task "
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
        built = [self.build_row(task, args, kwargs, timezone.now())]
        (row,) = calls.store(built)
        result = build_result(row, task, attempts=[])
        task_enqueued.send(type(self), task_result=result)
        if settings.RUN_IMMEDIATELY:
            calls.run_if_immediate([row])
            copy_state(self.get_result(result.id), into=result)
        return result

    def build_row(self, task: Any, args: Any, kwargs: Any, now: datetime.datetime) -> Any:
        """The unsaved row of one call of the framework ``task`` (checked already), as
        ``enqueue()`` stores it; periodic schedules store theirs the same way."""
        call_args, call_kwargs = to_json([list(args), dict(kwargs)])
        run_after = task.run_after
        if isinstance(run_after, datetime.timedelta):
            run_after = now + run_after
        try:
            options = TaskOptions().replace(
                queue=task.queue_name,
                priority=int(task.priority),
                eta=run_after,
                max_retries=self._option("MAX_RETRIES"),
                retry_delay=self._option("RETRY_DELAY"),
                retry_backoff=self._option("RETRY_BACKOFF"),
                timeout=self._option("TIMEOUT"),
            )
            # The framework's contract is JSON, whatever FIREFLY_SERIALIZER says.
            (row,) = calls.build_rows(
                task.module_path,
                options,
                [(tuple(call_args), call_kwargs)],
                now=now,
                serializer="json",
                backend=self.alias,
            )
        except InvalidTaskError as exc:
            raise InvalidTask(str(exc)) from exc
        return row

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

    def wait_result(self, result: Any, timeout: float = 10.0) -> Any:
        """Wait until the task of ``result`` (a ``TaskResult`` of this backend, or its id)
        finished, up to ``timeout`` seconds, and return its result read again: a ``TaskResult``
        whose ``return_value`` or ``errors`` say how it ended. ``ResultTimeout``
        (``firefly_tasks.waiting``) past the timeout; refused inside a task, as
        ``TaskModel.wait_result()`` is (docs/workflows.md)."""
        result_id = str(getattr(result, "id", result))
        self.get_result(result_id)  # TaskResultDoesNotExist for another alias's, or none
        waiting.wait_result(TaskModel.objects.get(pk=int(result_id)), timeout)
        found = self.get_result(result_id)
        if not hasattr(result, "id"):
            return found
        copy_state(found, result)  # the caller's object follows, as refresh() does
        return result

    async def await_result(self, result: Any, timeout: float = 10.0) -> Any:
        """:meth:`wait_result` for async code (``firefly_tasks.waiting.in_own_thread``)."""
        return await waiting.in_own_thread(self.wait_result, result, timeout)

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
            task = as_enqueued(found, row)
        attempts = list(TaskAttempt.objects.filter(task_id=row.pk).order_by("number"))
        return build_result(row, task, attempts)


def firefly_backend(alias: str) -> FireflyBackend | None:
    """The ``TASKS`` backend called ``alias`` if it is a :class:`FireflyBackend`."""
    if not alias:
        return None
    try:
        backend = task_backends[alias]
    except ImproperlyConfigured:  # InvalidTaskBackend: no such alias, or it cannot load.
        return None
    return backend if isinstance(backend, FireflyBackend) else None
