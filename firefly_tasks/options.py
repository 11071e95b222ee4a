"""The rules a task's options follow, wherever they are given: the decorators, ``schedule()``
and the DEP 14 backend."""

from __future__ import annotations

import datetime

from django.conf import settings as django_settings
from django.utils import timezone

from firefly_tasks.conf import settings
from firefly_tasks.exceptions import InvalidTaskError, UnknownQueueError

MIN_PRIORITY = -100
MAX_PRIORITY = 100
QUEUE_NAME_MAX_LENGTH = 100


def validate_priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidTaskError(f"priority must be an int, not {type(priority).__name__}.")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidTaskError(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, not {priority}."
        )
    return priority


def validate_queue(queue: object, what: str = "queue") -> str:
    """``queue`` if it is a valid queue name (and in ``FIREFLY_QUEUES`` when that is set);
    ``what`` names the option in the error."""
    if not isinstance(queue, str) or not queue or len(queue) > QUEUE_NAME_MAX_LENGTH:
        raise InvalidTaskError(
            f"{what} must be a non-empty string of at most {QUEUE_NAME_MAX_LENGTH} characters, "
            f"not {queue!r}."
        )
    allowed = settings.QUEUES
    if allowed is not None and queue not in allowed:
        raise UnknownQueueError(f"Queue {queue!r} is not in FIREFLY_QUEUES ({', '.join(allowed)}).")
    return queue


def validate_non_negative(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidTaskError(f"{name} must be a non-negative int, not {value!r}.")


def resolve_eta(eta: object, now: datetime.datetime) -> datetime.datetime:
    if eta is None:
        return now
    if not isinstance(eta, datetime.datetime):
        raise InvalidTaskError(f"eta must be a datetime, not {type(eta).__name__}.")
    if django_settings.USE_TZ:
        if timezone.is_naive(eta):
            raise InvalidTaskError(
                "eta is a naive datetime while USE_TZ = True; pass an aware datetime, e.g. "
                "timezone.now() + timedelta(minutes=5)."
            )
        return eta
    return timezone.make_naive(eta) if timezone.is_aware(eta) else eta
