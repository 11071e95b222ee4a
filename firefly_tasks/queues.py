"""Queue controls: pausing and resuming, and the list of known queues."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from firefly_tasks.conf import settings
from firefly_tasks.models import QueueModel
from firefly_tasks.options import validate_queue
from firefly_tasks.registry import registry


def pause_queue(name: str, *, by: str = "", reason: str = "") -> bool:
    """Stop consumers claiming from ``name`` (within one poll); running tasks finish.

    Creates the queue's control row on first use. Returns False if it was already paused.
    """
    validate_queue(name)
    with transaction.atomic():
        queue, _ = QueueModel.objects.select_for_update().get_or_create(name=name)
        if queue.paused:
            return False
        queue.paused, queue.paused_at, queue.paused_by, queue.reason = (
            True,
            timezone.now(),
            by,
            reason,
        )
        queue.save(update_fields=["paused", "paused_at", "paused_by", "reason"])
    return True


def resume_queue(name: str) -> bool:
    """Let consumers claim from ``name`` again. Returns False if it was not paused."""
    return bool(
        QueueModel.objects.filter(name=name, paused=True).update(
            paused=False, paused_at=None, paused_by="", reason=""
        )
    )


def known_queues(controls: Iterable[str] | None = None) -> list[str]:
    """Queues named by registered tasks, ``FIREFLY_QUEUES`` and control rows; no table scan.

    ``controls``: the names of the control rows, for a caller that has read them already.
    """
    names = {settings.DEFAULT_QUEUE}
    names.update(task.queue for task in registry if task.queue)
    names.update(settings.QUEUES or ())
    if controls is None:
        controls = QueueModel.objects.values_list("name", flat=True)
    names.update(controls)
    return sorted(names)
