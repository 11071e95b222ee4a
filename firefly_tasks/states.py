"""The states a task, an attempt and a consumer can be in, and the task's transitions.

``TRANSITIONS`` is the state machine written once, as data: ``firefly_tasks.transitions`` (the
only code that changes a task's state) takes each guard and target from it, and
docs/states.md shows the diagram and the table :func:`mermaid` and :func:`markdown_table` draw
from it (a test keeps them equal). A
new state is a member of :class:`TaskStatus` and a line here; its guard is the writer's.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from django.db import models
from django.utils.translation import pgettext_lazy

ENGINE_VERSION = 4
"""The version of the state machine and the row format this code runs. A release that adds a
state, a column a consumer must honour, or an option an older consumer would ignore raises it.
Each row records the lowest version that may run it (``TaskModel.min_engine``), and a consumer
claims only rows at or below its own, so during a rolling deploy old consumers leave new work
to new ones (docs/operations.md)."""


# The labels are what the admin shows, in the active language; the values are stored.
class TaskStatus(models.TextChoices):
    CREATED = "created", pgettext_lazy("task status", "created")
    # Waiting for the tasks it depends on (firefly_tasks.dependencies), or for a slot of
    # its concurrency key (firefly_tasks.slots): not claimable.
    BLOCKED = "blocked", pgettext_lazy("task status", "blocked")
    RUNNING = "running", pgettext_lazy("task status", "running")
    COMPLETED = "completed", pgettext_lazy("task status", "completed")
    FAILED = "failed", pgettext_lazy("task status", "failed")
    CANCELLED = "cancelled", pgettext_lazy("task status", "cancelled")


FINISHED_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class AttemptOutcome(models.TextChoices):
    COMPLETED = "completed", pgettext_lazy("attempt outcome", "completed")
    FAILED = "failed", pgettext_lazy("attempt outcome", "failed")
    LOST = "lost", pgettext_lazy("attempt outcome", "lost")
    INTERRUPTED = "interrupted", pgettext_lazy("attempt outcome", "interrupted")
    # Claimed by a worker that died before the task was known to start: not charged.
    RELEASED = "released", pgettext_lazy("attempt outcome", "released")
    # Ran past its timeout: retried like a failure.
    TIMED_OUT = "timed_out", pgettext_lazy("attempt outcome", "timed out")
    # Cancelled while it ran: never retried.
    CANCELLED = "cancelled", pgettext_lazy("attempt outcome", "cancelled")
    # The task raised Snooze: runs again later, no retry spent.
    SNOOZED = "snoozed", pgettext_lazy("attempt outcome", "snoozed")


# The attempts' outcomes that need an operator's eye: the dashboard filters tasks by them, and
# the attempt table indexes only these rows (on databases with partial indexes), so that a
# completion's attempt adds no index entry.
ATTENTION_OUTCOMES = (
    AttemptOutcome.TIMED_OUT,
    AttemptOutcome.CANCELLED,
    AttemptOutcome.LOST,
    AttemptOutcome.INTERRUPTED,
)


class Feed(models.TextChoices):
    """What a task that waits for others receives of theirs, as its first argument."""

    NOTHING = "", pgettext_lazy("what a task receives", "nothing")  # depends_on, add.si
    # A chain's next link: the previous link's result.
    RESULT = "result", pgettext_lazy("what a task receives", "the result")
    # A group's callback: its members', in order.
    RESULTS = "results", pgettext_lazy("what a task receives", "the results")


class Overlap(models.TextChoices):
    """What a tick does while the schedule's previous task is unfinished."""

    ALLOW = "allow", pgettext_lazy("schedule overlap", "enqueue anyway")
    SKIP = "skip", pgettext_lazy("schedule overlap", "skip the tick")


class MissedTicks(models.TextChoices):
    """What a schedule does with ticks that came due while no consumer enqueued them."""

    ONCE = "once", pgettext_lazy("missed ticks", "run once")
    SKIP = "skip", pgettext_lazy("missed ticks", "skip them")


class ScheduleSource(models.TextChoices):
    SETTINGS = "settings", pgettext_lazy("schedule source", "settings")
    ADMIN = "admin", pgettext_lazy("schedule source", "admin")


class WorkerState(models.TextChoices):
    RUNNING = "running", pgettext_lazy("worker state", "running")
    STOPPING = "stopping", pgettext_lazy("worker state", "stopping")
    STOPPED = "stopped", pgettext_lazy("worker state", "stopped")
    DEAD = "dead", pgettext_lazy("worker state", "dead")


LIVE_WORKER_STATES = (WorkerState.RUNNING, WorkerState.STOPPING)


class Isolation(models.IntegerChoices):
    """Whether a task may run beside others, so that a crash is charged only to its cause.

    A consumer records nothing when a task starts (that would cost a write per task), so when
    a consumer dies, nothing proves which of its claimed tasks was running. Its tasks are
    released uncharged and marked ``ALONE``: next time each runs with nothing else running in
    its process, and its start is recorded first (``STARTED_ALONE``). Only a consumer that
    dies while a task runs alone charges that task with a lost attempt.
    """

    BATCHED = 0, pgettext_lazy("task isolation", "batched")
    ALONE = 1, pgettext_lazy("task isolation", "runs alone")
    STARTED_ALONE = 2, pgettext_lazy("task isolation", "started alone")


class RunOutcome(enum.StrEnum):
    """What running a claimed task came to (the attempt's outcome is recorded apart)."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # failed, and will run again
    FENCED = "fenced"  # the row moved on to a newer attempt: nothing was written
    CANCELLED = "cancelled"  # stopped because it was cancelled while it ran
    SNOOZED = "snoozed"  # put back by the task itself (Snooze), to run later
    INTERRUPTED = "interrupted"  # its group rolled back: back in the queue, uncharged

    @property
    def is_failure(self) -> bool:
        return self in (RunOutcome.FAILED, RunOutcome.RETRY)


class Event(enum.StrEnum):
    """What happens to a task; each is one function of ``firefly_tasks.transitions``."""

    CLAIM = "claim"  # a consumer takes a ready task
    START = "start"  # a task that must run alone records its start first
    COMPLETE = "complete"
    RETRY = "retry"  # it failed, and has retries left
    SNOOZE = "snooze"  # it asked to run again later (Snooze): no retry spent
    PARK = "park"  # its concurrency key is at its limit: it waits, unclaimed
    UNPARK = "unpark"  # a slot of its key freed: it may be claimed again
    PROMOTE = "promote"  # the last task it waits for (chain, group, depends_on) finished
    THROTTLE = "throttle"  # claimed past its rate limit: undone, to start at a later token
    FAIL = "fail"  # it failed for good (or was lost too often: poison)
    RELEASE = "release"  # claimed, never started: back as if never claimed
    RECOVER = "recover"  # its consumer died or was interrupted: back to the queue
    CANCEL = "cancel"
    ABORT = "abort"  # cancel a running task: its worker stops it
    REQUEUE = "requeue"
    RENAME = "rename"  # point it at another task name; its state does not change


@dataclass(frozen=True)
class Transition:
    event: Event
    source: TaskStatus
    target: TaskStatus
    why: str


_S = TaskStatus
TRANSITIONS: tuple[Transition, ...] = (
    Transition(Event.CLAIM, _S.CREATED, _S.RUNNING, "ready, in an unpaused queue"),
    Transition(Event.START, _S.RUNNING, _S.RUNNING, "runs alone: its start is recorded"),
    Transition(Event.COMPLETE, _S.RUNNING, _S.COMPLETED, "returned"),
    Transition(Event.PARK, _S.CREATED, _S.BLOCKED, "its concurrency key is at its limit"),
    Transition(Event.PARK, _S.RUNNING, _S.BLOCKED, "claimed past its key's limit: undone"),
    Transition(Event.UNPARK, _S.BLOCKED, _S.CREATED, "a slot of its key freed"),
    Transition(Event.PROMOTE, _S.BLOCKED, _S.CREATED, "the last task it waits for finished"),
    Transition(Event.THROTTLE, _S.RUNNING, _S.CREATED, "claimed past its rate limit: undone"),
    Transition(Event.RETRY, _S.RUNNING, _S.CREATED, "raised, retries left"),
    Transition(Event.SNOOZE, _S.RUNNING, _S.CREATED, "raised Snooze, under FIREFLY_MAX_SNOOZES"),
    Transition(Event.FAIL, _S.RUNNING, _S.FAILED, "raised, no retries left; or poison"),
    Transition(Event.RELEASE, _S.RUNNING, _S.CREATED, "claimed, never started"),
    Transition(Event.RECOVER, _S.RUNNING, _S.CREATED, "worker died or was interrupted"),
    Transition(Event.CANCEL, _S.CREATED, _S.CANCELLED, "before it runs"),
    Transition(
        Event.CANCEL, _S.BLOCKED, _S.CANCELLED, "before it runs; or a task it waits for failed"
    ),
    Transition(Event.ABORT, _S.RUNNING, _S.CANCELLED, "while it runs: its worker stops it"),
    Transition(Event.REQUEUE, _S.FAILED, _S.CREATED, "by an operator"),
    Transition(Event.REQUEUE, _S.CANCELLED, _S.CREATED, "by an operator"),
    *(
        Transition(Event.RENAME, status, status, "any state but running")
        for status in TaskStatus
        if status != _S.RUNNING
    ),
)


@functools.cache
def sources(event: Event) -> tuple[TaskStatus, ...]:
    """The states a task must be in for ``event`` to apply to it: the writer's guard."""
    return tuple(t.source for t in TRANSITIONS if t.event == event)


def source(event: Event) -> TaskStatus:
    """The one state ``event`` applies to, for events with one: a statement's guard."""
    (found,) = sources(event)
    return found


@functools.cache
def target(event: Event) -> TaskStatus:
    """The state ``event`` moves a task to; only for events with one target."""
    (found,) = {t.target for t in TRANSITIONS if t.event == event}
    return found


def markdown_table() -> str:
    """``TRANSITIONS`` as a Markdown table (docs/states.md)."""
    lines = ["| event | from | to | when |", "|---|---|---|---|"]
    for event in Event:
        found = [t for t in TRANSITIONS if t.event == event]
        froms = ", ".join(f"`{t.source}`" for t in found)
        targets = sorted({t.target for t in found})
        to = "unchanged" if event == Event.RENAME else ", ".join(f"`{t}`" for t in targets)
        lines.append(f"| `{event}` | {froms} | {to} | {found[0].why} |")
    return "\n".join(lines)


def mermaid() -> str:
    """The state diagram of ``TRANSITIONS``, as Mermaid text (docs/states.md)."""
    lines = [
        "stateDiagram-v2",
        f"    [*] --> {TaskStatus.CREATED}: schedule",
        f"    [*] --> {TaskStatus.BLOCKED}: schedule (waits for other tasks)",
    ]
    for t in TRANSITIONS:
        if t.event == Event.RENAME:
            continue  # a self-loop on every state but one: said below the diagram
        lines.append(f"    {t.source} --> {t.target}: {t.event} ({t.why})")
    return "\n".join(lines)
