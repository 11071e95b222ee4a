"""The dashboard's numbers: queue depths, throughput, workers' liveness, recent failures.

Each function runs a fixed, small number of queries, whatever the number of tasks, queues
or workers, so a dashboard left open costs the database little.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone

from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import QueueModel, TaskModel, WorkerModel
from firefly_tasks.queues import known_queues
from firefly_tasks.states import TaskStatus, WorkerState

HOUR = datetime.timedelta(hours=1)
MINUTES = 60
WORKER_LIMIT = 50
CURRENT_LIMIT = 3  # tasks listed per worker on the dashboard
FAILURE_LIMIT = 10

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
    ready: int = 0
    scheduled: int = 0
    running: int = 0
    failed_last_hour: int = 0
    oldest_ready: datetime.datetime | None = None
    per_minute: list[int] = field(default_factory=lambda: [0] * MINUTES)
    start: datetime.datetime | None = None
    now: datetime.datetime | None = None

    @property
    def oldest_ready_age(self) -> datetime.timedelta | None:
        if self.oldest_ready is None or self.now is None:
            return None
        return max(self.now - self.oldest_ready, datetime.timedelta(0))

    @property
    def completed_last_hour(self) -> int:
        return sum(self.per_minute)

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
    """The queue control rows and the known queues they help name: one query, shared by the
    regions of the dashboard's full page."""

    controls: list[QueueModel]
    names: list[str]

    @classmethod
    def load(cls) -> QueueCatalog:
        controls = list(QueueModel.objects.order_by("name"))
        return cls(controls, known_queues(control.name for control in controls))


def queue_stats(
    now: datetime.datetime | None = None, catalog: QueueCatalog | None = None
) -> list[QueueStats]:
    """Per queue: ready, scheduled and running tasks, failures and completions per minute over
    the last hour, the oldest ready task and the paused flag. Four queries in all."""
    now = now or timezone.now()
    start = now.replace(second=0, microsecond=0) - datetime.timedelta(minutes=MINUTES - 1)
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

    ready = Q(status=TaskStatus.CREATED, not_before__lte=now)
    depths = (
        TaskModel.objects.filter(status__in=(TaskStatus.CREATED, TaskStatus.RUNNING))
        .values("queue")
        .annotate(
            ready=Count("pk", filter=ready),
            scheduled=Count("pk", filter=Q(status=TaskStatus.CREATED, not_before__gt=now)),
            running=Count("pk", filter=Q(status=TaskStatus.RUNNING)),
            oldest_ready=Min("not_before", filter=ready),
        )
        .order_by()
    )
    for row in depths:
        queue = get(row["queue"])
        queue.ready, queue.scheduled, queue.running = row["ready"], row["scheduled"], row["running"]
        queue.oldest_ready = row["oldest_ready"]

    failures = (
        TaskModel.objects.filter(status=TaskStatus.FAILED, failed__gte=now - HOUR)
        .values("queue")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for failed in failures:
        get(failed["queue"]).failed_last_hour = failed["n"]

    completions = (
        TaskModel.objects.filter(completed__gte=start)
        .annotate(minute=TruncMinute("completed", tzinfo=datetime.UTC))
        .values("queue", "minute")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for completed in completions:
        index = int((completed["minute"] - start).total_seconds() // 60)
        if 0 <= index < MINUTES:
            get(completed["queue"]).per_minute[index] += completed["n"]

    return sorted(stats.values(), key=lambda queue: (not queue.known, queue.name))


@dataclass
class WorkerStatus:
    worker: WorkerModel
    liveness: str
    heartbeat_age: datetime.timedelta
    current: list[Any] = field(default_factory=list)
    holding: int = 0  # running and claimed tasks, of which ``current`` lists the first few

    @property
    def more(self) -> int:
        return self.holding - len(self.current)


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
    """Workers that run, or were heard from in the last hour, with what they run now."""
    now = now or timezone.now()
    workers = list(
        WorkerModel.objects.filter(
            Q(state__in=(WorkerState.RUNNING, WorkerState.STOPPING))
            | Q(last_heartbeat__gte=now - HOUR)
        ).order_by("-started", "-pk")[:WORKER_LIMIT]
    )
    statuses = {
        worker.pk: WorkerStatus(worker, liveness(worker, now), now - worker.last_heartbeat)
        for worker in workers
    }
    running = (
        TaskModel.objects.filter(status=TaskStatus.RUNNING, worker_id__in=list(statuses))
        .values("pk", "func_name", "worker_id", "started")
        .order_by("started")
    )
    if statuses:
        for row in running:
            status = statuses[row["worker_id"]]
            status.holding += 1
            # A batched claim holds many fast tasks at once: list a few, count the rest.
            if len(status.current) < CURRENT_LIMIT:
                status.current.append(row)
    return list(statuses.values())


def recent_failures(limit: int = FAILURE_LIMIT) -> QuerySet[TaskModel]:
    """The last failed tasks, newest first (served by the index on ``failed``)."""
    return (
        TaskModel.objects.filter(status=TaskStatus.FAILED, failed__isnull=False)
        .order_by("-failed")
        .only("pk", "func_name", "queue", "failed", "error")[:limit]
    )
