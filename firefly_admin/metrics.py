"""The dashboard's numbers: queue depths, throughput, workers' liveness (failure groups: triage.py).

Each function runs a fixed, small number of queries, whatever the number of tasks, queues
or workers, so a dashboard left open costs the database little.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from firefly_admin import throughput
from firefly_admin.throughput import MINUTES, Window
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import QueueModel, TaskAttempt, TaskModel, TaskProgress, WorkerModel
from firefly_tasks.queues import known_queues
from firefly_tasks.states import TaskStatus, WorkerState

HOUR = datetime.timedelta(hours=1)
WORKER_LIMIT = 50

CHART_WIDTH = 180
CHART_HEIGHT = 28


@dataclass
class Bar:
    x: int
    y: int
    width: int
    height: int
    count: int
    minute: datetime.datetime


@dataclass
class QueueStats:
    name: str
    known: bool = True
    paused: bool = False
    paused_at: datetime.datetime | None = None
    paused_by: str = ""
    reason: str = ""
    ready: int = 0
    scheduled: int = 0
    running: int = 0  # rows in the running state: executing, or claimed and waiting in a batch
    blocked: int = 0  # waiting for a slot of their concurrency key (firefly_tasks.slots)
    limit: int | None = None  # FIREFLY_QUEUES' "concurrency" of the queue
    executing: int = 0  # of which threads were executing at the workers' last heartbeats
    oldest_ready: datetime.datetime | None = None
    window: Window = field(default_factory=Window)
    start: datetime.datetime | None = None
    now: datetime.datetime | None = None

    @property
    def claimed(self) -> int:
        """Running rows no thread executes yet: waiting in a consumer's claimed batch."""
        return max(self.running - self.executing, 0)

    @property
    def per_minute(self) -> list[int]:
        return self.window.per_minute

    @property
    def failed_last_hour(self) -> int:
        return self.window.failed

    @property
    def oldest_ready_age(self) -> datetime.timedelta | None:
        if self.oldest_ready is None or self.now is None:
            return None
        return max(self.now - self.oldest_ready, datetime.timedelta(0))

    @property
    def completed_last_hour(self) -> int:
        return self.window.completed

    @property
    def per_minute_average(self) -> float:
        return self.completed_last_hour / MINUTES

    @property
    def peak_per_minute(self) -> int:
        return max(self.per_minute)

    @property
    def bars(self) -> list[Bar]:
        """Geometry of the throughput chart: one bar per minute, oldest first."""
        if self.start is None:
            return []
        peak = self.peak_per_minute or 1
        width = CHART_WIDTH // MINUTES
        bars = []
        for index, count in enumerate(self.per_minute):
            height = round(count / peak * (CHART_HEIGHT - 2)) if count else 0
            height = max(height, 1) if count else 0
            bars.append(
                Bar(
                    x=index * width,
                    y=CHART_HEIGHT - height,
                    width=max(width - 1, 1),
                    height=height,
                    count=count,
                    minute=self.start + datetime.timedelta(minutes=index),
                )
            )
        return bars


@dataclass
class QueueCatalog:
    """The queue control rows and the known queues they help name (one query), and the
    workers once asked for (one more): shared by the regions of the dashboard's full page."""

    controls: list[QueueModel]
    names: list[str]
    _workers: list[WorkerStatus] | None = None
    _executing: list[dict[str, Any]] | None = None

    @classmethod
    def load(cls) -> QueueCatalog:
        controls = list(QueueModel.objects.order_by("name"))
        return cls(controls, known_queues(control.name for control in controls))

    def workers(self, now: datetime.datetime) -> list[WorkerStatus]:
        """:func:`worker_statuses`, read once."""
        if self._workers is None:
            self._workers = worker_statuses(now)
        return self._workers

    def executing(self, now: datetime.datetime) -> list[dict[str, Any]]:
        """:func:`executing_tasks`, read once: from the workers if they were read and hold
        every live worker (fewer than ``WORKER_LIMIT``: a live worker runs, so it is among
        them), else by its own query."""
        if self._executing is None:
            workers = self._workers
            if workers is None or len(workers) >= WORKER_LIMIT:
                self._executing = executing_tasks(now)
            else:
                live = (s.worker for s in workers if s.liveness in ("alive", "late"))
                self._executing = [task for w in live for task in _snapshot(w.executing)]
        return self._executing


def queue_stats(
    now: datetime.datetime | None = None, catalog: QueueCatalog | None = None
) -> list[QueueStats]:
    """Per queue: ready, scheduled, running and executing tasks and the oldest ready one
    (bounded queries on the live tables), and completions per minute, failures and mean
    times over the last hour (from the rollups). Four queries in all."""
    now = now or timezone.now()
    start = throughput.window_start(now)
    catalog = catalog or QueueCatalog.load()
    stats = {name: QueueStats(name=name, start=start, now=now) for name in catalog.names}

    def get(name: str) -> QueueStats:
        # A queue with live rows but no longer declared anywhere still shows up.
        if name not in stats:
            stats[name] = QueueStats(name=name, known=False, start=start, now=now)
        return stats[name]

    for control in catalog.controls:
        if not control.paused:
            continue
        queue = get(control.name)
        queue.paused, queue.paused_at, queue.paused_by = True, control.paused_at, control.paused_by
        queue.reason = control.reason

    ready = Q(status=TaskStatus.CREATED, not_before__lte=now)
    for name, limit in engine_settings.QUEUE_LIMITS.items():
        get(name).limit = limit
    unfinished = (TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.BLOCKED)
    depths = (
        TaskModel.objects.filter(status__in=unfinished)
        .values("queue")
        .annotate(
            ready=Count("pk", filter=ready),
            scheduled=Count("pk", filter=Q(status=TaskStatus.CREATED, not_before__gt=now)),
            running=Count("pk", filter=Q(status=TaskStatus.RUNNING)),
            blocked=Count("pk", filter=Q(status=TaskStatus.BLOCKED)),
            oldest_ready=Min("not_before", filter=ready),
        )
        .order_by()
    )
    for row in depths:
        queue = get(row["queue"])
        queue.ready, queue.scheduled, queue.running = row["ready"], row["scheduled"], row["running"]
        queue.blocked, queue.oldest_ready = row["blocked"], row["oldest_ready"]

    for task in catalog.executing(now):
        get(task["queue"]).executing += 1

    for name, window in throughput.by_queue(start).items():
        get(name).window = window

    return sorted(stats.values(), key=lambda queue: (not queue.known, queue.name))


def live_workers(now: datetime.datetime) -> QuerySet[WorkerModel]:
    """Workers that run and were heard from within ``FIREFLY_WORKER_TIMEOUT``."""
    heard_since = now - datetime.timedelta(seconds=engine_settings.WORKER_TIMEOUT)
    return WorkerModel.objects.filter(
        state__in=(WorkerState.RUNNING, WorkerState.STOPPING), last_heartbeat__gte=heard_since
    )


def executing_tasks(now: datetime.datetime) -> list[dict[str, Any]]:
    """What the live workers' threads executed at their last heartbeats (one query)."""
    return [
        task
        for snapshot in live_workers(now).values_list("executing", flat=True)
        for task in _snapshot(snapshot)
    ]


def _snapshot(value: Any) -> list[dict[str, Any]]:
    """A worker's ``executing`` as written by its heartbeat, or nothing if it holds anything
    else (a consumer of an older release writes no snapshot)."""
    if not isinstance(value, list):
        return []
    return [
        task
        for task in value
        if isinstance(task, dict) and isinstance(task.get("id"), int) and "queue" in task
    ]


@dataclass
class WorkerStatus:
    worker: WorkerModel
    liveness: str
    heartbeat_age: datetime.timedelta
    executing: list[dict[str, Any]] = field(default_factory=list)  # at its last heartbeat
    holding: int = 0  # its rows in the running state: executing, or claimed in a batch

    @property
    def claimed(self) -> int:
        """Tasks it holds that no thread executes yet."""
        return max(self.holding - len(self.executing), 0)


def liveness(worker: WorkerModel, now: datetime.datetime) -> str:
    """``alive``, ``late`` (a heartbeat is overdue) or ``dead`` (silent for longer than
    ``FIREFLY_WORKER_TIMEOUT``); ``stopped`` once the worker has exited cleanly."""
    if worker.state == WorkerState.STOPPED:
        return "stopped"
    if worker.state == WorkerState.DEAD:
        return "dead"
    silent = (now - worker.last_heartbeat).total_seconds()
    timeout = engine_settings.WORKER_TIMEOUT
    if silent <= min(2 * engine_settings.HEARTBEAT_INTERVAL, timeout):
        return "alive"
    if silent <= timeout:
        return "late"
    return "dead"


def worker_statuses(now: datetime.datetime | None = None) -> list[WorkerStatus]:
    """Workers that run, or were heard from in the last hour (the latest ``WORKER_LIMIT``),
    with what their threads executed at their last heartbeats and how many tasks they hold.
    Two queries (the held tasks counted over the running rows, whatever a worker finished)."""
    now = now or timezone.now()
    workers = list(
        WorkerModel.objects.filter(
            Q(state__in=(WorkerState.RUNNING, WorkerState.STOPPING))
            | Q(last_heartbeat__gte=now - HOUR)
        ).order_by("-started", "-pk")[:WORKER_LIMIT]
    )
    statuses = {}
    for worker in workers:
        status = WorkerStatus(worker, liveness(worker, now), now - worker.last_heartbeat)
        if status.liveness in ("alive", "late"):
            status.executing = [
                {**task, "started": _moment(task.get("started"))}
                for task in _snapshot(worker.executing)
            ]
        statuses[worker.pk] = status
    if statuses:
        holding = (
            TaskModel.objects.filter(status=TaskStatus.RUNNING, worker_id__in=list(statuses))
            .values("worker_id")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in holding:
            statuses[row["worker_id"]].holding = row["n"]
    return list(statuses.values())


def _moment(value: Any) -> datetime.datetime | None:
    """A snapshot's ``started``, or ``None`` where it holds no valid date and time."""
    try:
        return parse_datetime(str(value))
    except ValueError:
        return None


def with_attempt_times(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` with the start and end of each row's latest attempt (``attempt_started``,
    ``attempt_finished``): its own timing, not its batch's claim. One lookup per row fetched,
    on the attempts' ``(task, number)`` key."""
    attempt = TaskAttempt.objects.filter(task=OuterRef("pk"), number=OuterRef("attempt"))
    annotated: QuerySet[Any] = queryset.annotate(
        attempt_started=Subquery(attempt.values("started")[:1]),
        attempt_finished=Subquery(attempt.values("finished")[:1]),
    )
    return annotated


def mark_executing(rows: list[Any], catalog: QueueCatalog | None = None) -> None:
    """Tell each running row whether a consumer thread executes it (``executing_since``, from
    the live workers' last heartbeats, read by ``catalog`` if given) or it only waits in a
    claimed batch, and how far it said it has got (``progress_now``): two queries at most,
    only when the page shows a running task."""
    if not any(row.status == TaskStatus.RUNNING for row in rows):
        return
    now = timezone.now()
    executing = catalog.executing(now) if catalog else executing_tasks(now)
    since = {task["id"]: _moment(task.get("started")) for task in executing}
    running = [row.pk for row in rows if row.status == TaskStatus.RUNNING]
    reported = {found.task_id: found for found in TaskProgress.objects.filter(task_id__in=running)}
    for row in rows:
        row.executing_since = since.get(row.pk)
        row.executing = row.pk in since
        row.progress_now = reported.get(row.pk)
