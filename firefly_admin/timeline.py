"""A task's life in time order, as its page shows it: scheduling, each attempt, what staff did,
its end."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils.translation import gettext as _

from firefly_admin.display import BADGE_LABELS
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
    """The events of ``obj`` and its ``attempts``, oldest first, told in the active language
    (what staff did reads as it was recorded). Events of the same moment come in the order one
    led to the next: due, then an attempt's start, then its end; and an attempt that ended
    (lost, say) before the retry it made the task due for."""
    scheduled = _("Scheduled on queue %(queue)s") % {"queue": obj.queue}
    events = [TimelineEvent(obj.created, "created", scheduled)]
    due = None
    if obj.not_before - obj.created > datetime.timedelta(seconds=1):
        due = TimelineEvent(obj.not_before, "scheduled", _("Due to run (not before)"))
    for attempt in attempts:
        if due is not None and not _over_by(attempt, obj.not_before):
            events.append(due)  # before the attempts it led to
            due = None
        worker = attempt.worker_name or _("no worker")
        if attempt.started:
            started = _("Attempt %(number)s started on %(worker)s")
            events.append(
                TimelineEvent(
                    attempt.started,
                    "running",
                    started % {"number": attempt.number, "worker": worker},
                )
            )
        # The outcome as its badge says it: "Attempt 2 timed out".
        outcome = BADGE_LABELS.get(attempt.outcome, attempt.outcome)
        events.append(
            TimelineEvent(
                attempt.finished,
                attempt.outcome,
                _("Attempt %(number)s %(outcome)s")
                % {"number": attempt.number, "outcome": outcome},
                attempt.error,
            )
        )
    if due is not None:
        events.append(due)
    if obj.status == TaskStatus.RUNNING and obj.started:
        running = _("Attempt %(number)s running now") % {"number": obj.attempt}
        events.append(TimelineEvent(obj.started, "running", running))
    for entry in entries_for(Task, str(obj.pk)):
        change = entry.get_change_message() or _("Changed")
        events.append(TimelineEvent(entry.action_time, "admin", f"{change} ({entry.user})"))
    for kind, label in (
        ("completed", _("Task completed")),
        ("failed", _("Task failed")),
        ("cancelled", _("Task cancelled")),
    ):
        moment = getattr(obj, kind)
        if moment is not None:
            events.append(TimelineEvent(moment, kind, label))
    return sorted(events, key=lambda event: event.at)  # stable: ties keep the order above


def _over_by(attempt: TaskAttempt, moment: datetime.datetime) -> bool:
    """Whether ``attempt`` was over by ``moment``, the task's not-before: then the task came
    to be due at ``moment`` after it (a retry, a requeue), not before it. A recovered attempt
    ends at the very moment its task is due again."""
    if attempt.finished != moment:
        return attempt.finished < moment
    return attempt.started is None or attempt.started < moment
