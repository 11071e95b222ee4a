"""What a task's page offers, by its state and the operator's permissions: the buttons above
its fields, each one an action of the task list (``actions.py``) for this task alone; which of
its fieldsets it shows; and what its delete page lists."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from firefly_admin import triage
from firefly_admin.display import count
from firefly_admin.timeline import task_timeline
from firefly_tasks.states import TaskStatus

# Renaming matters to a task that runs again under the new name: one waiting to run, or one an
# operator can requeue. A completed task never runs again: renaming it would only rewrite what
# it was.
RENAMED_TO_RUN = (TaskStatus.CREATED, TaskStatus.BLOCKED, TaskStatus.FAILED, TaskStatus.CANCELLED)


def page_context(model_admin: Any, request: HttpRequest, obj: Any) -> dict[str, Any]:
    """What the page shows besides the task's fields: its attempts and its timeline, whether
    it is orphaned, and the buttons it offers."""
    attempts = list(obj.attempts.order_by("number", "pk"))
    latest = [a for a in attempts if a.number == obj.attempt]
    if latest:  # what the admin's started_at and duration_display show
        obj.attempt_started, obj.attempt_finished = latest[-1].started, latest[-1].finished
    orphan = model_admin.is_orphaned(obj)
    return {
        "attempts": attempts,
        "timeline": task_timeline(obj, attempts),
        "orphaned": orphan,
        **offered_actions(model_admin, request, obj, orphan),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }


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
        "can_rename": status in RENAMED_TO_RUN and model_admin.has_rename_permission(request),
    }


def shown_fieldsets(fieldsets: Any, obj: Any) -> Any:
    """``fieldsets`` without the last failure's where the task has no error or traceback."""
    if obj is None or obj.error or obj.traceback:
        return fieldsets
    return [(name, options) for name, options in fieldsets if "error" not in options["fields"]]


@admin.display(description=gettext_lazy("retry backoff"))
def retry_backoff_words(model_admin: Any, obj: Any) -> str:
    """A ModelAdmin display method: the flag in words, as the admin's icon for a false flag
    is a red cross, which reads as an error."""
    return _("yes") if obj.retry_backoff else _("no")


def deletion_summary(tasks: list[Any], attempts: int) -> tuple[list[str], dict[str, int]]:
    """What the delete page lists (the first task, with how many attempts go with it) and
    counts: a summary, never one line per attempt."""
    its_attempts = ngettext(
        "%(task)s and its %(count)s attempt", "%(task)s and its %(count)s attempts", attempts
    )
    listed = [its_attempts % {"task": task, "count": count(attempts)} for task in tasks[:1]]
    return listed, {_("tasks"): len(tasks), _("attempts"): attempts}
