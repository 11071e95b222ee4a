"""The tables Firefly keeps: tasks, their attempts, consumer processes and queue controls.

Every state change is a guarded update: it names the state a row must still be in, so two
processes racing on one row can never both win.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import connections, models, transaction
from django.db.models import Q
from django.utils import timezone

from firefly_tasks import serialization
from firefly_tasks.database import binary_placeholder, hot_cursor, per_database
from firefly_tasks.indexes import NotNullIndex, ReadyTasksIndex


class TaskStatus(models.TextChoices):
    CREATED = "created", "created"
    RUNNING = "running", "running"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


FINISHED_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class WorkerState(models.TextChoices):
    RUNNING = "running", "running"
    STOPPING = "stopping", "stopping"
    STOPPED = "stopped", "stopped"
    DEAD = "dead", "dead"


class AttemptOutcome(models.TextChoices):
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    LOST = "lost", "lost"
    INTERRUPTED = "interrupted", "interrupted"
    # Claimed by a worker that died before the task was known to start: not charged.
    RELEASED = "released", "released"


class Isolation(models.IntegerChoices):
    """Whether a task may run beside others, so that a crash is charged only to its cause.

    A consumer records nothing when a task starts (that would cost a write per task), so when
    a consumer dies, nothing proves which of its claimed tasks was running. Its tasks are
    released uncharged and marked ``ALONE``: next time each runs with nothing else running in
    its process, and its start is recorded first (``STARTED_ALONE``). Only a consumer that
    dies while a task runs alone charges that task with a lost attempt.
    """

    BATCHED = 0, "batched"
    ALONE = 1, "runs alone"
    STARTED_ALONE = 2, "started alone"


class WorkerModel(models.Model):
    """One row per ``consume_tasks`` process, registered when it starts."""

    name = models.CharField(max_length=200, db_index=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveSmallIntegerField(default=1)
    started = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped = models.DateTimeField(null=True, blank=True)
    state = models.CharField(
        max_length=16, choices=WorkerState.choices, default=WorkerState.RUNNING
    )
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "worker"
        indexes = [models.Index(fields=["state", "last_heartbeat"], name="firefly_worker_state")]

    def __str__(self) -> str:
        return self.name


def _single_insert(connection: Any) -> tuple[str, list[str], list[int], bool]:
    """``INSERT`` of one task row on ``connection``: its text, the attributes of its
    parameters in order, which of them are datetimes to adapt for the database, and whether
    it returns the new id (else the cursor's ``lastrowid`` holds it). Built once per database."""
    return per_database(connection, "insert one task", lambda: _build_single_insert(connection))


def _build_single_insert(connection: Any) -> tuple[str, list[str], list[int], bool]:
    qn = connection.ops.quote_name
    fields = [f for f in TaskModel._meta.concrete_fields if not f.primary_key]
    returning = bool(connection.features.can_return_columns_from_insert)
    sql = (
        f"INSERT INTO {qn(TaskModel._meta.db_table)} "
        f"({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
        + (f" RETURNING {qn('id')}" if returning else "")
    )
    # Every other column holds a str, int, bool or None, which drivers take as they are.
    datetimes = [i for i, f in enumerate(fields) if isinstance(f, models.DateTimeField)]
    return sql, [f.attname for f in fields], datetimes, returning


class TaskQuerySet(models.QuerySet["TaskModel"]):
    def ready(self, now: datetime.datetime | None = None) -> TaskQuerySet:
        """Tasks that a consumer may claim now."""
        return self.filter(status=TaskStatus.CREATED, not_before__lte=now or timezone.now())

    def scheduled(self, now: datetime.datetime | None = None) -> TaskQuerySet:
        """Tasks waiting for their ``eta`` or retry delay."""
        return self.filter(status=TaskStatus.CREATED, not_before__gt=now or timezone.now())

    def running(self) -> TaskQuerySet:
        return self.filter(status=TaskStatus.RUNNING)

    def finished(self) -> TaskQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def finished_before(
        self, cutoff: datetime.datetime, statuses: Sequence[str] = FINISHED_STATUSES
    ) -> TaskQuerySet:
        """Finished tasks whose completion, failure or cancellation came before ``cutoff``."""
        condition = Q()
        for status, field in (
            (TaskStatus.COMPLETED, "completed"),
            (TaskStatus.FAILED, "failed"),
            (TaskStatus.CANCELLED, "cancelled"),
        ):
            if status in statuses:
                condition |= Q(status=status, **{f"{field}__lt": cutoff})
        return self.filter(condition) if condition else self.none()

    def prune(self, chunk_size: int = 1000) -> int:
        """Delete these tasks and their attempts in chunks; return how many tasks went."""
        deleted = 0
        while ids := list(self.values_list("pk", flat=True)[:chunk_size]):
            with transaction.atomic(using=self.db):
                TaskAttempt.objects.using(self.db).filter(task_id__in=ids).delete()
                TaskModel.objects.using(self.db).filter(pk__in=ids).delete()
            deleted += len(ids)
        return deleted

    def insert_calls(self, rows: list[TaskModel]) -> list[TaskModel]:
        """Insert unsaved rows that differ only in their call (``params`` and its preview),
        as ``Task.schedule()`` and ``schedule_many()`` build them, and set their ids.

        One row is one ``INSERT``, its text built once per database: compiling it through
        ``save()`` costs more than the insert itself. Many rows on PostgreSQL are one
        ``INSERT ... SELECT FROM unnest()`` carrying the calls as two arrays, with every other
        column sent once; elsewhere they are ``bulk_create``. No ``pre_save``/``post_save``
        signals are sent: ``task_scheduled`` is Firefly's.
        """
        self._for_write = True  # as bulk_create(): the router's database for writes
        connection = connections[self.db]
        if len(rows) == 1:
            return [self._insert_one(rows[0], connection)]
        if connection.vendor != "postgresql":
            return TaskModel.objects.using(self.db).bulk_create(rows)
        qn = connection.ops.quote_name
        varying = ("params_data", "params_preview")
        fields = [
            f
            for f in self.model._meta.concrete_fields
            if not f.primary_key and f.attname not in varying
        ]
        template = rows[0]
        constants = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
        columns = [qn(str(f.column)) for f in fields] + [qn("params"), qn("params_preview")]
        selects = [f"CAST(%s AS {f.cast_db_type(connection)})" for f in fields]
        b = binary_placeholder(connection)
        sql = (
            f"INSERT INTO {qn(self.model._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(selects)}, u.p, u.v "
            f"FROM unnest({b}::text[], {b}::text[]) WITH ORDINALITY AS u(p, v, n) "
            f"ORDER BY u.n RETURNING {qn('id')}"
        )
        params = [*constants, [r.params_data for r in rows], [r.params_preview for r in rows]]
        with hot_cursor(connection) as cursor:
            cursor.execute(sql, params)
            ids = [pk for (pk,) in cursor.fetchall()]
        for row, pk in zip(rows, ids, strict=True):
            row.pk = pk
            row._state.adding = False
            row._state.db = self.db
        return rows

    def _insert_one(self, row: TaskModel, connection: Any) -> TaskModel:
        sql, attnames, datetimes, returning = _single_insert(connection)
        values = row.__dict__
        params = [values[name] for name in attnames]
        for i in datetimes:
            if params[i] is not None:
                params[i] = connection.ops.adapt_datetimefield_value(params[i])
        with hot_cursor(connection) as cursor:
            cursor.execute(sql, params)
            row.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
        row._state.adding = False
        row._state.db = self.db
        return row

    def requeue(self) -> int:
        """Failed or cancelled tasks back to ``created``, to run now; attempts are kept."""
        return self.filter(status__in=(TaskStatus.FAILED, TaskStatus.CANCELLED)).update(
            status=TaskStatus.CREATED,
            not_before=timezone.now(),
            worker=None,
            error="",
            traceback="",
            retry_attempts=0,
            lost_attempts=0,
            failed=None,
            cancelled=None,
        )

    def rename(self, func_name: str) -> int:
        """Point tasks that are not running at another task name (e.g. after a move)."""
        return self.exclude(status=TaskStatus.RUNNING).update(func_name=func_name)

    def cancel(self) -> int:
        """Tasks still waiting to run become ``cancelled``; running tasks are left alone."""
        return self.filter(status=TaskStatus.CREATED).update(
            status=TaskStatus.CANCELLED, cancelled=timezone.now()
        )


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
    retry_delay = models.PositiveIntegerField(default=120, help_text="seconds")
    retry_backoff = models.BooleanField(default=False)
    attempt = models.PositiveIntegerField(default=0)
    lost_attempts = models.PositiveIntegerField(default=0)
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

    objects = TaskQuerySet.as_manager()

    # Not stored: how long the function itself ran in this process's last call of it.
    run_seconds: float | None = None

    class Meta:
        verbose_name = "task"
        indexes = [
            ReadyTasksIndex(
                fields=["status", "queue", "-priority", "not_before", "id"],
                name="firefly_task_ready",
            ),
            models.Index(fields=["status", "queue"], name="firefly_task_status_queue"),
            # Without varchar_pattern_ops: the admin's search is a contains, not a prefix.
            models.Index(fields=["func_name"], name="firefly_task_func_name"),
            NotNullIndex(fields=["completed"], name="firefly_task_completed"),
            NotNullIndex(fields=["failed"], name="firefly_task_failed"),
            NotNullIndex(fields=["worker"], name="firefly_task_worker"),
        ]
        constraints = [
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
