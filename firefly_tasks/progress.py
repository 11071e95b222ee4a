"""Progress reported by running tasks: ``current_task().set_progress(done, total, message)``
(docs/workflows.md, "Progress").

It is written at once, on a connection the task's thread opens for progress only (closed when
the task ends), in autocommit: outside the task's own transaction, so the dashboard sees it
while the task runs, and into a row of its own (``TaskProgress``), never the task's, so a
cancel or a completion never waits for it. Writes are throttled to one a ``THROTTLE`` seconds
a task (the last one, where ``done`` reaches ``total``, always goes). It is the latest value,
not a log: a write that cannot be made at once (a connection lost, SQLite's write lock held
elsewhere) is dropped, and the next one replaces it. On SQLite an atomic task holds the write
lock for as long as it runs, so its progress is not written: report progress from
``atomic=False`` tasks there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from django.db import connections
from django.utils import timezone

from firefly_tasks import database
from firefly_tasks.dialects import dialect

logger = logging.getLogger("firefly_tasks")

THROTTLE = 0.5
MESSAGE_MAX_LENGTH = 200

_local = threading.local()


def report(row: Any, done: int, total: int | None = None, message: str = "") -> bool:
    """Record that the task of ``row`` has done ``done`` of ``total``; whether it was
    written now (False: throttled, or dropped)."""
    _check(done, total, message)
    now = time.monotonic()
    last: dict[Any, float] = _local.__dict__.setdefault("last", {})
    finished = total is not None and done >= total
    if not finished and now - last.get(row.pk, -THROTTLE) < THROTTLE:
        return False
    using = row._state.db or database.alias()
    connection = connections[using]
    if connection.vendor == "sqlite" and connection.in_atomic_block:
        return False  # this thread's transaction holds SQLite's write lock: it would wait
    where = dialect(connection)
    values = {
        "task_id": row.pk,
        "done": done,
        "total": total,
        "message": message[:MESSAGE_MAX_LENGTH],
        "updated": timezone.now(),
    }
    model = row._meta.apps.get_model("firefly_tasks", "TaskProgress")
    try:
        where.write_progress(_connection(using, where), model, values)
    except Exception as exc:  # the raw driver's own errors: progress must never fail a task
        _close(using)
        logger.debug("progress dropped id=%s error=%s", row.pk, exc)
        return False
    last[row.pk] = now
    return True


def _check(done: object, total: object, message: object) -> None:
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"set_progress(): {name} must be a non-negative int, not {value!r}.")
    if not isinstance(message, str):
        raise ValueError(f"set_progress(): message must be a string, not {message!r}.")


def _connection(using: str, where: Any) -> Any:
    """This thread's progress connection to ``using``, opened when first needed."""
    opened: dict[str, Any] = _local.__dict__.setdefault("connections", {})
    if using not in opened:
        opened[using] = where.progress_connection()
    return opened[using]


def release() -> None:
    """The task this thread ran has ended: close the connections it reported progress on
    (a thread of a consumer, or a web request's with ``FIREFLY_RUN_IMMEDIATELY``, should not
    keep one open between tasks) and forget its throttle."""
    state = _local.__dict__
    if not state:  # the common case: it reported nothing
        return
    for using in list(state.get("connections", ())):
        _close(using)
    state.pop("last", None)


def _close(using: str) -> None:
    raw = _local.__dict__.get("connections", {}).pop(using, None)
    if raw is not None:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing to do
            raw.close()
