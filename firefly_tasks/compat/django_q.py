"""django-q's task functions over Firefly (docs/migrating.md, "From django-q"): ``async_task``,
``result``, ``fetch``, and the group functions, whose ``group`` is Firefly's ``label``.

What differs: a task id is Firefly's integer id; ``func`` and ``hook`` must be registered
Firefly tasks (or their names), never any importable function; a hook receives the finished
task's id, not its row; ``wait`` is in milliseconds (-1: without end), as in django-q.
"""

from __future__ import annotations

from typing import Any

from firefly_tasks import labels
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskModel
from firefly_tasks.registry import registry
from firefly_tasks.waiting import ResultTimeout

# "-1 for indefinite": a wait of a year.
FOREVER = 365 * 24 * 3600.0


def async_task(
    func: Any,
    *args: Any,
    hook: Any = None,
    group: str | None = None,
    timeout: float | None = None,
    q_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> int:
    """Schedule ``func`` (a registered task or its name) with ``args`` and ``kwargs``; return
    the task's id. ``q_options`` overrides the option keywords, as in django-q."""
    options = {"hook": hook, "group": group, "timeout": timeout, **(q_options or {})}
    task: Any = registry.get(func) if isinstance(func, str) else func
    if task is None or getattr(task, "name", None) not in registry:
        raise InvalidTaskError(f"{func!r} is not a registered task: decorate it with @task.")
    chosen: dict[str, Any] = {}
    if options["hook"] is not None:
        chosen["on_success"] = chosen["on_failure"] = options["hook"]
    if options["group"] is not None:
        chosen["label"] = options["group"]
    if options["timeout"] is not None:
        chosen["timeout"] = options["timeout"]
    row = (
        task.using(**chosen).schedule(*args, **kwargs) if chosen else task.schedule(*args, **kwargs)
    )
    return int(row.pk)


def fetch(task_id: int | str, wait: int = 0) -> TaskModel | None:
    """The task's row once it finished (waiting up to ``wait`` ms), else None."""
    row: TaskModel | None = TaskModel.objects.filter(pk=int(task_id)).first()
    if row is None:
        return None
    try:
        row.wait_result(timeout=_seconds(wait))
    except ResultTimeout:
        return None
    return row


def result(task_id: int | str, wait: int = 0) -> Any:
    """The task's result once it completed (waiting up to ``wait`` ms), else None."""
    row = fetch(task_id, wait)
    return row.returned if row is not None and row.status == "completed" else None


def result_group(
    group_id: str, failures: bool = False, wait: int = 0, count: int | None = None
) -> list[Any] | None:
    """The results of the group's completed tasks (``failures``: every finished one's), or
    None when there are none yet."""
    found = labels.results(group_id, failures=failures, wait=_seconds(wait), count=count)
    return found or None


def fetch_group(
    group_id: str, failures: bool = True, wait: int = 0, count: int | None = None
) -> list[TaskModel] | None:
    """The group's finished tasks (without ``failures``: the completed ones), or None."""
    found = labels.finished(group_id, failures=failures, wait=_seconds(wait), count=count)
    return found or None


def count_group(group_id: str, failures: bool = False) -> int:
    """How many of the group's tasks completed (``failures``: failed or were cancelled)."""
    return labels.count(group_id, failures=failures)


def delete_group(group_id: str, tasks: bool = False) -> int:
    """Delete the group's finished tasks; how many were deleted. (Firefly keeps a task's
    result on its row: with or without ``tasks``, the finished tasks go.)"""
    return labels.delete(group_id)


def _seconds(wait: int) -> float:
    return FOREVER if wait < 0 else wait / 1000
