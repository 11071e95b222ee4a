"""A task's life in time order, as its page shows it: scheduling, each attempt, what staff did,
its end."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from firefly_admin.history import entries_for
from firefly_admin.models import Task
from firefly_tasks.models import TaskAttempt, TaskModel
from firefly_tasks.states import TaskStatus


@dataclass
class TimelineEvent:
    at: datetime.datetime
    kind: str
    label: str
    detail: str = ""


def task_timeline(obj: TaskModel, attempts: list[TaskAttempt]) -> list[TimelineEvent]:
    """The events of ``obj`` and its ``attempts``, oldest first."""
    events = [TimelineEvent(obj.created, "created", f"Scheduled on queue {obj.queue}")]
    if obj.not_before - obj.created > datetime.timedelta(seconds=1):
        events.append(TimelineEvent(obj.not_before, "scheduled", "Due to run (not before)"))
    for attempt in attempts:
        worker = attempt.worker_name or "no worker"
        if attempt.started:
            events.append(
                TimelineEvent(
                    attempt.started, "running", f"Attempt {attempt.number} started on {worker}"
                )
            )
        events.append(
            TimelineEvent(
                attempt.finished,
                attempt.outcome,
                f"Attempt {attempt.number} {attempt.outcome}",
                attempt.error,
            )
        )
    if obj.status == TaskStatus.RUNNING and obj.started:
        events.append(TimelineEvent(obj.started, "running", f"Attempt {obj.attempt} running now"))
    for entry in entries_for(Task, str(obj.pk)):
        events.append(
            TimelineEvent(
                entry.action_time,
                "admin",
                f"{entry.get_change_message() or 'Changed'} ({entry.user})",
            )
        )
    for field, kind in (
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
    ):
        moment = getattr(obj, field)
        if moment is not None:
            events.append(TimelineEvent(moment, kind, f"Task {kind}"))
    return sorted(events, key=lambda event: event.at)
