"""Signals sent over a task's life. Every one is sent with ``sender=TaskModel`` and ``task=row``.

A receiver that raises is logged and never stops the consumer.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("firefly_tasks")

task_scheduled = Signal()
"""A row was inserted by ``schedule()`` or ``schedule_many()``."""

task_started = Signal()
"""A consumer is about to run the task's function."""

task_completed = Signal()
"""The task's function returned; ``result`` is its return value."""

task_failed = Signal()
"""The task's function raised; ``exception`` is the error, ``will_retry`` says what comes next."""


def send(signal: Signal, **kwargs: Any) -> None:
    if not signal.receivers:  # the common case, once per task: nothing to import or send
        return
    from firefly_tasks.models import TaskModel

    for receiver, response in signal.send_robust(sender=TaskModel, **kwargs):
        if isinstance(response, Exception):
            logger.error("signal receiver failed receiver=%r", receiver, exc_info=response)
