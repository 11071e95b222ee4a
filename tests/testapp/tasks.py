"""Tasks the test suite schedules and its consumer processes run."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

from django.db import connection

from firefly_tasks import atask, current_task, snooze, task
from firefly_tasks.models import TaskModel
from tests.testapp.models import Execution, Note, Run


@task()
def add(i: int, j: int) -> int:
    return i + j


@task()
def echo(value: object) -> object:
    return value


@task(atomic=False)
def record_execution() -> None:
    row = current_task()
    assert row is not None
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)


@task()
def write_note(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task(priority=50)
def write_note_urgent(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task(priority=-50)
def write_note_later(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task(queue="other")
def write_note_other_queue(text: str) -> str:
    Note.objects.create(text=text)
    return text


@task()
def write_note_then_fail(text: str) -> None:
    Note.objects.create(text=text)
    raise RuntimeError(f"failed after writing {text}")


@task(max_retries=3, retry_delay=0)
def fail_twice_then_succeed() -> int:
    row = current_task()
    assert row is not None
    if row.attempt <= 2:
        raise ValueError(f"attempt {row.attempt} fails")
    return row.attempt


@task(max_retries=2, retry_delay=0)
def always_fail() -> None:
    raise ValueError("always")


@task()
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task()
def unserializable_result() -> object:
    return object()


@atask()
async def async_add(i: int, j: int) -> int:
    return i + j


@atask()
async def async_write_note(text: str) -> str:
    await Note.objects.acreate(text=text)
    return text


@atask()
async def async_write_note_then_fail(text: str) -> None:
    await Note.objects.acreate(text=text)
    raise RuntimeError("async failure")


@task()
def schedule_child(i: int) -> int:
    return add.schedule(i, i).pk


# Tasks of the in-process engine tests (tests/test_*.py other than test_consumer.py).


@task(atomic=False)
def write_note_then_fail_non_atomic(text: str) -> None:
    Note.objects.create(text=text)
    raise RuntimeError(f"failed after writing {text}")


@task(max_retries=1, retry_delay=60)
def fail_with_delay() -> None:
    raise ValueError("try again in a minute")


@task(max_retries=5, retry_delay=10, retry_backoff=True)
def fail_with_backoff() -> None:
    raise ValueError("try again later")


@task()
def current_task_state() -> list[object]:
    running = current_task()
    assert running is not None
    return [
        running.id,
        running.pk,
        running.attempt,
        running.queue,
        running.name,
        running.row.status,
    ]


@task(queue="reports")
def build_report(name: str) -> str:
    return f"report {name}"


class Maintenance:
    @staticmethod
    @task()
    def vacuum() -> str:
        return "vacuumed"


@task(atomic=False)
def slow_first_attempt(seconds: float) -> int:
    """Sleeps on its first attempt only: a task a killed consumer was holding."""
    row = current_task()
    assert row is not None
    if row.attempt == 1:
        time.sleep(seconds)
    return row.attempt


@task()
def note_after(seconds: float, text: str) -> str:
    """Atomic: the note and the task's completion commit together, or neither does."""
    time.sleep(seconds)
    Note.objects.create(text=text)
    return text


@task(atomic=False)
def sleep_then_note(seconds: float, text: str) -> str:
    """Records that it started (claimed rows are RUNNING before they start), then sleeps."""
    row = current_task()
    assert row is not None
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)
    time.sleep(seconds)
    Note.objects.create(text=text)
    return text


@atask()
async def async_current_task_id() -> int:
    row = current_task()
    assert row is not None
    return row.pk


@task()
def note_on_commit_then_fail(text: str) -> None:
    """Registers an on_commit callback, then fails: the callback must never run."""
    from django.db import transaction

    transaction.on_commit(lambda: Note.objects.create(text=f"{text} committed"))
    Note.objects.create(text=text)
    raise RuntimeError("after on_commit")


@task()
def noop() -> None:
    return None


# Set by a test: wait_then_note() waits for it before its first query.
RELEASE = threading.Event()


@task()
def wait_then_note(text: str) -> str:
    """Atomic, and waits (as for a network call) before it touches the database."""
    if not RELEASE.wait(30):
        raise TimeoutError("never released")
    Note.objects.create(text=text)
    return text


@task()
def record_execution_atomic() -> None:
    """As record_execution, but its write commits with its completion (a group's, if fast)."""
    row = current_task()
    assert row is not None
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)


@task(atomic=False)
def kill_own_consumer() -> None:
    """Takes its consumer down as a segfault or the OOM killer would, every time it runs."""
    row = current_task()
    assert row is not None
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)
    os.kill(os.getpid(), 9)


@task()
def record_run(stop: bool = False) -> None:
    """Atomic and fast; logs each run to ``FIREFLY_TEST_RUN_LOG``, outside its transaction.

    With ``stop``, its first attempt pauses its own consumer (SIGSTOP) in the middle of its
    batch, as a host under memory pressure or a debugger would.
    """
    row = current_task()
    assert row is not None
    with open(os.environ["FIREFLY_TEST_RUN_LOG"], "a") as log:
        log.write(f"{row.pk} {os.getpid()} {row.attempt}\n")
    Execution.objects.create(task_id=row.pk, pid=os.getpid(), attempt=row.attempt)
    if stop and row.attempt == 1:
        # At this thread, so that it stops before its next instruction: sent to the process,
        # another thread may take the signal while this one goes on to its completion.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


@task()
def note_tick(label: str) -> str:
    """Writes the tick its run belongs to, as the task sees it (``current_task()``)."""
    running = current_task()
    assert running is not None
    tick = running.scheduled_for
    text = f"{label} {tick.isoformat() if tick else None} {running.row.schedule}"
    Note.objects.create(text=text)
    return text


def _spin(seconds: float) -> None:
    """Pure Python for ``seconds``: a timeout's exception reaches it between two bytecodes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@task(timeout=2)
def spin(seconds: float) -> str:
    Note.objects.create(text="spin began")  # rolled back with the timed-out attempt
    _spin(seconds)
    return "spun"


@task(timeout=1, max_retries=1, retry_delay=0)
def spin_swallowing_timeouts(seconds: float) -> str:
    try:
        _spin(seconds)
    except BaseException:  # what a task must not do: it still ends timed_out
        _spin(0.2)
        return "swallowed"
    return "spun"


@task()
def spin_at(i: int, slow: int) -> int:
    """Fast, except call ``slow``, which spins a minute (give the calls a timeout)."""
    Note.objects.create(text=f"spin_at {i}")
    if i == slow:
        _spin(60)
    return i


@atask(timeout=1)
async def async_sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@task(timeout=1)
def sleep_in_c(seconds: float) -> str:
    """Blocked outside Python code: the timeout's exception cannot reach it until it returns."""
    time.sleep(seconds)
    return "slept"


@task(timeout=1)
def sleep_in_query(seconds: float) -> str:
    """Blocked on its database session (PostgreSQL and MariaDB)."""
    Note.objects.create(text="query began")  # its transaction holds this until it ends
    sql = "SELECT pg_sleep(%s)" if connection.vendor == "postgresql" else "SELECT SLEEP(%s)"
    with connection.cursor() as cursor:
        cursor.execute(sql, [seconds])
    return "slept"


@task()
def spin_then_note(seconds: float, text: str) -> str:
    """Runs Python code for ``seconds``, then writes (holding no lock until then, even on
    SQLite)."""
    _spin(seconds)
    Note.objects.create(text=text)
    return text


@task(timeout=1, atomic=False)
def sleep_in_unbounded_query(seconds: float) -> str:
    """Blocked on its database session in a statement no bound reaches: PostgreSQL bounds an
    atomic task's transaction only, MariaDB bounds queries, not ``DO``."""
    sql = "SELECT pg_sleep(%s)" if connection.vendor == "postgresql" else "DO SLEEP(%s)"
    with connection.cursor() as cursor:
        cursor.execute(sql, [seconds])
    return "slept"


@task(atomic=False)
def spin_and_report_cancel(seconds: float) -> str:
    """Spins; when stopped, notes what ``current_task().cancel_requested`` said (its writes
    are its own: ``atomic=False``)."""
    try:
        _spin(seconds)
    except BaseException:
        running = current_task()
        assert running is not None
        Note.objects.create(text=f"cancel_requested={running.cancel_requested}")
        raise
    return "spun"


@task(atomic=False)
def note_pid_then_sleep(seconds: float) -> int:
    """Writes its process id (committed at once), then sleeps: a pool child to kill."""
    Note.objects.create(text=f"pid {os.getpid()}")
    time.sleep(seconds)
    return os.getpid()


@task()
def note_pid() -> int:
    Note.objects.create(text=f"pid {os.getpid()}")
    return os.getpid()


@task(timeout=1)
def sleep_through_timeouts(seconds: float) -> str:
    """Catches its timeout and sleeps on: its pool child is killed after the grace."""
    try:
        time.sleep(seconds)
    except BaseException:
        time.sleep(seconds)
    return "slept"


@atask()
async def async_wait_then_note(seconds: float, text: str) -> str:
    """Awaits ``seconds`` (no timeout), then writes: what a cancel stops at its ``await``."""
    await asyncio.sleep(seconds)
    await Note.objects.acreate(text=text)
    return text


@atask(timeout=1)
async def async_blocking(seconds: float) -> str:
    """Blocks its event loop (no ``await``): ``asyncio.timeout`` cannot stop it."""
    time.sleep(seconds)
    return "blocked"


@task()
def crash_at(i: int, crash: int) -> int:
    """Atomic and fast; call ``crash`` takes its process down (SIGKILL) on its first attempt,
    after writing: as a segfault in the middle of a group commit would."""
    Note.objects.create(text=f"crash_at {i}")
    running = current_task()
    if i == crash and running is not None and running.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return i


@task()
def snooze_then_note(times: int, text: str) -> str:
    """Writes, then snoozes (0.1 s) on its first ``times`` attempts; then writes and returns."""
    Note.objects.create(text=f"{text} attempt")
    running = current_task()
    assert running is not None
    if running.row.snoozes < times:
        snooze(0.1)
    Note.objects.create(text=text)
    return text


@task(atomic=False)
def record_interval(label: str, seconds: float) -> None:
    """Sleeps ``seconds`` and records when it ran (``Run``)."""
    row = current_task()
    assert row is not None
    began = time.time()
    time.sleep(seconds)
    Run.objects.create(label=label, task_id=row.pk, began=began, ended=time.time())


@task(unique=True)
def unique_add(i: int, j: int = 0) -> int:
    return i + j


@task(tags=["billing"])
def charge(account: int) -> int:
    return account


@task()
def total(values: list[object]) -> int:
    """A group's callback: the sum of the members' results (a failed member counts 0)."""
    return sum(value for value in values if isinstance(value, int))


@task()
def describe(values: object) -> list[str]:
    """A callback that says what it received: each result, or each failure's status."""
    return [getattr(value, "status", repr(value)) for value in values]  # type: ignore[attr-defined]


@task(atomic=False)
def record_link(previous: object, label: str, seconds: float = 0.0) -> str:
    """A chain's link: records when it ran (``Run``) and passes on what it got, plus its label."""
    row = current_task()
    assert row is not None
    began = time.time()
    time.sleep(seconds)
    Run.objects.create(label=label, task_id=row.pk, began=began, ended=time.time())
    return f"{previous}>{label}"


@task()
def kind_of(values: object) -> list[object]:
    """A callback that says what kind of value it received, and how many results."""
    return [type(values).__name__, len(values)]  # type: ignore[arg-type]


@task()
def sleep_then_double(i: int, seconds: float) -> int:
    """A group's member: sleeps, then returns ``2 * i``."""
    time.sleep(seconds)
    return 2 * i


@task()
def wait_inside(pk: int) -> object:
    """Waits for another task's result from inside a task: refused."""
    return TaskModel.objects.get(pk=pk).wait_result(0.1)


@task()
def note_outcome(task_id: int) -> str:
    """A hook: notes the id of the task that triggered it and that task's status then."""
    status = TaskModel.objects.get(pk=task_id).status
    Note.objects.create(text=f"{task_id} {status}")
    return status


@task(max_retries=1, retry_delay=0)
def failing_hook(task_id: int) -> None:
    """A hook that fails (and is retried once)."""
    raise RuntimeError(f"hook of {task_id} failed")


@task(
    on_success=note_outcome,
    on_failure="tests.testapp.tasks.note_outcome",
    max_retries=1,
    retry_delay=0,
)
def hooked(fail: bool) -> str:
    """A task with both hooks; ``fail`` raises (retried once first)."""
    if fail:
        raise ValueError("asked to fail")
    return "ok"


@task(atomic=False)
def report_progress(steps: int, pause: float) -> int:
    """Reports its progress at each of ``steps``, ``pause`` seconds apart."""
    running = current_task()
    assert running is not None
    for step in range(1, steps + 1):
        time.sleep(pause)
        running.set_progress(step, steps, message=f"step {step}")
    return steps


@task()
def report_progress_atomic(steps: int) -> int:
    """Reports progress from inside its own transaction, then completes."""
    running = current_task()
    assert running is not None
    for step in range(1, steps + 1):
        running.set_progress(step, steps)
    return steps
