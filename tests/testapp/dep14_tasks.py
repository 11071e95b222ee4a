"""Django Tasks framework (DEP 14) tasks, written as a project would: only the framework's API.

Imported with the ``TASKS`` of ``tests.dep14.TASKS`` (the test module and its consumer processes
set it), never by autodiscovery: the module is not called ``tasks``.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.dep14 import framework
from tests.dep14 import signals as framework_signals
from tests.testapp.models import Note

if TYPE_CHECKING:
    # django-stubs types the framework as Django 6's django.tasks; the backport's API matches.
    from django.tasks import TaskContext, TaskResult, task
else:
    task = framework.task


class CustomError(Exception):
    """Raised by ``raise_custom``: its path must survive into ``TaskResult.errors``."""


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def echo(value: object) -> object:
    return value


@task()
def fail(message: str) -> None:
    raise ValueError(message)


@task()
def raise_custom() -> None:
    raise CustomError("custom failure")


@task()
def return_datetime() -> datetime.datetime:
    return datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


@task()
def write_note(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task()
def spin(seconds: float) -> str:
    """Pure Python for ``seconds``: the ``timed`` alias stops it after one."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"


@task(priority=50)
def write_note_urgent(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task(queue_name="other")
def write_note_other_queue(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task()
def wait_for_file(path: str, timeout: float = 30) -> str:
    """Runs until ``path`` exists, so a test can watch it running from another process."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)
    return "released"


@task()
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def describe_context(context: TaskContext[Any, Any], label: str) -> dict[str, object]:
    result = context.task_result
    return {
        "label": label,
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "worker_ids": list(result.worker_ids),
        "backend": result.backend,
    }


@task(takes_context=True)
async def async_describe_context(context: TaskContext[Any, Any]) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"attempt": context.attempt, "id": context.task_result.id}


@task(takes_context=True, backend="retrying")
def fail_on_first_attempt(context: TaskContext[Any, Any]) -> int:
    attempt = context.attempt
    if attempt == 1:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


@task(backend="retrying")
def always_fail_with_retries() -> None:
    raise RuntimeError("always")


@task(backend="non_atomic")
def write_note_then_fail(text: str) -> None:
    Note.objects.create(text=text)
    raise RuntimeError("after the write")


@task()
def write_note_then_fail_atomic(text: str) -> None:
    Note.objects.create(text=text)
    raise RuntimeError("after the write")


@task(backend="immediate")
def on_immediate_backend() -> str:
    return "ran"


def not_a_task() -> str:
    """A plain function: a stored row naming it must never run."""
    return "ran"


def _log_signal(name: str) -> Callable[..., None]:
    """A receiver that appends ``name sender id status`` to $FIREFLY_TEST_SIGNAL_LOG, so a test
    can see the framework's signals that a consumer process sent."""

    def receiver(sender: type, task_result: TaskResult[Any, Any], **kwargs: object) -> None:
        path = os.environ.get("FIREFLY_TEST_SIGNAL_LOG")
        if path:
            line = f"{name} {sender.__name__} {task_result.id} {task_result.status}\n"
            with open(path, "a") as log:
                log.write(line)

    return receiver


for _name in ("task_started", "task_finished"):
    getattr(framework_signals, _name).connect(
        _log_signal(_name), weak=False, dispatch_uid=f"log-{_name}"
    )


class _Trap:
    @property
    def sprung(self) -> None:
        raise AssertionError("looking up a stored task name ran a property")


trap = _Trap()
