"""Helpers documented by django_firefly_tasks."""

from __future__ import annotations

from typing import Any

from firefly_tasks.models import TaskModel


def task_as_dict(task: TaskModel) -> dict[str, Any]:
    """The task's metadata as a dict, ready for ``JsonResponse`` (as in the seed's quick start)."""
    return {
        "id": task.pk,
        "func_name": task.func_name,
        "queue": task.queue,
        "status": task.status,
        "priority": task.priority,
        "not_before": task.not_before,
        "created": task.created,
        "started": task.started,
        "completed": task.completed,
        "failed": task.failed,
        "cancelled": task.cancelled,
        "retry_attempts": task.retry_attempts,
        "retry_delay": f"{task.retry_delay}s",
        "max_retries": task.max_retries,
        "error": task.error,
    }
