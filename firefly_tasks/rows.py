"""What the task transitions read of the rows they change, and what a completed run carries.

``firefly_tasks.queryset`` types its rows with these Protocols rather than importing the
models, which import it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Protocol


class TaskRow(Protocol):
    """What the transitions read and set of a task's row: a ``TaskModel``."""

    pk: Any
    func_name: str
    queue: str
    status: str
    priority: int
    attempt: int
    not_before: datetime.datetime
    started: datetime.datetime | None
    worker_id: int | None
    completed: datetime.datetime | None
    returned_data: str | None
    retry_attempts: int
    max_retries: int
    retry_delay: int
    retry_backoff: bool
    lost_attempts: int
    snoozes: int
    isolation: int
    error: str
    traceback: str
    run_seconds: float | None  # the function's own running time in this attempt, if it ran
    timeout: float | None
    concurrency_key: str | None
    concurrency_limit: int | None
    rate_key: str | None
    rate_limit: str | None


class WorkerRow(Protocol):
    """What an attempt records of the worker that ran it: a ``WorkerModel``."""

    pk: Any
    name: str


@dataclass
class Completion:
    """A task whose function returned ``result`` (serialized as ``returned_data``)."""

    row: TaskRow
    result: Any
    returned_data: str
    preview: str
    finished: datetime.datetime
