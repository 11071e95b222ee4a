"""The Prometheus page: scraped and parsed by the Prometheus project's own text parser, its
token and permission enforced, its numbers those of the tables."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from firefly_tasks.models import TaskRollup, WorkerState
from firefly_tasks.testing import run_pending_tasks
from tests.admin.conftest import make_rollup, make_worker
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

URL = "/admin/firefly_admin/task/metrics/"
TOKEN = "s3cret-scrape-token"
ADD = tasks.add.name


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def scrape(client: Client | None = None, token: str | None = TOKEN) -> dict[tuple[Any, ...], float]:
    """Every sample, by name and sorted labels, as a scraper reads them."""
    client = client or Client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN=TOKEN):
        response = client.get(URL, headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict[tuple[Any, ...], float], name: str, **labels: str) -> float:
    return samples[(name, *sorted(labels.items()))]


def test_a_scraper_needs_the_token_and_a_person_the_view_permission(
    staff_client: Callable[..., Client],
) -> None:
    anonymous = Client()
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN=TOKEN):
        assert anonymous.get(URL).status_code == 403
        assert anonymous.get(URL, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert anonymous.get(URL, headers={"Authorization": TOKEN}).status_code == 403
        assert anonymous.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert staff_client(username="nobody").get(URL).status_code == 403
        assert staff_client("view_task", username="viewer").get(URL).status_code == 200
    # No token configured: no bearer gets in, whatever it sends.
    with override_settings(FIREFLY_ADMIN_METRICS_TOKEN=None):
        assert anonymous.get(URL, headers={"Authorization": "Bearer "}).status_code == 403
        assert anonymous.get(URL, headers={"Authorization": "Bearer None"}).status_code == 403


def test_queue_depths_oldest_ready_age_and_pauses_are_the_live_tables() -> None:
    tasks.add.schedule_many([(1, 1), (2, 2)])
    tasks.write_note_other_queue.schedule("later", eta=timezone.now() + datetime.timedelta(hours=1))
    from firefly_tasks.queues import pause_queue

    pause_queue("other")

    samples = scrape()

    assert sample(samples, "firefly_queue_tasks", queue="default", state="ready") == 2
    assert sample(samples, "firefly_queue_tasks", queue="default", state="scheduled") == 0
    assert sample(samples, "firefly_queue_tasks", queue="other", state="scheduled") == 1
    assert sample(samples, "firefly_queue_tasks", queue="other", state="ready") == 0
    assert 0 <= sample(samples, "firefly_queue_oldest_ready_age_seconds", queue="default") < 60
    assert sample(samples, "firefly_queue_oldest_ready_age_seconds", queue="other") == 0
    assert sample(samples, "firefly_queue_paused", queue="other") == 1
    assert sample(samples, "firefly_queue_paused", queue="default") == 0


def test_workers_are_counted_by_liveness() -> None:
    now = timezone.now()
    make_worker("alive:1", last_heartbeat=now)
    make_worker("gone:2", last_heartbeat=now - datetime.timedelta(minutes=5))
    make_worker("stopped:3", state=WorkerState.STOPPED, last_heartbeat=now)

    samples = scrape()

    assert sample(samples, "firefly_workers", liveness="alive") == 1
    assert sample(samples, "firefly_workers", liveness="dead") == 1
    assert sample(samples, "firefly_workers", liveness="stopped") == 1
    assert sample(samples, "firefly_workers", liveness="late") == 0
    age = sample(
        samples, "firefly_worker_heartbeat_age_seconds", worker="alive:1", hostname="web-1"
    )
    assert 0 <= age < 60


def test_finished_attempts_are_counters_and_histograms_from_the_rollups() -> None:
    tasks.add.schedule_many([(1, 1), (2, 2), (3, 3)])
    tasks.always_fail.schedule()  # max_retries=2: two retried attempts, then failed for good
    assert run_pending_tasks() == 3 + 3

    samples = scrape()

    labels = {"queue": "default", "task": ADD}
    assert sample(samples, "firefly_tasks_completed_total", **labels) == 3
    failing = {"queue": "default", "task": tasks.always_fail.name}
    assert sample(samples, "firefly_tasks_retried_total", **failing) == 2
    assert sample(samples, "firefly_tasks_failed_total", **failing) == 1
    assert sample(samples, "firefly_task_run_seconds_count", **labels) == 3
    assert sample(samples, "firefly_task_run_seconds_bucket", le="+Inf", **labels) == 3
    assert sample(samples, "firefly_task_wait_seconds_count", **failing) == 3
    assert sample(samples, "firefly_task_run_seconds_sum", **labels) >= 0


def test_bucket_counts_are_cumulative_and_end_at_the_count() -> None:
    minute = timezone.now() - datetime.timedelta(hours=2)
    # One attempt of 0.5 ms (first bucket), two of 3 s (the 10 s bucket), one of an hour.
    make_rollup(minute, completed=4, run_seconds=3606, run_b00=1, run_b11=2, run_b15=1)

    samples = scrape()

    labels = {"queue": "default", "task": ADD}
    assert sample(samples, "firefly_task_run_seconds_bucket", le="0.001", **labels) == 1
    assert sample(samples, "firefly_task_run_seconds_bucket", le="2.5", **labels) == 1
    assert sample(samples, "firefly_task_run_seconds_bucket", le="10.0", **labels) == 3
    assert sample(samples, "firefly_task_run_seconds_bucket", le="1800.0", **labels) == 3
    assert sample(samples, "firefly_task_run_seconds_bucket", le="+Inf", **labels) == 4
    assert sample(samples, "firefly_task_run_seconds_count", **labels) == 4
    assert sample(samples, "firefly_task_run_seconds_sum", **labels) == 3606


def test_settled_minutes_are_read_once_and_the_counters_never_go_back() -> None:
    now = timezone.now()
    labels = {"queue": "default", "task": ADD}
    make_rollup(now - datetime.timedelta(days=3), completed=100)
    make_rollup(now - datetime.timedelta(hours=1), completed=20)
    make_rollup(now, completed=3, worker_id=2)
    assert sample(scrape(), "firefly_tasks_completed_total", **labels) == 123

    # The current minute is read again at every scrape; the settled ones come from the cache,
    # so pruning them (prune_tasks --rollup-days) does not make the counter go back.
    make_rollup(now, completed=4, worker_id=3)
    TaskRollup.objects.filter(minute__lt=now - datetime.timedelta(days=1)).delete()
    assert sample(scrape(), "firefly_tasks_completed_total", **labels) == 127

    # Lost cache: everything is read again (a counter reset, as Prometheus expects them).
    cache.clear()
    assert sample(scrape(), "firefly_tasks_completed_total", **labels) == 27
