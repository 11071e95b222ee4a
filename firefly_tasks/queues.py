"""Queue controls: pausing and resuming, and the list of known queues."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from firefly_tasks import database
from firefly_tasks.conf import settings
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import QueueModel
from firefly_tasks.options import parse_rate, validate_queue
from firefly_tasks.registry import registry


def pause_queue(name: str, *, by: str = "", reason: str = "") -> bool:
    """Stop consumers claiming from ``name`` (within one poll); running tasks finish.

    Creates the queue's control row on first use. Returns False if it was already paused.
    """
    validate_queue(name)
    with database.atomic():
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


def invalid_entry(entries: object) -> object:
    """The first entry of ``FIREFLY_QUEUES`` (``entries``) that is neither a name nor a
    queue's dict (``"name"``, and optionally ``"concurrency"`` and ``"rate"``); ``entries``
    itself when it is not a list; ``None`` when every entry is right."""
    if entries is None:
        return None
    if isinstance(entries, str | bytes) or not isinstance(entries, list | tuple):
        return entries
    for entry in entries:
        if isinstance(entry, str) and entry:
            continue
        if not isinstance(entry, dict) or set(entry) - {"name", "concurrency", "rate"}:
            return entry
        if entry.get("rate") is not None and not _is_rate(entry["rate"]):
            return entry
        name, limit = entry.get("name"), entry.get("concurrency")
        if not isinstance(name, str) or not name:
            return entry
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            return entry
    return None


def _is_rate(rate: object) -> bool:
    try:
        parse_rate(rate)
    except InvalidTaskError:
        return False
    return True
