"""The tables Firefly keeps: tasks, their attempts, consumer processes, queue controls,
rollups and periodic schedules.

A task's state changes only through its queryset (``firefly_tasks.queryset``); the states are
``firefly_tasks.states``.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from firefly_tasks import rollups, serialization, waiting
from firefly_tasks.indexes import (
    LimitKeyIndex,
    NotNullIndex,
    ReadyTasksIndex,
    UniqueWhereSet,
    attention_index,
)
from firefly_tasks.limit_models import ConcurrencyKey as ConcurrencyKey
from firefly_tasks.limit_models import RateBucket as RateBucket
from firefly_tasks.limit_models import StuckTask as StuckTask
from firefly_tasks.queryset import TaskQuerySet
from firefly_tasks.schedule_model import ScheduleModel as ScheduleModel

# Re-exported: where users and migrations have found them.
from firefly_tasks.states import FINISHED_STATUSES as FINISHED_STATUSES
from firefly_tasks.states import AttemptOutcome as AttemptOutcome
from firefly_tasks.states import Feed as Feed
from firefly_tasks.states import Isolation as Isolation
from firefly_tasks.states import MissedTicks as MissedTicks
from firefly_tasks.states import Overlap as Overlap
from firefly_tasks.states import ScheduleSource as ScheduleSource
from firefly_tasks.states import TaskStatus as TaskStatus
from firefly_tasks.states import WorkerState as WorkerState
from firefly_tasks.workflow_models import TaskDependency as TaskDependency
from firefly_tasks.workflow_models import TaskProgress as TaskProgress


class WorkerModel(models.Model):
    """One row per ``consume_tasks`` process, registered when it starts."""

    name = models.CharField(max_length=200, db_index=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveSmallIntegerField(default=1)
    # db_default: a consumer of an older release registers without naming the column.
    pool = models.CharField(
        max_length=16,
        default="thread",
        db_default="thread",
        help_text=gettext_lazy("where its tasks run: thread, or process (consume_tasks --pool)"),
    )
    started = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped = models.DateTimeField(null=True, blank=True)
    state = models.CharField(
        max_length=16, choices=WorkerState.choices, default=WorkerState.RUNNING
    )
    # db_default too: consumers of an older release register without naming the column.
    engine = models.PositiveSmallIntegerField(
        default=1,
        db_default=1,
        help_text=gettext_lazy("the engine version the consumer runs (states.ENGINE_VERSION)"),
    )
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Null: a consumer of an older release registers without naming the column.
    executing = models.JSONField(
        null=True,
        blank=True,
        help_text=gettext_lazy(
            "the tasks its threads executed at its last heartbeat (id, name, queue, "
            "started): the rest of what it holds is claimed, waiting in its batches"
        ),
    )

    children = models.JSONField(
        null=True,
        blank=True,
        help_text=gettext_lazy(
            "with --pool process, its children at its last heartbeat: slot, pid, "
            "memory (resident, KiB) and the task each executes"
        ),
    )
    memory_kib = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("its resident memory at its last heartbeat (KiB)"),
    )
    version = models.CharField(
        max_length=40,
        blank=True,
        default="",
        db_default="",
        help_text=gettext_lazy("Firefly's release"),
    )
    # A stop asked from the dashboard: as SIGTERM, seen at its heartbeat (worker_control).
    stop_requested = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.CharField(max_length=150, blank=True, default="", db_default="")

    # Its FIREFLY_SCHEDULES and since when (a rolling deploy's newest wins; see schedules).
    schedules_digest = models.CharField(max_length=64, blank=True, default="", db_default="")
    schedules_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "worker"
        indexes = [models.Index(fields=["state", "last_heartbeat"], name="firefly_worker_state")]

    def __str__(self) -> str:
        return self.name


class TaskModel(models.Model):
    """One row per scheduled task. Field names follow django_firefly_tasks."""

    id = models.BigAutoField(primary_key=True)
    func_name = models.CharField(max_length=255)
    queue = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.CREATED)
    priority = models.SmallIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    not_before = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    failed = models.DateTimeField(null=True, blank=True)
    cancelled = models.DateTimeField(null=True, blank=True)
    serializer = models.CharField(max_length=16, default="json")
    params_data = models.TextField(db_column="params")
    returned_data = models.TextField(db_column="returned", null=True, blank=True)
    params_preview = models.TextField(blank=True)
    returned_preview = models.TextField(blank=True)
    retry_attempts = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=0)
    retry_delay = models.PositiveIntegerField(default=120, help_text=gettext_lazy("seconds"))
    retry_backoff = models.BooleanField(default=False)
    timeout = models.FloatField(
        null=True, blank=True, help_text=gettext_lazy("seconds an attempt may run")
    )
    attempt = models.PositiveIntegerField(default=0)
    lost_attempts = models.PositiveIntegerField(default=0)
    # db_default: a consumer of an older release stores tasks without naming the column.
    snoozes = models.PositiveIntegerField(
        default=0, db_default=0, help_text=gettext_lazy("times the task put itself back (Snooze)")
    )
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker = models.ForeignKey(
        WorkerModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
        db_constraint=False,
        db_index=False,  # firefly_task_worker below, without the rows no worker has claimed
    )
    backend = models.CharField(max_length=100, blank=True)
    isolation = models.PositiveSmallIntegerField(
        choices=Isolation.choices, default=Isolation.BATCHED
    )
    # db_default too: code of an older release inserts rows without naming the column.
    min_engine = models.PositiveSmallIntegerField(
        default=1,
        db_default=1,
        help_text=gettext_lazy("the lowest engine version that may run it (states.ENGINE_VERSION)"),
    )

    # A unique task's key, as given or derived; it is *held* (``unique_hold``, unique among
    # the rows where it is set) while the task is unfinished, and with ``unique_for`` until
    # ``unique_until`` too. A finished task's hold is cleared by the next call that needs
    # the key, or on PostgreSQL by its completion (firefly_tasks.key_holds).
    unique_key = models.CharField(max_length=255, null=True, blank=True)
    unique_hold = models.CharField(max_length=255, null=True, blank=True, editable=False)
    unique_until = models.DateTimeField(null=True, blank=True)

    # At most ``concurrency_limit`` tasks with this key run at once (firefly_tasks.slots).
    concurrency_key = models.CharField(max_length=255, null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # At most so many starts a period (``"100/m"``) for this key (firefly_tasks.rates).
    rate_key = models.CharField(max_length=255, null=True, blank=True)
    rate_limit = models.CharField(max_length=20, null=True, blank=True)

    # Null unless a periodic schedule enqueued it: the schedule's name, and for a tick (not
    # a "run now") the tick it belongs to.
    schedule = models.CharField(max_length=200, null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)

    # Workflows (firefly_tasks.dependencies): the tasks it still waits for (``blocked``
    # until none), what of theirs it receives (``Feed``), and whether it runs when one failed.
    waiting_for = models.PositiveIntegerField(default=0, db_default=0)
    feed = models.CharField(
        max_length=8, choices=Feed.choices, default=Feed.NOTHING, db_default="", blank=True
    )
    run_if_failed = models.BooleanField(default=False, db_default=False)
    # Hooks (hooks.py): on_success on completion; on_failure on a final failure or a cancel.
    on_success = models.CharField(max_length=255, null=True, blank=True)
    on_failure = models.CharField(max_length=255, null=True, blank=True)
    # A label shared by related calls (``using(label=...)``; firefly_tasks.labels).
    label = models.CharField(max_length=100, null=True, blank=True)
    # Someone waits for its result (firefly_tasks.waiting): on PostgreSQL, its end NOTIFYs.
    awaited = models.BooleanField(default=False, db_default=False, editable=False)
    # The W3C trace context of the code that scheduled it, as JSON (firefly_tasks.tracing).
    trace_context = models.TextField(blank=True, default="", db_default="", editable=False)

    objects = TaskQuerySet.as_manager()

    # Not stored: how long the function itself ran in this process's last call of it.
    run_seconds: float | None = None
    # Not stored: ``schedule()`` returned an existing row, which holds the call's unique key.
    deduplicated: bool = False
    # Not stored on the row: the tags ``schedule()`` stores with it (``TaskTag``).
    new_tags: tuple[str, ...] = ()
    # Not stored on the row: the tasks it waits for, and where their results go
    # (``TaskDependency``), as ``schedule()`` stores them.
    waits_for: tuple[tuple[int, int], ...] = ()
    # Not stored: ``schedule()`` inserted it in a transaction that has not committed yet.
    uncommitted: bool = False

    class Meta:
        verbose_name = "task"
        indexes = [
            ReadyTasksIndex(
                fields=["status", "queue", "-priority", "not_before", "id"],
                name="firefly_task_ready",
            ),
            # Counts per state and queue; and with the task and creation time in it too, the
            # task list's filters (state, queue, task, created) are answered from the index
            # alone: MariaDB, next to a million finished rows, otherwise reads a row a match.
            models.Index(
                fields=["status", "queue", "func_name", "created"],
                name="firefly_task_status_queue",
            ),
            # Without varchar_pattern_ops: the admin's search is a contains, not a prefix.
            models.Index(fields=["func_name"], name="firefly_task_func_name"),
            NotNullIndex(fields=["completed"], name="firefly_task_completed"),
            NotNullIndex(fields=["failed"], name="firefly_task_failed"),
            NotNullIndex(fields=["worker"], name="firefly_task_worker"),
            NotNullIndex(fields=["schedule", "id"], name="firefly_task_schedule"),
            NotNullIndex(fields=["label", "id"], name="firefly_task_label"),
            LimitKeyIndex(
                fields=["concurrency_key", "status", "-priority", "not_before", "id"],
                name="firefly_task_concurrency",
            ),
        ]
        constraints = [
            UniqueWhereSet(field="unique_hold", name="firefly_task_unique_hold"),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100),
                name="firefly_task_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.func_name} #{self.pk}"

    @property
    def params(self) -> dict[str, Any]:
        """The call's arguments as ``{"args": (...), "kwargs": {...}}``."""
        args, kwargs = serialization.loads(self.params_data, self.serializer)
        return {"args": tuple(args), "kwargs": dict(kwargs)}

    @property
    def returned(self) -> Any:
        """What the function returned, once the task has completed."""
        if self.returned_data is None:
            return None
        return serialization.loads(self.returned_data, self.serializer)

    def wait_result(self, timeout: float = 10.0, *, raise_on_failure: bool = False) -> Any:
        """Wait until the task finished, up to ``timeout`` seconds, and return its result
        (see ``firefly_tasks.waiting``)."""
        return waiting.wait_result(self, timeout, raise_on_failure=raise_on_failure)

    async def await_result(self, timeout: float = 10.0, *, raise_on_failure: bool = False) -> Any:
        """``wait_result()`` for async code."""
        return await waiting.await_result(self, timeout, raise_on_failure=raise_on_failure)

    @property
    def tags(self) -> list[str]:
        """The task's tags, in the order they were given."""
        return [tag.tag for tag in sorted(self.tag_set.all(), key=lambda tag: tag.pk)]

    @property
    def duration(self) -> datetime.timedelta | None:
        end = self.completed or self.failed
        if self.started is None or end is None or end < self.started:
            return None
        return end - self.started


class TaskAttempt(models.Model):
    """One row per execution attempt of a task; nothing is deleted on retry."""

    # No index of its own: the unique (task, number) constraint leads with it.
    task = models.ForeignKey(
        TaskModel, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    number = models.PositiveIntegerField()
    worker = models.ForeignKey(
        WorkerModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attempts",
        db_constraint=False,
    )
    worker_name = models.CharField(max_length=200, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        verbose_name = "task attempt"
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="firefly_attempt_unique"),
        ]
        indexes = [attention_index()]

    def __str__(self) -> str:
        return f"{self.task_id} attempt {self.number}: {self.outcome}"


class QueueModel(models.Model):
    """Controls for one queue. A row exists only once a queue has been paused."""

    name = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "queue"

    def __str__(self) -> str:
        return self.name


class TaskRollup(models.Model):
    """Finished attempts of one minute, queue and task, as one writer counted them (see
    ``firefly_tasks.rollups``); readers sum over writers."""

    minute = models.DateTimeField()
    # A consumer's WorkerModel id and thread, or 0 and a process-and-thread number for a
    # process that ran tasks immediately. No foreign key: rollups outlive workers.
    worker_id = models.BigIntegerField()
    slot = models.BigIntegerField()
    queue = models.CharField(max_length=100)
    func_name = models.CharField(max_length=255)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="failed for good")
    retried = models.PositiveIntegerField(default=0, help_text="failed, to be retried")
    run_seconds = models.FloatField(default=0, help_text="run time of every attempt, summed")
    wait_seconds = models.FloatField(
        default=0, help_text="summed time from ready (not_before) to each attempt's start"
    )
    # run_b00 ... run_b15 and wait_b00 ... wait_b15: attempts per duration bucket, added below.

    class Meta:
        verbose_name = "task rollup"
        constraints = [
            models.UniqueConstraint(
                fields=["worker_id", "slot", "minute", "queue", "func_name"],
                name="firefly_rollup_writer_key",
            ),
        ]
        indexes = [models.Index(fields=["minute"], name="firefly_rollup_minute")]

    def __str__(self) -> str:
        return f"{self.func_name} on {self.queue} at {self.minute:%Y-%m-%d %H:%M}"


class TaskTag(models.Model):
    """A tag of a task (``@task(tags=...)``, ``using(tags=...)``): one row each, so that
    finding tasks by tag is an index lookup on every database."""

    task = models.ForeignKey(TaskModel, on_delete=models.CASCADE, related_name="tag_set")
    tag = models.CharField(max_length=100)

    class Meta:
        verbose_name = "task tag"
        constraints = [
            models.UniqueConstraint(fields=["tag", "task"], name="firefly_tag_unique"),
        ]

    def __str__(self) -> str:
        return self.tag


for _name in rollups.bucket_fields():
    TaskRollup.add_to_class(_name, models.PositiveIntegerField(default=0))
