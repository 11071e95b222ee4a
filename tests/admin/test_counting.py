"""Counting for the task list: capped counts, and exact counts the database stops in time."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from pytest_django import Settings

from firefly_admin.counting import Count, capped_count, exact_count
from firefly_tasks.models import TaskModel
from tests.testapp import tasks

# A condition that takes many seconds on every database: a billion rows, three copies of a
# thousand cross-joined (MariaDB stops recursion at 1,000 iterations by default), in an
# uncorrelated subquery evaluated once, however few rows the table holds.
SLOW = (
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)"
    " SELECT COUNT(*) FROM c a, c b, c d) > 0"
)


def statement_deadline() -> object:
    """What the connection's own statement deadline is now (None on SQLite)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW statement_timeout")
        elif connection.vendor == "mysql":
            cursor.execute("SELECT @@SESSION.max_statement_time")
        else:
            return None
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (Count(0), "0"),
        (Count(1234), "1,234"),
        (Count(10_000, capped=True), "10,000+"),
        (Count(1_234_567), "1,234,567"),
    ],
)
def test_a_count_reads_with_thousands_separators_and_a_plus_when_capped(
    count: Count, shown: str
) -> None:
    assert str(count) == shown


def test_capped_count_stops_at_its_limit(db: None) -> None:
    tasks.add.schedule_many([(i, i) for i in range(8)])

    assert capped_count(TaskModel.objects.all(), limit=5) == Count(5, capped=True)
    assert capped_count(TaskModel.objects.all(), limit=8) == Count(8)


def test_exact_count_counts_past_the_cap(db: None) -> None:
    tasks.add.schedule_many([(i, i) for i in range(12)])

    assert exact_count(TaskModel.objects.all(), Count(10, capped=True)) == Count(12)
    assert exact_count(TaskModel.objects.filter(pk__lt=0), Count(0)) == Count(0)


def test_the_database_stops_an_exact_count_at_the_timeout_and_stays_usable(
    db: None, settings: Settings
) -> None:
    settings.FIREFLY_ADMIN_COUNT_TIMEOUT = 0.2
    tasks.add.schedule_many([(i, i) for i in range(3)])
    before = statement_deadline()
    slow = TaskModel.objects.extra(where=[SLOW])

    began = time.monotonic()
    count = exact_count(slow, capped=Count(2, capped=True))
    elapsed = time.monotonic() - began

    assert count == Count(2, capped=True, stopped_after=0.2)
    assert elapsed < 3, f"the count ran {elapsed:.1f} s"
    # The deadline was the count's alone: later statements run as long as they need.
    assert statement_deadline() == before
    time.sleep(0.3)
    assert TaskModel.objects.count() == 3
