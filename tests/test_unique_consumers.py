"""Unique keys with real processes: schedulers in two processes racing on one key while
consumers run the tasks. Every database."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from firefly_tasks.models import FINISHED_STATUSES, TaskModel
from tests.conftest import ROOT, Consumer, child_env, wait_until
from tests.testapp import tasks
from tests.testapp.models import Run

pytestmark = pytest.mark.slow

PROCESSES, THREADS, CALLS = 2, 8, 100


def test_sixteen_schedulers_in_two_processes_never_hold_one_key_twice(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    start_consumer("--concurrency", "4")
    start_consumer("--concurrency", "4")
    schedulers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.unique_schedulers", "shared", str(THREADS), str(CALLS)],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    unfinished_seen = set()
    while any(s.poll() is None for s in schedulers):
        unfinished = TaskModel.objects.filter(unique_key="shared").exclude(
            status__in=FINISHED_STATUSES
        )
        unfinished_seen.add(unfinished.count())
    counts = []
    for scheduler in schedulers:
        out, _ = scheduler.communicate(timeout=300)
        assert scheduler.returncode == 0, out
        counts.append(json.loads(out.strip().splitlines()[-1]))

    rows = TaskModel.objects.filter(unique_key="shared")
    wait_until(lambda: not rows.exclude(status__in=FINISHED_STATUSES).exists(), timeout=120)
    assert unfinished_seen <= {0, 1}
    assert sum(c["stored"] + c["deduplicated"] for c in counts) == PROCESSES * THREADS * CALLS
    assert sum(c["stored"] for c in counts) == rows.count()
    assert set(rows.values_list("status", "error")) == {("completed", "")}
    runs = list(Run.objects.filter(label="shared").order_by("began"))
    assert len(runs) == rows.count()
    for before, after in itertools.pairwise(runs):
        assert after.began >= before.ended, (before.task_id, after.task_id)

    again = tasks.record_interval.using(unique_key="shared").schedule("shared", 0)
    assert not again.deduplicated
    figure(calls=PROCESSES * THREADS * CALLS, stored=rows.count(), samples=len(unfinished_seen))
