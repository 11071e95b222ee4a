"""FireflyBackend against the Django Tasks framework's documented behaviour (DEP 14).

Runs on ``django.tasks`` (Django 6) and on the ``django_tasks`` backport (Django 5.2, the
``dep14`` extra). The framework's reference: https://docs.djangoproject.com/en/stable/ref/tasks/
"""

from __future__ import annotations

import datetime
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from firefly_tasks.exceptions import UnknownTaskError
from firefly_tasks.models import AttemptOutcome, Isolation, TaskModel, TaskStatus, WorkerModel
from firefly_tasks.registry import registry
from firefly_tasks.testing import run_pending_tasks
from tests.conftest import Consumer, run_pending_in_thread, wait_until
from tests.dep14 import TASKS, require_framework
from tests.testapp import tasks as firefly_tasks
from tests.testapp.models import Note

installed_framework = require_framework()

from firefly_tasks import backends  # noqa: E402 - needs the framework
from firefly_tasks.dep14 import framework as dep14_framework  # noqa: E402
from tests.dep14 import InvalidTask, exceptions, signals  # noqa: E402

if TYPE_CHECKING:
    from django.tasks import TaskResult

framework = installed_framework  # a module from here on, never None

with override_settings(TASKS=TASKS):
    # Defining a task validates it against its backend, so TASKS must be there.
    from tests.testapp import dep14_tasks as t

Status = framework.TaskResultStatus
FireflyBackend = backends.FireflyBackend


@pytest.fixture(autouse=True)
def tasks_setting() -> Iterator[None]:
    with override_settings(TASKS=TASKS):
        yield


def consume(start_consumer: Callable[..., Consumer], *args: str) -> WorkerModel:
    """Run a ``--burst`` consumer process to the end; return its worker row."""
    consumer = start_consumer("--burst", *args, TASKS=TASKS)
    assert consumer.wait(120) == 0, consumer.output()
    return WorkerModel.objects.get(pid=consumer.pid)


def row_of(result: Any) -> TaskModel:
    return TaskModel.objects.get(pk=int(result.id))


# The backend --------------------------------------------------------------------------------


def test_firefly_backend_is_the_configured_backend_and_supports_everything() -> None:
    backend = framework.task_backends["default"]

    assert isinstance(backend, FireflyBackend)
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_the_builtin_framework_is_used_on_django_6_and_the_backport_before() -> None:
    expected = "django.tasks" if django.VERSION >= (6,) else "django_tasks"

    assert backends.FRAMEWORK == expected == framework.__name__
    assert dep14_framework.TaskResult is framework.TaskResult


def test_invalid_task_is_the_frameworks_exception_whatever_its_name() -> None:
    # Django 6 calls it InvalidTask, the backport InvalidTaskError.
    assert dep14_framework.InvalidTask is InvalidTask
    assert dep14_framework.TaskResultDoesNotExist is exceptions.TaskResultDoesNotExist


# Enqueueing ---------------------------------------------------------------------------------


def test_enqueue_returns_a_ready_result_backed_by_a_row(db: None) -> None:
    result = t.add.enqueue(2, b=3)

    assert result.status == Status.READY
    assert isinstance(result.id, str) and 0 < len(result.id) < 64
    assert result.task == t.add
    assert result.args == [2]
    assert result.kwargs == {"b": 3}
    assert result.backend == "default"
    assert result.enqueued_at is not None
    assert result.started_at is result.finished_at is result.last_attempted_at is None
    assert result.errors == []
    assert result.worker_ids == []
    assert result.attempts == 0
    assert not result.is_finished
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018
    row = row_of(result)
    assert row.func_name == t.add.module_path == "tests.testapp.dep14_tasks.add"
    assert row.backend == "default"
    assert (row.queue, row.priority, row.status) == ("default", 0, TaskStatus.CREATED)
    assert row.params == {"args": (2,), "kwargs": {"b": 3}}


def test_enqueue_sends_task_enqueued_with_the_backend_class_as_sender(db: None) -> None:
    received = []

    def receiver(sender: type, task_result: TaskResult[..., Any], **kwargs: object) -> None:
        received.append((sender, task_result.status, task_result.id))

    signals.task_enqueued.connect(receiver)
    try:
        result = t.add.enqueue(1, 2)
    finally:
        signals.task_enqueued.disconnect(receiver)

    assert received == [(FireflyBackend, Status.READY, result.id)]


def test_using_changes_queue_priority_and_backend_of_the_row(db: None) -> None:
    result = t.add.using(queue_name="other", priority=-7, backend="retrying").enqueue(1, 1)

    row = row_of(result)
    assert (row.queue, row.priority, row.backend) == ("other", -7, "retrying")
    assert row.max_retries == 1
    assert result.backend == "retrying"
    assert framework.task_backends["retrying"].get_result(result.id).task.queue_name == "other"


def test_arguments_make_the_json_round_trip_the_framework_specifies(db: None) -> None:
    result = t.echo.enqueue({"tuple": (1, 2), 7: "int key"})

    # Tuples become lists and keys strings, as json.dumps/json.loads would make them.
    assert result.args == [{"tuple": [1, 2], "7": "int key"}]
    run_pending_tasks()
    result.refresh()
    assert result.return_value == {"tuple": [1, 2], "7": "int key"}


@pytest.mark.parametrize("value", [datetime.datetime(2030, 1, 1), object(), {1, 2}])
def test_unserializable_arguments_raise_type_error_and_store_nothing(
    db: None, value: object
) -> None:
    with pytest.raises(TypeError):
        t.echo.enqueue(value)

    assert not TaskModel.objects.exists()


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_rows_are_json_even_when_firefly_pickles(db: None) -> None:
    result = t.add.enqueue(1, 2)

    assert row_of(result).serializer == "json"


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_runs_the_task_at_enqueue(db: None) -> None:
    result = t.add.enqueue(2, 3)

    assert result.status == Status.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [backends.IN_PROCESS_WORKER]


# Invalid tasks --------------------------------------------------------------------------------


def test_queue_outside_the_backend_queues_is_invalid() -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        t.add.using(queue_name="nope")


@pytest.mark.parametrize("priority", [-101, 101])
def test_priority_outside_minus_100_to_100_is_invalid(priority: int) -> None:
    with pytest.raises(InvalidTask, match="priority"):
        t.add.using(priority=priority)


def test_naive_run_after_is_invalid() -> None:
    with pytest.raises(InvalidTask, match="aware"):
        t.add.using(run_after=datetime.datetime(2030, 1, 1))


def test_run_after_that_is_not_a_time_is_invalid() -> None:
    with pytest.raises(InvalidTask, match="run_after"):
        t.add.using(run_after="tomorrow")  # type: ignore[arg-type]


def test_function_not_at_module_level_is_invalid() -> None:
    def local() -> None:
        pass

    with pytest.raises(InvalidTask, match="module level"):
        framework.task()(local)


def test_takes_context_without_a_context_argument_is_invalid() -> None:
    with pytest.raises(InvalidTask, match="context"):
        framework.task(takes_context=True)(t.not_a_task)


def test_queue_name_longer_than_the_column_is_invalid_even_without_queues() -> None:
    with pytest.raises(InvalidTask, match="at most 100"):
        t.add.using(backend="open_queues", queue_name="q" * 101)


@override_settings(FIREFLY_QUEUES=["default"])
def test_queue_outside_firefly_queues_is_invalid() -> None:
    with pytest.raises(InvalidTask, match="FIREFLY_QUEUES"):
        t.add.using(backend="open_queues", queue_name="other")


# Results --------------------------------------------------------------------------------------


def test_get_result_reads_the_result_again_from_the_database(db: None) -> None:
    result = t.add.enqueue(2, 3)

    fetched = t.add.get_result(result.id)
    from_backend = framework.default_task_backend.get_result(result.id)

    for other in (fetched, from_backend):
        assert (other.id, other.status, other.args, other.backend) == (
            result.id,
            Status.READY,
            [2, 3],
            "default",
        )
        assert other.enqueued_at == result.enqueued_at
        assert other.task.func is t.add.func


@pytest.mark.parametrize("result_id", ["999999", "abc", "", "-1", "1.0", "01", "9" * 30])
def test_get_result_of_an_unknown_id_raises_does_not_exist(db: None, result_id: str) -> None:
    with pytest.raises(exceptions.TaskResultDoesNotExist):
        framework.default_task_backend.get_result(result_id)


def test_get_result_never_returns_firefly_rows_or_rows_of_another_alias(db: None) -> None:
    firefly_row = firefly_tasks.add.schedule(1, 2)
    other_alias = t.add.using(backend="retrying").enqueue(1, 2)

    backend = framework.default_task_backend
    for result_id in (str(firefly_row.pk), other_alias.id):
        with pytest.raises(exceptions.TaskResultDoesNotExist):
            backend.get_result(result_id)


def test_get_result_of_another_task_raises_mismatch(db: None) -> None:
    result = t.add.enqueue(1, 2)

    with pytest.raises(exceptions.TaskResultMismatch):
        t.echo.get_result(result.id)


def test_async_enqueue_get_result_and_refresh(db: None) -> None:
    async def scenario() -> tuple[TaskResult[..., int], TaskResult[..., int]]:
        result = await t.add.aenqueue(4, 5)
        fetched = await t.add.aget_result(result.id)
        await result.arefresh()
        return result, fetched

    result, fetched = async_to_sync(scenario)()

    assert fetched.id == result.id
    assert result.status == fetched.status == Status.READY


def test_return_value_that_json_cannot_hold_fails_the_task(db: None) -> None:
    result = t.return_datetime.enqueue()

    run_pending_tasks()

    result.refresh()
    assert result.status == Status.FAILED
    assert result.errors[0].exception_class is TypeError
    assert "JSON-serializable" in result.errors[0].traceback


def test_a_failed_attempt_with_a_retry_left_is_ready_again_with_its_error(db: None) -> None:
    result = t.fail_on_first_attempt.enqueue()  # backend "retrying": MAX_RETRIES=1

    run_pending_tasks(limit=1)

    result.refresh()
    assert result.status == Status.READY
    assert not result.is_finished
    assert result.finished_at is None
    assert result.attempts == 1
    assert result.last_attempted_at == result.started_at is not None
    assert [error.exception_class for error in result.errors] == [RuntimeError]


def test_a_lost_attempt_is_an_error_and_the_task_is_ready_again(db: None) -> None:
    result = t.add.enqueue(1, 2)
    worker = WorkerModel.objects.create(name="lost-worker", hostname="h", pid=1)
    (row,) = TaskModel.objects.claim(["default"], 1, worker.pk)
    assert t.add.get_result(result.id).worker_ids == ["lost-worker"]
    # Charged as lost only when the task was proven to run alone.
    TaskModel.objects.filter(pk=row.pk).update(isolation=Isolation.STARTED_ALONE)
    row.isolation = Isolation.STARTED_ALONE

    TaskModel.objects.recover(row, worker, AttemptOutcome.LOST)

    result.refresh()
    assert result.status == Status.READY
    assert result.worker_ids == ["lost-worker"]
    assert result.errors[0].exception_class is backends.WorkerLost
    assert "heartbeats" in result.errors[0].traceback


def test_a_cancelled_task_is_failed_with_a_cancellation_error(db: None) -> None:
    result = t.add.enqueue(1, 2)

    TaskModel.objects.filter(pk=int(result.id)).cancel()

    result.refresh()
    assert result.status == Status.FAILED
    assert result.finished_at is not None
    assert result.errors[0].exception_class is backends.TaskCancelled
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


# Signals --------------------------------------------------------------------------------------


SignalLog = list[tuple[str, Any, str, str, int]]


@pytest.fixture
def framework_signals() -> Iterator[SignalLog]:
    """(signal, sender, status, id, attempts) of every framework signal sent."""
    received: SignalLog = []
    receivers = {}
    for name in ("task_enqueued", "task_started", "task_finished"):

        def receiver(
            sender: type, task_result: TaskResult[..., Any], _name: str = name, **kwargs: object
        ) -> None:
            received.append(
                (_name, sender, task_result.status, task_result.id, len(task_result.worker_ids))
            )

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield received
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_started_and_finished_signals_follow_a_success_and_a_failure(
    db: None, framework_signals: SignalLog
) -> None:
    ok = t.add.enqueue(1, 2)
    run_pending_tasks()
    bad = t.fail.enqueue("boom")
    run_pending_tasks()

    assert framework_signals == [
        ("task_enqueued", FireflyBackend, Status.READY, ok.id, 0),
        ("task_started", FireflyBackend, Status.RUNNING, ok.id, 1),
        ("task_finished", FireflyBackend, Status.SUCCESSFUL, ok.id, 1),
        ("task_enqueued", FireflyBackend, Status.READY, bad.id, 0),
        ("task_started", FireflyBackend, Status.RUNNING, bad.id, 1),
        ("task_finished", FireflyBackend, Status.FAILED, bad.id, 1),
    ]


def test_a_failure_that_will_be_retried_does_not_finish_the_task(
    db: None, framework_signals: SignalLog
) -> None:
    result = t.fail_on_first_attempt.enqueue()

    run_pending_tasks()

    assert [(name, status) for name, _, status, _, _ in framework_signals] == [
        ("task_enqueued", Status.READY),
        ("task_started", Status.RUNNING),
        ("task_started", Status.RUNNING),
        ("task_finished", Status.SUCCESSFUL),
    ]
    assert framework_signals[-1][3] == result.id


def test_firefly_tasks_send_no_framework_signals(db: None, framework_signals: SignalLog) -> None:
    firefly_tasks.add.schedule(1, 2)

    run_pending_tasks()

    assert framework_signals == []


# Running in the consumer ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_consumer_sends_started_and_finished_signals(
    start_consumer: Callable[..., Consumer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "signals.log"
    monkeypatch.setenv("FIREFLY_TEST_SIGNAL_LOG", str(log))
    ok = t.add.enqueue(1, 2)
    bad = t.fail.enqueue("boom")

    consume(start_consumer)

    assert log.read_text().splitlines() == [
        f"task_started FireflyBackend {ok.id} RUNNING",
        f"task_finished FireflyBackend {ok.id} SUCCESSFUL",
        f"task_started FireflyBackend {bad.id} RUNNING",
        f"task_finished FireflyBackend {bad.id} FAILED",
    ]


@pytest.mark.slow
def test_a_consumer_runs_the_task_and_another_process_reads_its_result(
    start_consumer: Callable[..., Consumer],
) -> None:
    result = t.add.enqueue(2, 3)
    firefly_row = firefly_tasks.add.schedule(1, 1)

    worker = consume(start_consumer)

    result.refresh()
    assert result.status == Status.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.errors == []
    assert result.worker_ids == [worker.name]
    assert result.attempts == 1
    assert result.enqueued_at is not None and result.started_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    # The Firefly @task API keeps working beside it, in the same consumer.
    firefly_row.refresh_from_db()
    assert (firefly_row.status, firefly_row.returned) == (TaskStatus.COMPLETED, 2)


@pytest.mark.slow
def test_status_goes_ready_running_successful_seen_from_another_process(
    start_consumer: Callable[..., Consumer], tmp_path: Path
) -> None:
    flag = tmp_path / "release"
    result = t.wait_for_file.enqueue(str(flag))
    assert result.status == Status.READY

    consumer = start_consumer("--burst", TASKS=TASKS)
    wait_until(lambda: t.wait_for_file.get_result(result.id).status == Status.RUNNING)

    running = t.wait_for_file.get_result(result.id)
    assert running.started_at is not None
    assert running.last_attempted_at == running.started_at
    assert running.finished_at is None
    assert len(running.worker_ids) == 1
    with pytest.raises(ValueError, match="not finished"):
        running.return_value  # noqa: B018
    flag.touch()
    assert consumer.wait(60) == 0, consumer.output()
    result.refresh()
    assert result.status == Status.SUCCESSFUL
    assert result.return_value == "released"
    assert result.worker_ids == running.worker_ids


@pytest.mark.slow
def test_failures_keep_the_exception_class_and_traceback(
    start_consumer: Callable[..., Consumer],
) -> None:
    value_error = t.fail.enqueue("boom")
    custom = t.raise_custom.enqueue()

    consume(start_consumer)

    value_error.refresh()
    assert value_error.status == Status.FAILED
    assert value_error.finished_at is not None
    (error,) = value_error.errors
    assert error.exception_class is ValueError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "in fail" in error.traceback
    assert error.traceback.rstrip().endswith("ValueError: boom")
    with pytest.raises(ValueError, match="failed"):
        value_error.return_value  # noqa: B018
    custom.refresh()
    assert custom.errors[0].exception_class is t.CustomError


@pytest.mark.slow
def test_higher_priority_runs_first(start_consumer: Callable[..., Consumer]) -> None:
    t.write_note.using(priority=-10).enqueue("low")
    t.write_note.enqueue("normal")
    t.write_note_urgent.enqueue("urgent")  # priority=50 in @task
    t.write_note.using(priority=100).enqueue("top")

    consume(start_consumer)

    assert list(Note.objects.order_by("pk").values_list("text", flat=True)) == [
        "top",
        "urgent",
        "normal",
        "low",
    ]


@pytest.mark.slow
def test_run_after_defers_the_task(start_consumer: Callable[..., Consumer]) -> None:
    now = timezone.now()
    later = t.add.using(run_after=now + datetime.timedelta(hours=1)).enqueue(1, 1)
    # Django documents a delay too; the stubs declare only a datetime.
    relative = t.add.using(run_after=datetime.timedelta(hours=1)).enqueue(2, 2)  # type: ignore[arg-type]
    past = t.add.using(run_after=now - datetime.timedelta(minutes=1)).enqueue(3, 3)

    consume(start_consumer)

    assert t.add.get_result(later.id).status == Status.READY
    assert t.add.get_result(later.id).task.run_after == now + datetime.timedelta(hours=1)
    assert t.add.get_result(relative.id).status == Status.READY
    assert row_of(relative).not_before >= now + datetime.timedelta(hours=1)
    assert t.add.get_result(past.id).return_value == 6


@pytest.mark.slow
def test_async_tasks_run_in_the_consumer(start_consumer: Callable[..., Consumer]) -> None:
    async def enqueue() -> tuple[TaskResult[..., Any], TaskResult[..., Any]]:
        return await t.async_add.aenqueue(2, 3), await t.async_describe_context.aenqueue()

    added, described = async_to_sync(enqueue)()

    consume(start_consumer)

    # The stubs type an async task's return value as its coroutine; it is what that returned.
    assert t.async_add.get_result(added.id).return_value == 5  # type: ignore[comparison-overlap]
    context = t.async_describe_context.get_result(described.id).return_value
    assert context == {"attempt": 1, "id": described.id}  # type: ignore[comparison-overlap]


@pytest.mark.slow
def test_context_gives_the_attempt_and_the_running_result(
    start_consumer: Callable[..., Consumer],
) -> None:
    described = t.describe_context.enqueue("first")
    retried = t.fail_on_first_attempt.enqueue()

    worker = consume(start_consumer)

    assert t.describe_context.get_result(described.id).return_value == {
        "label": "first",
        "attempt": 1,
        "id": described.id,
        "status": "RUNNING",
        "worker_ids": [worker.name],
        "backend": "default",
    }
    # OPTIONS MAX_RETRIES=1: the first attempt fails, the second sees attempt 2 and succeeds.
    retried.refresh()
    assert retried.status == Status.SUCCESSFUL
    assert retried.return_value == 2
    assert retried.attempts == 2
    assert retried.worker_ids == [worker.name, worker.name]
    (error,) = retried.errors
    assert error.exception_class is RuntimeError
    assert "attempt 1 fails" in error.traceback


@pytest.mark.slow
def test_enqueue_inside_a_transaction_is_seen_only_once_it_commits(
    start_consumer: Callable[..., Consumer],
) -> None:
    class Rollback(Exception):
        pass

    with transaction.atomic():
        kept = t.write_note.enqueue("committed")
        assert t.write_note.get_result(kept.id).status == Status.READY
        assert not visible_to_another_connection(int(kept.id))
    assert visible_to_another_connection(int(kept.id))
    with pytest.raises(Rollback), transaction.atomic():
        dropped = t.write_note.enqueue("rolled back")
        raise Rollback

    consume(start_consumer)

    with pytest.raises(exceptions.TaskResultDoesNotExist):
        t.write_note.get_result(dropped.id)
    assert list(Note.objects.values_list("text", flat=True)) == ["committed"]


def visible_to_another_connection(pk: int) -> bool:
    seen: list[bool] = []

    def look() -> None:
        try:
            seen.append(TaskModel.objects.filter(pk=pk).exists())
        finally:
            connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(30)
    return seen == [True]


# Options and checks ---------------------------------------------------------------------------


def test_atomic_is_the_default_and_an_option(db: None) -> None:
    atomic = t.write_note_then_fail_atomic.enqueue("rolled back")
    non_atomic = t.write_note_then_fail.enqueue("kept")  # backend "non_atomic"

    run_pending_tasks()

    assert t.write_note_then_fail_atomic.get_result(atomic.id).status == Status.FAILED
    assert t.write_note_then_fail.get_result(non_atomic.id).status == Status.FAILED
    assert list(Note.objects.values_list("text", flat=True)) == ["kept"]


def test_max_retries_option_retries_then_fails_with_one_error_per_attempt(db: None) -> None:
    result = t.always_fail_with_retries.enqueue()

    run_pending_tasks()

    result.refresh()
    assert result.status == Status.FAILED
    assert [error.exception_class for error in result.errors] == [RuntimeError, RuntimeError]
    assert result.attempts == 2


def test_backend_check_passes_when_configured_well() -> None:
    for alias in TASKS:
        backend = framework.task_backends[alias]
        if isinstance(backend, FireflyBackend):
            assert backend.check() == []


BAD_OPTIONS = {
    "default": {"BACKEND": TASKS["default"]["BACKEND"], "OPTIONS": {"MAX_RETRIES": -1, "TYPO": 1}}
}


@override_settings(TASKS=BAD_OPTIONS)
def test_bad_options_are_reported_once_by_the_system_checks() -> None:
    ids = [message.id for message in checks.run_checks()]

    assert ids.count("firefly_tasks.E101") == 2


@override_settings(TASKS=BAD_OPTIONS)
def test_enqueue_refuses_to_run_with_bad_options(db: None) -> None:
    with pytest.raises(ImproperlyConfigured, match="MAX_RETRIES"):
        t.add.enqueue(1, 2)


def test_tasks_naming_firefly_without_the_framework_is_a_check_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from firefly_tasks.checks import check_task_backends

    monkeypatch.setitem(sys.modules, "firefly_tasks.dep14.framework", None)  # cannot import

    assert [m.id for m in check_task_backends()] == ["firefly_tasks.E103"]


@override_settings(FIREFLY_QUEUES=["default"])
def test_backend_queue_outside_firefly_queues_is_a_check_error() -> None:
    messages = framework.task_backends["default"].check()

    assert [(m.id, "'other'" in m.msg) for m in messages] == [("firefly_tasks.E102", True)]


# Which rows run -------------------------------------------------------------------------------


def test_a_dep14_row_resolves_to_an_adapter_of_the_framework_task() -> None:
    adapter = registry.resolve(t.add.module_path, backend="default")

    assert adapter.name == t.add.module_path
    assert not adapter.is_async
    assert adapter.atomic
    assert adapter.func(2, 3) == 5
    assert registry.resolve(t.async_add.module_path, backend="default").is_async
    assert not registry.resolve(t.write_note_then_fail.module_path, backend="non_atomic").atomic


@pytest.mark.parametrize(
    ("func_name", "backend"),
    [
        (t.add.module_path, "immediate"),  # an alias, but not a FireflyBackend
        (t.add.module_path, "missing"),  # no such alias
        (t.add.module_path, ""),  # a Firefly row naming a framework task
        (firefly_tasks.add.name, "default"),  # a DEP 14 row naming a Firefly task
        ("tests.testapp.dep14_tasks.not_a_task", "default"),  # a plain function
        ("tests.testapp.dep14_tasks.no_such_task", "default"),
        ("tests.outside_app_tasks.outside_task", "default"),  # module outside installed apps
        ("os.system", "default"),
        ("tests.testapp.dep14_tasks.trap.sprung", "default"),  # a property: never evaluated
    ],
)
def test_anything_else_is_refused_like_an_unregistered_task(func_name: str, backend: str) -> None:
    with pytest.raises(UnknownTaskError):
        registry.resolve(func_name, backend=backend)


def stored_row(func_name: str, backend: str, params: str = "[[],{}]") -> TaskModel:
    return TaskModel.objects.create(
        func_name=func_name, queue="default", params_data=params, backend=backend
    )


@pytest.mark.parametrize("backend", ["immediate", "missing", ""])
def test_a_framework_task_stored_for_another_backend_fails_and_never_runs(
    db: None, backend: str
) -> None:
    row = stored_row(t.write_note.module_path, backend, '[["must not run"],{}]')

    run_pending_tasks()

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED
    assert "UnknownTaskError" in row.error
    assert not Note.objects.exists()


def test_a_firefly_task_stored_as_a_dep14_row_fails_and_never_runs(db: None) -> None:
    row = stored_row(firefly_tasks.write_note.name, "default", '[["must not run"],{}]')

    run_pending_tasks()

    row.refresh_from_db()
    assert row.status == TaskStatus.FAILED
    assert not Note.objects.exists()


@override_settings(FIREFLY_TASK_ALIASES={"billing.tasks.old_add": t.add.module_path})
@pytest.mark.django_db(databases=["default", "queue"])  # Django 6 checks every database
def test_task_aliases_apply_to_dep14_rows() -> None:
    row = stored_row("billing.tasks.old_add", "default", "[[2,3],{}]")

    run_pending_tasks()

    result = t.add.get_result(str(row.pk))
    assert (result.status, result.return_value) == (Status.SUCCESSFUL, 5)
    assert not [m for m in checks.run_checks() if m.id == "firefly_tasks.W004"]


def test_the_dashboard_lists_dep14_tasks(admin_client: Client) -> None:
    result = t.add.enqueue(1, 2)

    response = admin_client.get(reverse("admin:firefly_admin_task_changelist"))

    assert response.status_code == 200
    assert t.add.module_path in response.content.decode()
    detail = reverse("admin:firefly_admin_task_change", args=[result.id])
    assert admin_client.get(detail).status_code == 200


# Exception class paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "traceback", "expected"),
    [
        (
            "ValueError: x",
            "Traceback...\n  File 'f', line 1\nValueError: x\n",
            "builtins.ValueError",
        ),
        (
            "CustomError: a: b",
            "Traceback...\napp.errors.CustomError: a: b\nnote: added later\n",
            "app.errors.CustomError",
        ),
        (
            "ExceptionGroup: many (1 sub-exception)",
            "  | ExceptionGroup: many (1 sub-exception)\n  +-+---- 1 ----\n    | KeyError: 'k'\n",
            "builtins.ExceptionGroup",
        ),
        (
            "DurableAtomicError: ...",
            "Traceback...\nRuntimeError: durable\n",
            "builtins.RuntimeError",
        ),
        ("Odd", "", "builtins.Exception"),
    ],
)
def test_exception_class_path_is_read_from_the_stored_traceback(
    error: str, traceback: str, expected: str
) -> None:
    assert backends.exception_class_path(error, traceback) == expected


def test_wait_result_returns_once_the_task_finished(transactional_db: None) -> None:
    from firefly_tasks.waiting import ResultTimeout

    result = t.add.enqueue(2, 3)
    with pytest.raises(ResultTimeout):
        framework.default_task_backend.wait_result(result, timeout=0.05)

    runner = run_pending_in_thread()
    waited = framework.default_task_backend.wait_result(result, timeout=30)
    runner.join(30)
    assert waited is result and result.status == Status.SUCCESSFUL and result.return_value == 5
    by_id = async_to_sync(framework.default_task_backend.await_result)(result.id, timeout=1)
    assert by_id.id == result.id and by_id.return_value == 5


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_the_backend_enqueues_runs_and_reads_results_on_the_queue_database() -> None:
    # FIREFLY_DATABASE on an alias of its own (docs/queue-database.md): the backend's rows,
    # results and waiting go there; the default database holds none of them.
    with override_settings(FIREFLY_DATABASE="queue"):
        result = t.add.enqueue(2, 3)
        assert row_of(result)._state.db == "queue"
        assert TaskModel.objects.using("default").count() == 0

        runner = run_pending_in_thread()
        waited = framework.default_task_backend.wait_result(result, timeout=30)
        runner.join(30)

        assert waited.status == Status.SUCCESSFUL and waited.return_value == 5
        fetched = framework.default_task_backend.get_result(result.id)
        assert fetched.return_value == 5
        assert TaskModel.objects.using("queue").filter(status=TaskStatus.COMPLETED).count() == 1
        assert TaskModel.objects.using("default").count() == 0
