"""The dashboard's numbers for Prometheus: ``/admin/firefly_admin/task/metrics/``.

Rendered by ``prometheus_client``, the Prometheus project's own library (its exposition format,
label escaping and histogram conventions are the reference ones), from two sources:

- live gauges, by the dashboard's own bounded queries (``firefly_admin.metrics``): tasks per
  queue and state, the age of each queue's oldest ready task, paused queues, workers by
  liveness and their heartbeats' age;
- counters and histograms of finished attempts, from the per-minute rollups: completed, failed,
  retried, and run and wait time, per queue and task. Totals of minutes older than
  :data:`SETTLED` are kept in Django's cache and only the minutes since are read at each scrape,
  so a scrape costs a few indexed rows however long the rollups go back. A cache that loses them
  (or ``prune_tasks`` deleting old rollups before it is filled again) shows as a counter reset,
  which Prometheus' ``rate()`` handles.

Access: ``Authorization: Bearer <FIREFLY_ADMIN_METRICS_TOKEN>`` (compared in constant time), or a
logged-in staff member with ``firefly_admin.view_task``.
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from firefly_admin import metrics
from firefly_admin.conf import settings
from firefly_tasks.models import TaskRollup
from firefly_tasks.rollups import BOUNDS, RUN_BUCKETS, WAIT_BUCKETS

# Rollup minutes older than this are complete: the transactions that add to a minute commit
# within seconds of it.
SETTLED = datetime.timedelta(minutes=5)
CACHE_KEY = "firefly_admin:prometheus:settled-rollups:v1"
STATES = ("ready", "scheduled", "running", "blocked")
LIVENESS = ("alive", "late", "dead", "stopped")
COUNTS = ("completed", "failed", "retried", "run_seconds", "wait_seconds")
SUMMED = (*COUNTS, *RUN_BUCKETS, *WAIT_BUCKETS)


@dataclass
class Totals:
    """Finished attempts of one queue and task, summed over rollup minutes."""

    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUMMED, 0.0))

    def add(self, row: dict[str, Any]) -> None:
        for name in SUMMED:
            self.values[name] += row[f"sum_{name}"] or 0


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition text, for a scraper holding the token or an operator who may view tasks."""
    if not _allowed(request):
        return HttpResponse(
            "Forbidden: a bearer token or a staff login is needed.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        return HttpResponse(
            "prometheus_client is not installed: pip install firefly-tasks[metrics]\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(timezone.now()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer "):
        return hmac.compare_digest(sent.removeprefix("Bearer ").encode(), token.encode())
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm("firefly_admin.view_task"))


class Collector:
    """Yields every metric family once per scrape (``prometheus_client``'s collector API)."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Any]:
        yield from self._queues()
        yield from self._workers()
        yield from self._attempts()

    def _queues(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        tasks = GaugeMetricFamily(
            "firefly_queue_tasks", "Unfinished tasks by queue and state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "firefly_queue_oldest_ready_age_seconds",
            "How long the oldest ready task of the queue has waited (0: none ready).",
            labels=["queue"],
        )
        paused = GaugeMetricFamily("firefly_queue_paused", "1 while paused.", labels=["queue"])
        for queue in metrics.queue_stats(self.now):
            for state in STATES:
                tasks.add_metric([queue.name, state], getattr(queue, state))
            waited = (self.now - queue.oldest_ready).total_seconds() if queue.oldest_ready else 0
            oldest.add_metric([queue.name], max(waited, 0.0))
            paused.add_metric([queue.name], int(queue.paused))
        yield from (tasks, oldest, paused)

    def _workers(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        by_liveness = dict.fromkeys(LIVENESS, 0)
        heartbeat = GaugeMetricFamily(
            "firefly_worker_heartbeat_age_seconds",
            "Seconds since each running consumer's last heartbeat.",
            labels=["worker", "hostname"],
        )
        for status in metrics.worker_statuses(self.now):
            by_liveness[status.liveness] += 1
            if status.liveness in ("alive", "late"):
                labels = [status.worker.name, status.worker.hostname]
                heartbeat.add_metric(labels, status.heartbeat_age.total_seconds())
        workers = GaugeMetricFamily(
            "firefly_workers",
            "Consumers running or heard from in the last hour, by liveness (alive, late: a "
            "heartbeat overdue, dead: silent past FIREFLY_WORKER_TIMEOUT, stopped).",
            labels=["liveness"],
        )
        for liveness, count in by_liveness.items():
            workers.add_metric([liveness], count)
        yield from (workers, heartbeat)

    def _attempts(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        labels = ["queue", "task"]
        counters = {
            name: CounterMetricFamily(f"firefly_tasks_{name}", text, labels=labels)
            for name, text in (
                ("completed", "Attempts that completed."),
                ("failed", "Attempts that failed for good (no retry left)."),
                ("retried", "Attempts that failed and were retried."),
            )
        }
        run = HistogramMetricFamily(
            "firefly_task_run_seconds", "Run time of finished attempts.", labels=labels
        )
        wait = HistogramMetricFamily(
            "firefly_task_wait_seconds",
            "Time from ready (eta or retry delay) to each finished attempt's start.",
            labels=labels,
        )
        for (queue, task), totals in sorted(rollup_totals(self.now).items()):
            values = totals.values
            for name, counter in counters.items():
                counter.add_metric([queue, task], values[name])
            run.add_metric([queue, task], _buckets(values, RUN_BUCKETS), values["run_seconds"])
            wait.add_metric([queue, task], _buckets(values, WAIT_BUCKETS), values["wait_seconds"])
        yield from (*counters.values(), run, wait)


def _buckets(values: dict[str, float], names: tuple[str, ...]) -> list[tuple[str, float]]:
    """The rollup's per-bucket counts as Prometheus' cumulative ``le`` buckets."""
    cumulative, total = [], 0.0
    for bound, name in zip((*BOUNDS, float("inf")), names, strict=True):
        total += values[name]
        cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return cumulative


def rollup_totals(now: datetime.datetime) -> dict[tuple[str, str], Totals]:
    """Every queue's and task's finished attempts: the settled minutes' totals from the cache
    (brought up to date with the minutes settled since), plus the minutes after them."""
    settled = now.replace(second=0, microsecond=0) - SETTLED
    cached = cache.get(CACHE_KEY)
    since, base = cached if cached else (None, {})
    if since is None or since < settled:
        for key, row in _sums(since, settled).items():
            base.setdefault(key, Totals()).add(row)
        cache.set(CACHE_KEY, (settled, base), timeout=None)
        since = settled
    totals = {key: Totals(dict(value.values)) for key, value in base.items()}
    for key, row in _sums(since, None).items():
        totals.setdefault(key, Totals()).add(row)
    return totals


def _sums(
    since: datetime.datetime | None, until: datetime.datetime | None
) -> dict[tuple[str, str], dict[str, Any]]:
    rows = TaskRollup.objects.all()
    if since is not None:
        rows = rows.filter(minute__gte=since)
    if until is not None:
        rows = rows.filter(minute__lt=until)
    sums = {f"sum_{name}": Sum(name) for name in SUMMED}
    grouped = rows.values("queue", "func_name").annotate(**sums).order_by()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in grouped:
        found[row["queue"], row["func_name"]] = dict(row)
    return found
