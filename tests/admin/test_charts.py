"""The charts page: throughput and failure bars over 1 h, 24 h and 7 d, per queue and task, and
wait and run percentiles, all from the rollups."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from firefly_admin.charts import RANGES, chart_page, nice_ceiling
from firefly_admin.percentiles import percentile, run_spread
from firefly_tasks.rollups import BOUNDS, BUCKETS, RUN_BUCKETS
from tests.admin.conftest import make_rollup

pytestmark = pytest.mark.django_db

CHARTS = reverse("admin:firefly_admin_task_charts")


def buckets(**counts: int) -> list[int]:
    """A histogram with ``b<index>=count`` set."""
    found = [0] * BUCKETS
    for name, value in counts.items():
        found[int(name[1:])] = value
    return found


def test_a_percentile_is_interpolated_within_its_bucket() -> None:
    # Bucket 9 holds (0.5 s, 1 s]: ten durations, the median is the fifth of them.
    found = percentile(buckets(b09=10), 0.5)
    assert found is not None and not found.above
    assert found.seconds == pytest.approx(0.75)
    # 90 fast ones in bucket 0 ((0, 1 ms]) and 10 slow ones in bucket 12 ((10 s, 60 s]).
    spread = run_spread(dict(zip(RUN_BUCKETS, buckets(b00=90, b12=10), strict=True)))
    assert spread.p50 is not None and spread.p50.seconds < BOUNDS[0]
    assert spread.p95 is not None and BOUNDS[11] < spread.p95.seconds <= BOUNDS[12]
    assert spread.p99 is not None and spread.p99.seconds > spread.p95.seconds


def test_a_percentile_in_the_open_last_bucket_is_above_the_last_bound() -> None:
    found = percentile(buckets(b00=1, b15=99), 0.99)
    assert found is not None and found.above and found.seconds == BOUNDS[-1]
    assert percentile([0] * BUCKETS, 0.5) is None


def test_the_y_axis_ends_at_a_round_number() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 3, 7, 10, 11, 180, 5001)] == [
        1, 1, 5, 10, 10, 20, 200, 10000,
    ]  # fmt: skip


@pytest.mark.parametrize("key", ["1h", "24h", "7d"])
def test_each_range_puts_attempts_in_their_bar_summed_over_writers(
    key: str, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    span = RANGES[key]
    now = timezone.now()
    start = span.start(now)
    # Two writers in the first bar, one in the last; one row just before the range.
    make_rollup(start, completed=2, failed=1)
    make_rollup(start + span.step / 2, slot=7, completed=3, retried=2)
    make_rollup(now, completed=5)
    make_rollup(start - datetime.timedelta(minutes=1), completed=100)
    with django_assert_num_queries(2):
        page = chart_page(now, span)
    assert len(page.buckets) == span.bars
    first, last = page.buckets[0], page.buckets[-1]
    assert (first.completed, first.failed, first.retried) == (5, 1, 2)
    assert (last.completed, last.failed, last.retried) == (5, 0, 0)
    assert sum(bucket.completed for bucket in page.buckets) == 10 == page.completed
    assert page.buckets[-1].start <= now < page.buckets[-1].start + span.step
    assert page.throughput_chart.peak == 5 and page.failure_chart.peak == 3
    assert page.failure_rate == pytest.approx(3 / 13)


def test_the_page_narrows_to_a_queue_and_a_task_with_their_percentiles() -> None:
    now = timezone.now()
    make_rollup(now, queue="mail", func_name="shop.send", completed=10, run_b09=10)
    make_rollup(now, queue="mail", func_name="shop.bounce", completed=1, run_b12=1)
    make_rollup(now, queue="default", func_name="shop.send", failed=4, run_b00=4, wait_b10=4)

    everything = chart_page(now, RANGES["1h"])
    assert [(line.queue, line.func_name) for line in everything.lines] == [
        ("mail", "shop.send"),
        ("default", "shop.send"),
        ("mail", "shop.bounce"),
    ]
    mail = chart_page(now, RANGES["1h"], queue="mail")
    assert mail.completed == 11 and mail.failed == 0
    send = chart_page(now, RANGES["1h"], queue="mail", task="shop.send")
    assert [line.func_name for line in send.lines] == ["shop.send"]
    assert send.run.p50 is not None and send.run.p50.seconds == pytest.approx(0.75)
    anywhere = chart_page(now, RANGES["1h"], task="shop.send")
    assert anywhere.completed == 10 and anywhere.failed == 4
    assert anywhere.wait.p99 is not None and BOUNDS[9] < anywhere.wait.p99.seconds <= BOUNDS[10]


def test_the_page_shows_axes_ranges_and_percentiles(operator_client: Client) -> None:
    now = timezone.now()
    make_rollup(now, queue="mail", completed=7, run_b09=7, wait_b03=7)
    make_rollup(now - datetime.timedelta(hours=3), queue="mail", completed=40, failed=2)

    hour = operator_client.get(CHARTS, {"queue": "mail"}).content.decode()
    assert 'aria-current="page" class="ff-range-current">1 hour' in hour
    # Completed: 0, 5 and 10; failed (none): 0 and 1 (no half of 1).
    assert hour.count('data-axis="y"') == 5
    assert 'data-axis="x"' in hour and 'class="ff-series-completed"' in hour
    assert '<dd data-figure="completed">7</dd>' in hour
    assert 'data-range="24h"' in hour and "range=24h&amp;queue=mail" in hour

    day = operator_client.get(CHARTS, {"range": "24h", "queue": "mail"}).content.decode()
    assert '<dd data-figure="completed">47</dd>' in day
    assert '<dd data-figure="failed">2</dd>' in day
    assert 'class="ff-series-failed"' in day


def test_an_unknown_range_shows_the_default_and_names_are_escaped(
    operator_client: Client,
) -> None:
    make_rollup(timezone.now(), queue="<b>q</b>", func_name="<script>x</script>", completed=1)
    page = operator_client.get(CHARTS, {"range": "1y"}).content.decode()
    assert 'aria-current="page" class="ff-range-current">1 hour' in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<b>q</b>" not in page


def test_the_charts_need_the_view_permission(staff_client: Callable[..., Client]) -> None:
    assert staff_client().get(CHARTS).status_code == 403
    assert staff_client("view_task", username="viewer").get(CHARTS).status_code == 200
    assert Client().get(CHARTS).status_code == 302  # to the login page
