"""``@task`` / ``@atask`` and scheduling: ``firefly_tasks.decorators``."""

from __future__ import annotations

import asyncio
import collections.abc
import datetime
import decimal
import functools
import gc
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from firefly_tasks import atask, task
from firefly_tasks.decorators import AsyncTask, Task
from firefly_tasks.dialects import base as dialects_base
from firefly_tasks.exceptions import (
    AsyncContextError,
    InvalidTaskError,
    SerializationError,
    UnknownQueueError,
)
from firefly_tasks.models import AttemptOutcome, TaskModel, TaskStatus
from firefly_tasks.registry import registry
from firefly_tasks.testing import run_pending_tasks
from tests.testapp import tasks
from tests.testapp.models import Note

T = TypeVar("T")

# Definition ---------------------------------------------------------------------------------


def test_task_decorator_returns_a_registered_task() -> None:
    assert isinstance(tasks.add, Task)
    assert registry.get(tasks.add.name) is tasks.add


def test_atask_decorator_returns_a_registered_async_task() -> None:
    assert isinstance(tasks.async_add, AsyncTask)
    assert tasks.async_add.is_async
    assert registry.get(tasks.async_add.name) is tasks.async_add


def test_decorated_function_keeps_its_name_and_doc() -> None:
    # functools.update_wrapper sets both on the instance, out of the type checker's sight.
    assert tasks.add.__name__ == "add"  # type: ignore[attr-defined]
    assert tasks.add.__wrapped__(1, 2) == 3  # type: ignore[attr-defined]


def test_calling_the_decorated_function_runs_it_inline_without_a_row(db: None) -> None:
    assert tasks.add(2, 3) == 5
    assert tasks.write_note("inline") == "inline"

    assert Note.objects.get().text == "inline"
    assert not TaskModel.objects.exists()


def test_an_async_task_is_a_coroutine_function_like_the_function_it_wraps() -> None:
    assert iscoroutinefunction(tasks.async_add)
    assert not iscoroutinefunction(tasks.add)
    assert async_to_sync(tasks.async_add)(2, 3) == 5


@pytest.mark.parametrize("priority", [-101, 101, 1000])
def test_priority_out_of_range_is_refused_at_decoration(priority: int) -> None:
    def out_of_range() -> None: ...

    with pytest.raises(InvalidTaskError, match="between -100 and 100"):
        task(priority=priority)(out_of_range)

    assert f"{__name__}.{out_of_range.__qualname__}" not in registry


@pytest.mark.parametrize("priority", ["10", 1.5, True, None])
def test_priority_that_is_not_an_int_is_refused_at_decoration(priority: Any) -> None:
    def not_an_int() -> None: ...

    with pytest.raises(InvalidTaskError, match="priority must be an int"):
        task(priority=priority)(not_an_int)


def test_priority_at_the_bounds_is_accepted() -> None:
    def lowest() -> None: ...

    def highest() -> None: ...

    assert task(priority=-100)(lowest).priority == -100
    assert task(priority=100)(highest).priority == 100


@pytest.mark.parametrize("option", ["max_retries", "retry_delay"])
def test_negative_retry_options_are_refused_at_decoration(option: str) -> None:
    def negative() -> None: ...

    with pytest.raises(InvalidTaskError, match=f"{option} must be a non-negative int"):
        options: dict[str, Any] = {option: -1}
        task(**options)(negative)


def test_task_decorator_refuses_async_functions() -> None:
    async def coroutine_function() -> None: ...

    with pytest.raises(InvalidTaskError, match="is async: decorate it with @atask"):
        task()(coroutine_function)


def test_atask_decorator_refuses_sync_functions() -> None:
    def plain_function() -> None: ...

    with pytest.raises(InvalidTaskError, match="is not async: decorate it with @task"):
        atask()(plain_function)


def test_decorator_used_without_parentheses_is_refused() -> None:
    def bare() -> None: ...

    with pytest.raises(InvalidTaskError, match=r"@task\(\) with parentheses"):
        task(bare)  # type: ignore[arg-type]


@override_settings(FIREFLY_QUEUES=["default"])
def test_queue_not_in_firefly_queues_is_refused_at_decoration() -> None:
    def elsewhere() -> None: ...

    with pytest.raises(UnknownQueueError, match="not in FIREFLY_QUEUES"):
        task(queue="elsewhere")(elsewhere)


# schedule() ---------------------------------------------------------------------------------


def test_schedule_returns_a_saved_row_with_status_created(db: None) -> None:
    before = timezone.now()

    row = tasks.add.schedule(1, 3)

    assert row.pk is not None
    stored = TaskModel.objects.get(pk=row.pk)
    assert stored.status == TaskStatus.CREATED
    assert stored.func_name == "tests.testapp.tasks.add"
    assert stored.params == {"args": (1, 3), "kwargs": {}}
    assert stored.params_preview == "1, 3"
    assert stored.serializer == "json"
    assert stored.attempt == 0
    assert before <= stored.created <= timezone.now()
    assert stored.not_before == stored.created


def test_schedule_stores_keyword_arguments(db: None) -> None:
    row = tasks.add.schedule(1, j=2)

    assert TaskModel.objects.get(pk=row.pk).params == {"args": (1,), "kwargs": {"j": 2}}


def test_schedule_stores_the_decorator_options(db: None) -> None:
    row = tasks.fail_with_backoff.schedule()
    urgent = tasks.write_note_urgent.schedule("x")
    other = tasks.write_note_other_queue.schedule("x")

    row.refresh_from_db()
    assert (row.max_retries, row.retry_delay, row.retry_backoff) == (5, 10, True)
    assert TaskModel.objects.get(pk=urgent.pk).priority == 50
    assert TaskModel.objects.get(pk=other.pk).queue == "other"


@override_settings(FIREFLY_DEFAULT_QUEUE="bulk", FIREFLY_MAX_RETRIES=4, FIREFLY_RETRY_DELAY=30)
def test_options_left_out_are_resolved_from_settings_at_schedule_time(db: None) -> None:
    row = tasks.add.schedule(1, 2)

    row.refresh_from_db()
    assert (row.queue, row.max_retries, row.retry_delay) == ("bulk", 4, 30)


def test_settings_changed_after_import_apply_to_later_schedules(db: None) -> None:
    first = tasks.add.schedule(1, 2)
    with override_settings(FIREFLY_DEFAULT_QUEUE="later", FIREFLY_MAX_RETRIES=1):
        second = tasks.add.schedule(1, 2)

    assert (first.queue, first.max_retries, first.retry_delay) == ("default", 0, 120)
    assert (second.queue, second.max_retries) == ("later", 1)


@override_settings(FIREFLY_MAX_RETRIES=9, FIREFLY_RETRY_DELAY=1, FIREFLY_DEFAULT_QUEUE="bulk")
def test_options_given_to_the_decorator_win_over_settings(db: None) -> None:
    row = tasks.fail_with_delay.schedule()
    other = tasks.write_note_other_queue.schedule("x")

    assert (row.max_retries, row.retry_delay, row.queue) == (1, 60, "bulk")
    assert other.queue == "other"


def test_schedule_with_an_aware_eta_sets_not_before(db: None) -> None:
    eta = timezone.now() + datetime.timedelta(hours=2)

    row = tasks.add.schedule(1, 2, eta=eta)

    assert TaskModel.objects.get(pk=row.pk).not_before == eta
    assert not TaskModel.objects.ready().filter(pk=row.pk).exists()


def test_eta_is_not_passed_on_as_a_keyword_argument(db: None) -> None:
    row = tasks.add.schedule(1, 2, eta=timezone.now())

    assert TaskModel.objects.get(pk=row.pk).params == {"args": (1, 2), "kwargs": {}}


@override_settings(USE_TZ=False, TIME_ZONE="UTC")
def test_aware_eta_is_stored_naive_when_use_tz_is_false(db: None) -> None:
    eta = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))

    row = tasks.add.schedule(1, 2, eta=eta)

    assert row.not_before == datetime.datetime(2030, 1, 1, 10)
    assert TaskModel.objects.get(pk=row.pk).not_before == datetime.datetime(2030, 1, 1, 10)


def test_unserializable_arguments_fail_at_schedule_and_write_nothing(db: None) -> None:
    with pytest.raises(SerializationError, match=r"arguments\[0\]\[0\] is a object"):
        tasks.echo.schedule(object())
    with pytest.raises(SerializationError, match="non-string keys"):
        tasks.echo.schedule(value={1: "a"})
    with pytest.raises(SerializationError):
        tasks.echo.schedule(float("nan"))

    assert TaskModel.objects.count() == 0


def test_naive_eta_under_use_tz_fails_at_schedule_and_writes_nothing(db: None) -> None:
    naive = datetime.datetime.now() + datetime.timedelta(hours=1)

    with pytest.raises(InvalidTaskError, match="naive datetime while USE_TZ = True"):
        tasks.add.schedule(1, 2, eta=naive)

    assert TaskModel.objects.count() == 0


@pytest.mark.parametrize(
    "eta", [datetime.date(2030, 1, 1), "2030-01-01T00:00:00Z", 1_900_000_000], ids=repr
)
def test_eta_that_is_not_a_datetime_fails_at_schedule_and_writes_nothing(
    db: None, eta: Any
) -> None:
    with pytest.raises(InvalidTaskError, match="eta must be a datetime"):
        tasks.add.schedule(1, 2, eta=eta)

    assert TaskModel.objects.count() == 0


@override_settings(FIREFLY_QUEUES=["default"])
def test_unknown_queue_fails_at_schedule_and_writes_nothing(db: None) -> None:
    with pytest.raises(UnknownQueueError, match="'other' is not in FIREFLY_QUEUES"):
        tasks.write_note_other_queue.schedule("x")

    assert TaskModel.objects.count() == 0


@override_settings(FIREFLY_QUEUES=["emails"], FIREFLY_DEFAULT_QUEUE="default")
def test_default_queue_outside_firefly_queues_fails_at_schedule(db: None) -> None:
    with pytest.raises(UnknownQueueError):
        tasks.add.schedule(1, 2)

    assert TaskModel.objects.count() == 0


@override_settings(FIREFLY_QUEUES=["default", "other"])
def test_known_queue_is_accepted_when_firefly_queues_is_set(db: None) -> None:
    assert tasks.write_note_other_queue.schedule("x").queue == "other"


def test_sync_task_scheduled_from_async_code_raises_async_context_error(db: None) -> None:
    async def schedule_from_async() -> None:
        tasks.add.schedule(1, 2)

    with pytest.raises(AsyncContextError, match="sync task scheduled from async code"):
        async_to_sync(schedule_from_async)()

    assert TaskModel.objects.count() == 0


def test_sync_task_schedule_many_from_async_code_raises_async_context_error(db: None) -> None:
    async def schedule_from_async() -> None:
        tasks.add.schedule_many([(1, 2)])

    with pytest.raises(AsyncContextError):
        async_to_sync(schedule_from_async)()

    assert TaskModel.objects.count() == 0


def test_sync_task_scheduled_through_sync_to_async_from_async_code_works(db: None) -> None:
    async def schedule_from_async() -> TaskModel:
        return await sync_to_async(tasks.add.schedule)(1, 2)

    row = async_to_sync(schedule_from_async)()

    assert TaskModel.objects.get(pk=row.pk).params["args"] == (1, 2)


def test_async_task_scheduled_from_sync_code_without_await_raises_on_use(db: None) -> None:
    pending = tasks.async_add.schedule(1, 2)

    with pytest.raises(AsyncContextError, match="async task and nothing was scheduled"):
        pending.pk  # noqa: B018

    assert TaskModel.objects.count() == 0


def test_async_task_schedule_many_from_sync_code_without_await_raises_on_use(db: None) -> None:
    pending = tasks.async_add.schedule_many([(1, 2)])

    with pytest.raises(AsyncContextError):
        pending.count  # noqa: B018

    assert TaskModel.objects.count() == 0


def test_async_task_schedule_dropped_without_await_warns_and_stores_nothing(db: None) -> None:
    with pytest.warns(RuntimeWarning, match="never awaited: nothing was scheduled"):
        tasks.async_add.schedule(1, 2)
        gc.collect()

    assert TaskModel.objects.count() == 0


def test_async_task_schedule_many_dropped_without_await_warns_and_stores_nothing(db: None) -> None:
    with pytest.warns(RuntimeWarning, match="never awaited: nothing was scheduled"):
        tasks.async_add.schedule_many([(1, 2)])
        gc.collect()

    assert TaskModel.objects.count() == 0


def test_an_async_task_schedule_returns_a_coroutine_as_the_seed_does() -> None:
    pending = tasks.async_add.schedule(1, 2)
    try:
        assert asyncio.iscoroutine(pending)
        assert isinstance(pending, collections.abc.Coroutine)
        assert iscoroutinefunction(tasks.async_add.schedule)
        assert iscoroutinefunction(tasks.async_add.schedule_many)
    finally:
        pending.close()


async def _run_in_a_task(coroutine: Coroutine[Any, Any, T]) -> T:
    return await asyncio.create_task(coroutine)


async def _run_in_gather(coroutine: Coroutine[Any, Any, T]) -> T:
    (result,) = await asyncio.gather(coroutine)
    return result


async def _run_in_ensure_future(coroutine: Coroutine[Any, Any, T]) -> T:
    return await asyncio.ensure_future(coroutine)


async def _run_in_a_task_group(coroutine: Coroutine[Any, Any, T]) -> T:
    async with asyncio.TaskGroup() as group:
        running = group.create_task(coroutine)
    return running.result()


async def _run_in_wait_for(coroutine: Coroutine[Any, Any, T]) -> T:
    return await asyncio.wait_for(coroutine, timeout=60)


def _run_until_complete(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


# Every way of running a coroutine from sync code, as users of django_firefly_tasks write them.
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio.run": asyncio.run,
    "asyncio.run(debug=True)": functools.partial(asyncio.run, debug=True),
    "create_task": lambda coroutine: asyncio.run(_run_in_a_task(coroutine)),
    "gather": lambda coroutine: asyncio.run(_run_in_gather(coroutine)),
    "ensure_future": lambda coroutine: asyncio.run(_run_in_ensure_future(coroutine)),
    "TaskGroup": lambda coroutine: asyncio.run(_run_in_a_task_group(coroutine)),
    "wait_for": lambda coroutine: asyncio.run(_run_in_wait_for(coroutine)),
    "run_until_complete": _run_until_complete,
}


@pytest.fixture
def outside_async_to_sync(transactional_db: None) -> Iterator[None]:
    """For coroutines run by asyncio, not by ``async_to_sync``: their queries run in asgiref's
    own thread, on that thread's connection, so the test cannot hold its writes in a
    transaction; the connection is closed after the test so the test database can be dropped."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())


@pytest.mark.usefixtures("outside_async_to_sync")
@pytest.mark.parametrize("run", RUNNERS.values(), ids=RUNNERS.keys())
def test_async_task_schedule_runs_wherever_a_coroutine_runs(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    row = run(tasks.async_add.schedule(2, j=5))

    stored = TaskModel.objects.get(pk=row.pk)
    assert stored.func_name == tasks.async_add.name
    assert stored.params == {"args": (2,), "kwargs": {"j": 5}}


@pytest.mark.usefixtures("outside_async_to_sync")
@pytest.mark.parametrize("run", RUNNERS.values(), ids=RUNNERS.keys())
def test_async_task_schedule_many_runs_wherever_a_coroutine_runs(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    rows = run(tasks.async_add.schedule_many([(1, 2), (3, 4)]))

    assert [TaskModel.objects.get(pk=row.pk).params["args"] for row in rows] == [(1, 2), (3, 4)]


@pytest.mark.usefixtures("outside_async_to_sync")
def test_async_task_schedule_with_bad_input_raises_from_asyncio_run_and_writes_nothing() -> None:
    with pytest.raises(InvalidTaskError, match="naive"):
        asyncio.run(tasks.async_add.schedule(1, 2, eta=datetime.datetime(2030, 1, 1)))

    assert TaskModel.objects.count() == 0


@pytest.mark.usefixtures("outside_async_to_sync")
def test_async_task_schedules_gathered_together_store_every_row() -> None:
    async def schedule_three() -> list[TaskModel]:
        return await asyncio.gather(*(tasks.async_add.schedule(i, i) for i in range(3)))

    rows = asyncio.run(schedule_three())

    assert sorted(TaskModel.objects.get(pk=row.pk).params["args"] for row in rows) == [
        (0, 0),
        (1, 1),
        (2, 2),
    ]


def test_async_task_schedule_closed_unawaited_stores_nothing_and_does_not_warn(db: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tasks.async_add.schedule(1, 2).close()
        gc.collect()

    assert TaskModel.objects.count() == 0


def test_async_task_scheduled_through_async_to_sync_stores_the_row(db: None) -> None:
    row = async_to_sync(tasks.async_add.schedule)(1, 2)

    assert TaskModel.objects.get(pk=row.pk).params["args"] == (1, 2)


def test_awaiting_an_async_task_schedule_stores_the_row(db: None) -> None:
    async def schedule() -> TaskModel:
        return await tasks.async_add.schedule(2, j=5)

    row = async_to_sync(schedule)()

    stored = TaskModel.objects.get(pk=row.pk)
    assert stored.func_name == "tests.testapp.tasks.async_add"
    assert stored.status == TaskStatus.CREATED
    assert stored.params == {"args": (2,), "kwargs": {"j": 5}}


def test_awaiting_an_async_task_schedule_many_stores_every_row(db: None) -> None:
    async def schedule() -> list[TaskModel]:
        return await tasks.async_add.schedule_many([(1, 2), (3, 4)])

    rows = async_to_sync(schedule)()

    assert [TaskModel.objects.get(pk=row.pk).params["args"] for row in rows] == [(1, 2), (3, 4)]


def test_async_to_sync_of_an_async_task_schedule_works_from_sync_code(db: None) -> None:
    row = async_to_sync(tasks.async_add.schedule)(1, 2)

    assert TaskModel.objects.get(pk=row.pk).func_name == tasks.async_add.name


def test_async_task_with_bad_input_raises_when_awaited_and_writes_nothing(db: None) -> None:
    naive = datetime.datetime(2030, 1, 1)

    with pytest.raises(InvalidTaskError, match="naive"):
        async_to_sync(tasks.async_add.schedule)(1, 2, eta=naive)

    assert TaskModel.objects.count() == 0


# schedule_many() ----------------------------------------------------------------------------


def test_schedule_many_inserts_in_one_query_and_returns_rows_with_pks(
    db: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    with django_assert_num_queries(1):
        rows = tasks.add.schedule_many([(1, 2), ((3,), {"j": 4}), [5, 6], ([7], {"j": 8})])

    assert all(row.pk is not None for row in rows)
    stored = {row.pk: row for row in TaskModel.objects.filter(pk__in=[row.pk for row in rows])}
    assert [stored[row.pk].params for row in rows] == [
        {"args": (1, 2), "kwargs": {}},
        {"args": (3,), "kwargs": {"j": 4}},
        {"args": (5, 6), "kwargs": {}},
        {"args": (7,), "kwargs": {"j": 8}},
    ]
    assert {row.status for row in stored.values()} == {TaskStatus.CREATED}


def test_schedule_many_of_a_thousand_calls_is_one_statement(
    db: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    with django_assert_num_queries(1):
        rows = tasks.add.schedule_many([(i, i) for i in range(1000)])
    assert len({row.pk for row in rows}) == 1000


def test_schedule_many_splits_large_arguments_over_statements_in_order(
    db: None, django_assert_num_queries: DjangoAssertNumQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each statement carries at most INSERT_BYTES of text (MariaDB's packet limit); on
    # PostgreSQL the calls travel as two arrays of one statement, whatever their size.
    calls = [f"{i}:{'x' * 1000}" for i in range(10)]
    size = dialects_base.row_bytes(tasks.echo.schedule(calls[0]))  # each call is as long
    TaskModel.objects.all().delete()
    monkeypatch.setattr(dialects_base, "INSERT_BYTES", 3 * size + size // 2)
    statements = 1 if connection.vendor == "postgresql" else 4  # 3, 3, 3 and 1 rows
    with django_assert_num_queries(statements):
        rows = tasks.echo.schedule_many([((c,), {}) for c in calls])

    pks = [row.pk for row in rows]
    assert pks == sorted(pks) and len(set(pks)) == 10
    stored = {row.pk: row for row in TaskModel.objects.filter(pk__in=pks)}
    assert [stored[pk].params["args"][0] for pk in pks] == [c for c in calls]


def test_schedule_many_of_many_small_calls_keeps_each_statement_within_the_bound(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls of no arguments still make rows of a few hundred bytes each: 200,000 of them were
    # one statement on MariaDB, longer than its 16 MiB packet ("Server has gone away").
    monkeypatch.setattr(dialects_base, "INSERT_BYTES", 64 * 1024)
    with CaptureQueriesContext(connection) as queries:
        rows = tasks.noop.schedule_many([() for _ in range(3000)])

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len({row.pk for row in rows}) == 3000
    if connection.vendor != "postgresql":  # there, one statement of two arrays
        assert len(inserts) > 1
        assert max(map(len, inserts)) <= 64 * 1024


def test_schedule_many_with_no_items_writes_nothing(
    db: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    with django_assert_num_queries(0):
        assert tasks.add.schedule_many([]) == []


def test_schedule_many_applies_one_eta_to_every_row(db: None) -> None:
    eta = timezone.now() + datetime.timedelta(minutes=5)

    rows = tasks.add.schedule_many([(1, 2), (3, 4)], eta=eta)

    assert {row.not_before for row in TaskModel.objects.filter(pk__in=[r.pk for r in rows])} == {
        eta
    }


def test_schedule_many_with_one_bad_item_writes_nothing(db: None) -> None:
    with pytest.raises(SerializationError):
        tasks.echo.schedule_many([(1,), (object(),), (3,)])
    with pytest.raises(InvalidTaskError, match="args tuples or"):
        tasks.echo.schedule_many([(1,), 2])

    assert TaskModel.objects.count() == 0


# FIREFLY_RUN_IMMEDIATELY and FIREFLY_SERIALIZER ------------------------------------------------


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_runs_at_schedule_and_records_row_and_attempt(db: None) -> None:
    row = tasks.add.schedule(2, 3)

    assert row.status == TaskStatus.COMPLETED
    assert row.returned == 5
    stored = TaskModel.objects.get(pk=row.pk)
    assert stored.status == TaskStatus.COMPLETED
    assert stored.returned == 5
    assert stored.attempt == 1
    assert list(stored.attempts.values_list("number", "outcome")) == [(1, AttemptOutcome.COMPLETED)]


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_records_failures_and_rolls_back_their_writes(db: None) -> None:
    row = tasks.write_note_then_fail.schedule("gone")

    assert row.status == TaskStatus.FAILED
    assert row.error == "RuntimeError: failed after writing gone"
    attempt = TaskModel.objects.get(pk=row.pk).attempts.get()
    assert attempt.outcome == AttemptOutcome.FAILED
    assert "RuntimeError" in attempt.traceback
    assert not Note.objects.exists()


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_runs_every_row_of_schedule_many(db: None) -> None:
    rows = tasks.add.schedule_many([(1, 1), (2, 2)])

    assert [row.returned for row in rows] == [2, 4]
    assert TaskModel.objects.filter(status=TaskStatus.COMPLETED).count() == 2


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_runs_async_tasks_scheduled_with_await(db: None) -> None:
    async def schedule() -> TaskModel:
        return await tasks.async_write_note.schedule("async inline")

    row = async_to_sync(schedule)()

    assert TaskModel.objects.get(pk=row.pk).status == TaskStatus.COMPLETED
    assert Note.objects.get().text == "async inline"


@override_settings(FIREFLY_RUN_IMMEDIATELY=True)
def test_run_immediately_runs_tasks_scheduled_by_tasks(db: None) -> None:
    parent = tasks.schedule_child.schedule(4)

    child = TaskModel.objects.get(pk=parent.returned)
    assert parent.status == TaskStatus.COMPLETED
    assert (child.status, child.returned) == (TaskStatus.COMPLETED, 8)


@override_settings(FIREFLY_SERIALIZER="pickle")
def test_pickle_serializer_stores_pickled_rows_the_consumer_decodes(db: None) -> None:
    row = tasks.echo.schedule({frozenset({1}): decimal.Decimal("1.5")})

    stored = TaskModel.objects.get(pk=row.pk)
    assert stored.serializer == "pickle"
    assert not stored.params_data.startswith("[")
    assert stored.params == {"args": ({frozenset({1}): decimal.Decimal("1.5")},), "kwargs": {}}

    assert run_pending_tasks() == 1

    stored.refresh_from_db()
    assert stored.status == TaskStatus.COMPLETED
    assert stored.returned == {frozenset({1}): decimal.Decimal("1.5")}


def test_rows_keep_their_serializer_when_the_setting_changes(db: None) -> None:
    with override_settings(FIREFLY_SERIALIZER="pickle"):
        row = tasks.echo.schedule({3, 4})

    # Pickle rows are read after a move to JSON only while FIREFLY_ACCEPT_PICKLE says so.
    with override_settings(FIREFLY_ACCEPT_PICKLE=True):
        assert run_pending_tasks() == 1

        stored = TaskModel.objects.get(pk=row.pk)
        assert stored.serializer == "pickle"
        assert stored.status == TaskStatus.COMPLETED
        assert stored.returned == {3, 4}
