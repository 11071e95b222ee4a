"""``FIREFLY_DATABASE``: the queue on a database of its own, the tasks' writes on the default
one. The engines are paired by tests/settings.py: SQLite with an SQLite queue in a second file
(and, in CI, with a PostgreSQL queue), PostgreSQL with a queue on a second PostgreSQL database,
MariaDB with an SQLite queue."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core import checks
from django.core.management import call_command
from django.db import connections, transaction
from django.test import Client, override_settings

from firefly_tasks.models import QueueModel, TaskAttempt, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.routers import FireflyRouter
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import Consumer, wait_until
from tests.testapp import queue_tasks, tasks
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "queue"])

QUEUE = {"FIREFLY_DATABASE": "queue"}
FAST = {"FIREFLY_HEARTBEAT_INTERVAL": 0.2, "FIREFLY_WORKER_TIMEOUT": 1.0}


@pytest.fixture(autouse=True)
def on_the_queue_database() -> Iterator[None]:
    with override_settings(**QUEUE):
        yield


def on(alias: str) -> int:
    """How many tasks the ``alias`` database holds."""
    return TaskModel.objects.using(alias).count()


def notes() -> list[str]:
    return sorted(Note.objects.using("default").values_list("text", flat=True))


def engines() -> str:
    return f"{connections['default'].vendor}+{connections['queue'].vendor}"


def test_the_router_sends_fireflys_models_to_its_database_and_no_other_model() -> None:
    router = FireflyRouter()
    assert router.db_for_write(TaskModel) == "queue"
    assert router.db_for_read(WorkerModel) == "queue"
    assert router.db_for_read(Note) is None
    assert router.allow_migrate("queue", "firefly_tasks") is True
    assert router.allow_migrate("queue", "firefly_admin") is True
    assert router.allow_migrate("default", "firefly_tasks") is False
    assert router.allow_migrate("queue", "auth") is False  # the queue's database holds Firefly's
    assert router.allow_migrate("default", "auth") is None
    with override_settings(FIREFLY_DATABASE="default"):
        assert router.db_for_write(TaskModel) == "default"
        assert router.allow_migrate("default", "firefly_tasks") is True
        assert router.allow_migrate("default", "auth") is None


def test_checks_name_a_missing_alias_and_a_missing_router() -> None:
    def ids() -> set[str]:
        return {m.id for m in checks.run_checks() if m.id and m.id.startswith("firefly_tasks.E01")}

    assert ids() == set()
    with override_settings(FIREFLY_DATABASE="tasks"):
        assert ids() == {"firefly_tasks.E012"}
    with override_settings(DATABASE_ROUTERS=[]):
        assert ids() == {"firefly_tasks.E013"}
    with override_settings(DATABASE_ROUTERS=[], FIREFLY_DATABASE="default"):
        assert ids() == set()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_listen_database_must_be_a_postgresql_alias() -> None:
    def ids() -> set[str]:
        return {m.id for m in checks.run_checks() if m.id == "firefly_tasks.E014"}

    assert ids() == set()  # unset
    for wrong in ("nowhere", 5):
        with override_settings(FIREFLY_LISTEN_DATABASE=wrong):
            assert ids() == {"firefly_tasks.E014"}
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "app"}
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    for engine, expected in ((postgres, set()), (sqlite, {"firefly_tasks.E014"})):
        databases = {**settings.DATABASES, "direct": engine}
        with override_settings(DATABASES=databases, FIREFLY_LISTEN_DATABASE="direct"):
            assert ids() == expected


def test_schedule_writes_to_the_queue_database_and_run_pending_tasks_runs_there() -> None:
    row = queue_tasks.note_and_schedule.schedule("a")

    assert (on("queue"), on("default")) == (1, 0)
    assert row._state.db == "queue"
    assert run_pending_tasks() == 2

    assert notes() == ["a", "a-child"]
    assert set(TaskModel.objects.values_list("status", flat=True)) == {TaskStatus.COMPLETED}
    assert (on("queue"), on("default")) == (2, 0)


def test_an_atomic_task_that_fails_rolls_back_its_writes_on_both_databases() -> None:
    row = queue_tasks.note_and_schedule_then_fail.schedule("b")

    assert run_pending_tasks() == 1

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED and "failed after writing b" in row.error
    assert notes() == []  # its note (default database) rolled back
    assert on("queue") == 1  # and so did the task it scheduled (queue database)


def test_schedule_on_commit_stores_the_call_only_when_the_default_database_commits() -> None:
    with transaction.atomic(using="default"):
        tasks.write_note.schedule_on_commit("kept")
        assert on("queue") == 0
    assert list(TaskModel.objects.values_list("func_name", flat=True)) == [
        "tests.testapp.tasks.write_note"
    ]

    with pytest.raises(RuntimeError), transaction.atomic(using="default"):
        tasks.write_note.schedule_on_commit("dropped")
        raise RuntimeError("the caller's transaction rolls back")
    assert on("queue") == 1

    # schedule() inside the caller's transaction commits on the queue database at once.
    with pytest.raises(RuntimeError), transaction.atomic(using="default"):
        tasks.write_note.schedule("committed anyway")
        raise RuntimeError("the caller's transaction rolls back")
    assert on("queue") == 2


def test_schedule_on_commit_checks_the_call_at_once() -> None:
    from firefly_tasks.exceptions import InvalidTaskError

    with pytest.raises((InvalidTaskError, TypeError, ValueError)), transaction.atomic():
        tasks.write_note.schedule_on_commit(object())
    assert on("queue") == 0


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_consumers_run_tasks_writing_to_both_databases_exactly_once(
    pool: str, start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    texts = [f"n{i}" for i in range(150)]
    queue_tasks.note_and_schedule.schedule_many([(text,) for text in texts])
    queue_tasks.note_and_schedule_then_fail.schedule_many([("x1",), ("x2",)])
    args = ("--pool", pool, "--concurrency", "2")
    consumers = [start_consumer(*args, **QUEUE) for _ in range(2)]
    # Both registered (so both handle SIGTERM) before the queue may be empty.
    wait_until(lambda: WorkerModel.objects.count() == 2, 60)

    finished = (TaskStatus.COMPLETED, TaskStatus.FAILED)

    def drained() -> bool:
        total = TaskModel.objects.count()
        return total == 2 * len(texts) + 2 and not TaskModel.objects.exclude(status__in=finished)

    wait_until(drained, 60)

    for consumer in consumers:
        consumer.signal(signal.SIGTERM)
        assert consumer.wait() == 0
    print(
        "DEBUG", list(TaskModel.objects.filter(status="failed").values_list("func_name", "error"))
    )
    print(
        "DEBUG2",
        list(
            TaskAttempt.objects.exclude(outcome="completed").values_list(
                "task__func_name", "outcome", "error"
            )
        ),
    )
    # Every note once: the parents' and their children's; the failing tasks' none.
    assert notes() == sorted([*texts, *(f"{text}-child" for text in texts)])
    assert TaskModel.objects.filter(status=TaskStatus.FAILED).count() == 2
    assert on("default") == 0
    assert WorkerModel.objects.count() == 2 and WorkerModel.objects.using("default").count() == 0
    figure(engines=engines(), pool=pool, tasks=TaskModel.objects.count(), notes=len(notes()))


def test_a_consumer_killed_between_the_two_commits_runs_the_task_again(
    start_consumer: Callable[..., Consumer], figure: Callable[..., None]
) -> None:
    row = queue_tasks.note_then_die_between_commits.schedule("once")
    victim = start_consumer(**QUEUE, **FAST)
    assert victim.wait(60) == -signal.SIGKILL

    # Killed after the default database committed the note, before the queue database
    # committed the completion: the note is there, and the task still runs its first attempt.
    assert notes() == ["once"]
    row.refresh_from_db()
    assert (row.status, row.attempt) == (TaskStatus.RUNNING, 1)

    rescuer = start_consumer(**QUEUE, **FAST)
    wait_until(lambda: TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED, 60)
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0

    # At least once, never done without its writes: it ran again, and wrote again.
    assert notes() == ["once", "once"]
    outcomes = list(
        TaskAttempt.objects.filter(task_id=row.pk).order_by("number").values_list("outcome")
    )
    assert outcomes == [("released",), ("completed",)]
    figure(engines=engines(), runs=len(notes()))


def test_the_dashboard_lists_and_requeues_the_queue_databases_tasks(
    admin_client: Client,
) -> None:
    failed = queue_tasks.note_and_schedule_then_fail.schedule("dash")
    run_pending_tasks()
    response = admin_client.get("/admin/firefly_admin/task/")
    assert response.status_code == 200
    assert "note_and_schedule_then_fail" in response.content.decode()
    assert admin_client.get(f"/admin/firefly_admin/task/{failed.pk}/change/").status_code == 200
    assert admin_client.get("/admin/firefly_admin/worker/").status_code == 200

    response = admin_client.post(
        "/admin/firefly_admin/task/",
        {"action": "requeue_tasks", "_selected_action": [failed.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    failed.refresh_from_db()
    assert failed.status == TaskStatus.CREATED
    assert on("default") == 0

    dashboard = "/admin/firefly_admin/task/dashboard/"
    assert admin_client.get(dashboard).status_code == 200
    assert admin_client.get(dashboard, HTTP_HX_REQUEST="true").status_code == 200
    paused = admin_client.post(f"{dashboard}pause/", {"queue": "default", "reason": "deploy"})
    assert paused.status_code == 302
    assert QueueModel.objects.using("queue").get(name="default").paused
    # The dashboard's history goes where the admin's does: the default database.
    assert LogEntry.objects.using("default").count() == 2


def test_prune_tasks_and_recovery_work_on_the_queue_database() -> None:
    tasks.add.schedule(1, 2)
    run_pending_tasks()
    TaskModel.objects.update(completed="2000-01-01T00:00:00Z")
    call_command("prune_tasks", "--days", "1", verbosity=0)
    assert on("queue") == 0


def test_the_scheduler_stores_ticks_on_the_queue_database() -> None:
    import datetime

    from firefly_tasks import ticks
    from firefly_tasks.clock import database_now
    from firefly_tasks.models import ScheduleModel

    now = database_now()
    assert now is not None
    ScheduleModel.objects.create(
        name="hourly",
        func_name="tests.testapp.tasks.write_note",
        every=datetime.timedelta(hours=1),
        anchor=now - datetime.timedelta(days=1),
        params_data='[["tick"], {}]',
        next_tick=now - datetime.timedelta(seconds=1),
    )
    assert ScheduleModel.objects.using("default").count() == 0

    assert ticks.enqueue_due()[0] == 1
    assert run_pending_tasks() == 1
    assert notes() == ["tick"]
    assert (on("queue"), on("default")) == (1, 0)


def test_a_chain_passes_results_and_promotes_on_the_queue_database() -> None:
    from firefly_tasks.workflows import chain, group

    _first, second = chain(tasks.add.s(1, 2), tasks.add.s(10)).schedule()
    _members, callback = group(tasks.add.s(i, i) for i in range(3)).then(tasks.echo.s()).schedule()

    assert callback is not None
    assert run_pending_tasks() == 2 + 3 + 1
    second.refresh_from_db()
    callback.refresh_from_db()
    assert (second.status, second.returned) == (TaskStatus.COMPLETED, 13)
    assert callback.returned == [0, 2, 4]
    assert on("default") == 0
