"""What a task's page offers, by its state and the operator's permissions: the buttons above
its fields, each one an action of the task list (``actions.py``) for this task alone."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from firefly_admin import triage
from firefly_tasks.states import TaskStatus


def offered_actions(
    model_admin: Any, request: HttpRequest, obj: Any, orphan: bool
) -> dict[str, bool]:
    """``can_requeue``, ``can_run_now``, ``can_cancel``, ``can_stop`` and ``can_rename``."""
    status = obj.status
    return {
        "can_requeue": (
            (status in (TaskStatus.FAILED, TaskStatus.CANCELLED) or orphan)
            and model_admin.has_requeue_permission(request)
            and triage.is_registered(obj.func_name, obj.backend)
        ),
        "can_run_now": (
            status == TaskStatus.CREATED
            and obj.not_before > timezone.now()
            and model_admin.has_requeue_permission(request)
        ),
        "can_cancel": (
            (status == TaskStatus.CREATED or orphan) and model_admin.has_cancel_permission(request)
        ),
        "can_stop": (
            status == TaskStatus.RUNNING
            and not orphan
            and model_admin.has_cancel_permission(request)
        ),
        "can_rename": status != TaskStatus.RUNNING and model_admin.has_rename_permission(request),
    }
