"""Tasks of the queue database's tests (tests/test_queue_database.py): their own writes go to
the default database, their completions to FIREFLY_DATABASE."""

from __future__ import annotations

import os
import signal

from django.db import transaction

from firefly_tasks import current_task, task
from tests.testapp.models import Note
from tests.testapp.tasks import write_note


@task()
def note_and_schedule(text: str) -> str:
    """Writes to both databases in its transaction: a note, and a task of its own."""
    Note.objects.create(text=text)
    write_note.schedule(f"{text}-child")
    return text


@task()
def note_and_schedule_then_fail(text: str) -> None:
    Note.objects.create(text=text)
    write_note.schedule(f"{text}-child")
    raise ValueError(f"failed after writing {text}")


@task()
def note_then_die_between_commits(text: str) -> str:
    """Its first attempt kills its consumer once the default database committed its note,
    before the queue database commits its completion."""
    Note.objects.create(text=text)
    running = current_task()
    assert running is not None
    if running.attempt == 1:
        kill = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
        transaction.on_commit(kill, using="default")
    return text
