"""Rate limits (``firefly_tasks.rates``): at most N starts a period for a key or a queue;
claims past the limit are undone, in the claim's transaction, to later start times."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django.utils import timezone

from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskAttempt, TaskModel, TaskStatus
from tests.testapp import tasks

two_a_second = tasks.add.using(rate_limit="2/s", rate_key="partner")


def claim(now: datetime.datetime, limit: int = 10) -> list[TaskModel]:
    claimed: list[TaskModel] = TaskModel.objects.claim(["default"], limit, now=now)
    return claimed


def test_claims_past_the_rate_are_undone_to_start_one_token_apart(db: None) -> None:
    rows = two_a_second.schedule_many([(i, 0) for i in range(5)])
    now = timezone.now()

    claimed = claim(now)

    assert [row.pk for row in claimed] == [rows[0].pk, rows[1].pk]
    later = TaskModel.objects.filter(pk__in=[row.pk for row in rows[2:]]).order_by("pk")
    assert {(row.status, row.attempt, row.worker_id) for row in later} == {("created", 0, None)}
    starts = [(row.not_before - now).total_seconds() for row in later]
    assert starts == pytest.approx([0.5, 1.0, 1.5])
    assert not TaskAttempt.objects.exists()


def test_a_throttled_task_starts_when_its_token_is_there(db: None) -> None:
    rows = two_a_second.schedule_many([(i, 0) for i in range(4)])
    now = timezone.now()
    claim(now)

    assert claim(now + datetime.timedelta(seconds=0.2)) == []  # not due, no token
    half = claim(now + datetime.timedelta(seconds=0.5))
    assert [row.pk for row in half] == [rows[2].pk]
    assert [row.pk for row in claim(now + datetime.timedelta(seconds=1.0))] == [rows[3].pk]


def test_after_a_quiet_period_a_burst_of_the_whole_count_starts_at_once(db: None) -> None:
    rows = two_a_second.schedule_many([(i, 0) for i in range(6)])
    now = timezone.now()
    claim(now, limit=2)  # two tokens used
    TaskModel.objects.filter(pk__in=[r.pk for r in rows[2:]]).update(not_before=now)

    # Ten seconds on, the bucket holds its capacity (2), not 20: the burst is the count.
    assert len(claim(now + datetime.timedelta(seconds=10))) == 2


def test_other_work_is_claimed_meanwhile(db: None) -> None:
    two_a_second.schedule_many([(i, 0) for i in range(20)])
    plain = tasks.add.schedule_many([(1, 2), (3, 4)])

    claimed = {row.pk for row in claim(timezone.now(), limit=30)}

    assert {plain[0].pk, plain[1].pk} <= claimed and len(claimed) == 4


def test_a_backlog_is_spread_at_the_rate_across_claims(db: None) -> None:
    one_a_second = tasks.add.using(rate_limit="1/s")
    one_a_second.schedule_many([(i, 0) for i in range(30)])
    now = timezone.now()

    assert len(claim(now, limit=10)) == 1
    assert len(claim(now, limit=10)) == 0  # no token; these ten go after the first nine
    assert len(claim(now, limit=10)) == 0

    starts = sorted(
        TaskModel.objects.filter(status=TaskStatus.CREATED).values_list("not_before", flat=True)
    )
    gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(starts)}
    assert len(starts) == 29 and gaps == {1.0}


@override_settings(FIREFLY_QUEUES=[{"name": "default", "rate": "3/m"}])
def test_a_queue_rate_limits_every_task_of_the_queue(db: None) -> None:
    tasks.add.schedule_many([(i, 0) for i in range(5)])
    now = timezone.now()
    assert len(claim(now)) == 3
    assert claim(now + datetime.timedelta(seconds=19)) == []
    assert len(claim(now + datetime.timedelta(seconds=20))) == 1


def test_the_rate_key_defaults_to_the_task_name(db: None) -> None:
    row = tasks.add.using(rate_limit="10/m").schedule(1, 2)
    assert (row.rate_key, row.rate_limit, row.min_engine) == ("tests.testapp.tasks.add", "10/m", 3)


@pytest.mark.parametrize("rate", ["100", "0/s", "10/x", "abc/m", "10/ s", 5, "100001/s"])
def test_a_malformed_rate_is_refused_at_once(rate: Any) -> None:
    with pytest.raises(InvalidTaskError, match='rate_limit must be like "100/m"'):
        tasks.add.using(rate_limit=rate)


def test_a_rate_key_needs_a_rate() -> None:
    with pytest.raises(InvalidTaskError, match="rate_key needs a rate_limit"):
        tasks.add.using(rate_key="partner")


@pytest.mark.parametrize("rate", ["fast", "0/m", 10])
def test_a_bad_queue_rate_fails_its_check(rate: object) -> None:
    with override_settings(FIREFLY_QUEUES=[{"name": "emails", "rate": rate}]):
        ids = [message.id for message in run_checks()]
    assert "firefly_tasks.E011" in ids
