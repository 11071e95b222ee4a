"""A task's options and the rules they follow, wherever they are given: the decorators,
``task.using(...)``, ``schedule()`` and the DEP 14 backend.

:class:`TaskOptions` holds them; ``VALIDATORS`` checks each one. A new option is a field of
``TaskOptions`` and a line of ``VALIDATORS`` (and what reads it): ``@task(...)`` and
``using(...)`` take it without more plumbing.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from firefly_tasks.conf import settings
from firefly_tasks.exceptions import InvalidTaskError, UnknownQueueError

MIN_PRIORITY = -100
MAX_PRIORITY = 100
QUEUE_NAME_MAX_LENGTH = 100
MAX_TIMEOUT = 365 * 24 * 3600.0
UNIQUE_KEY_MAX_LENGTH = 255
ON_DUPLICATE = ("return", "raise")
MAX_LIMIT = 100_000
TAG_MAX_LENGTH = 100
MAX_TAGS = 32


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


def validate_timeout(timeout: object) -> float | None:
    """``timeout`` in seconds as a float: a positive, finite number, or ``None`` for none."""
    if timeout is None:
        return None
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 < timeout < MAX_TIMEOUT
    ):
        raise InvalidTaskError(
            f"timeout must be a positive number of seconds below {MAX_TIMEOUT:.0f} (a year), "
            f"or None, not {timeout!r}."
        )
    return float(timeout)


def validate_unique_key(key: object, what: str = "unique_key") -> str:
    """A unique key as stored: a non-empty string of at most 255 characters."""
    if not isinstance(key, str) or not key:
        raise InvalidTaskError(f"{what} must be a non-empty string, not {key!r}.")
    if len(key) > UNIQUE_KEY_MAX_LENGTH:
        raise InvalidTaskError(
            f"{what} is {len(key)} characters long; at most {UNIQUE_KEY_MAX_LENGTH} are stored "
            f"(hash a longer one, or use @task(unique=True)): {key[:40]!r}..."
        )
    return key


def _unique_key(key: object) -> object:
    """A string, a function of the call's arguments returning one, or ``None``."""
    if key is None or callable(key):
        return key
    return validate_unique_key(key)


def _unique_for(period: object) -> datetime.timedelta | None:
    if period is None:
        return None
    seconds = period.total_seconds() if isinstance(period, datetime.timedelta) else period
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not 0 < seconds < MAX_TIMEOUT * 10
    ):
        raise InvalidTaskError(
            "unique_for must be a positive timedelta (or seconds) under ten years, or None, "
            f"not {period!r}."
        )
    return datetime.timedelta(seconds=seconds)


def _concurrency_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidTaskError(
            f"concurrency_limit must be an int from 1 to {MAX_LIMIT}, or None, not {limit!r}."
        )
    return limit


def _limit_key(option: str) -> Callable[[object], object]:
    def check(key: object) -> object:
        if key is None or callable(key):
            return key
        return validate_unique_key(key, what=option)

    return check


def _tags(tags: object) -> tuple[str, ...]:
    """Tags as stored: distinct non-empty strings of at most 100 characters, in order."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidTaskError(f"tags must be a list of strings, not {tags!r}.")
    found = tuple(dict.fromkeys(tags))
    for tag in found:
        if not isinstance(tag, str) or not tag or len(tag) > TAG_MAX_LENGTH:
            raise InvalidTaskError(
                f"A tag is a non-empty string of at most {TAG_MAX_LENGTH} characters, not {tag!r}."
            )
    if len(found) > MAX_TAGS:
        raise InvalidTaskError(f"A task has at most {MAX_TAGS} tags, not {len(found)}.")
    return found


RATE_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(rate: object, what: str = "rate_limit") -> tuple[int, float]:
    """``"100/m"`` as (100 starts, per 60 seconds)."""
    count, _, unit = rate.partition("/") if isinstance(rate, str) else ("", "", "")
    if not count.isdigit() or not 0 < int(count) <= MAX_LIMIT or unit not in RATE_PERIODS:
        raise InvalidTaskError(
            f'{what} must be like "100/m": a count from 1 to {MAX_LIMIT} per s, m, h or d, '
            f"not {rate!r}."
        )
    return int(count), RATE_PERIODS[unit]


def _rate_limit(rate: object) -> str | None:
    if rate is None:
        return None
    parse_rate(rate)
    return str(rate)


UNIQUE_WAITING = (
    "A task that waits for other tasks (depends_on, a chain, a group) cannot be unique: "
    "unique_key and unique apply to tasks scheduled on their own."
)


def _depends_on(tasks: object) -> tuple[int, ...]:
    """The ids of the tasks (rows or ids) a call waits for, distinct, in order."""
    if isinstance(tasks, str) or not isinstance(tasks, list | tuple | set | frozenset):
        raise InvalidTaskError(f"depends_on must be a list of tasks or task ids, not {tasks!r}.")
    ids = []
    for item in tasks:
        pk = getattr(item, "pk", item)
        if not isinstance(pk, int) or isinstance(pk, bool) or pk < 1:
            raise InvalidTaskError(
                f"depends_on takes scheduled tasks (their rows or ids), not {item!r}."
            )
        ids.append(pk)
    return tuple(dict.fromkeys(ids))


def _hook(option: str) -> Callable[[object], str | None]:
    def check(hook: object) -> str | None:
        """A task or a task's name (checked against the registry at ``schedule()``: the
        hook may be defined after the task that names it)."""
        if hook is None:
            return None
        name = hook if isinstance(hook, str) else getattr(hook, "name", None)
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidTaskError(f"{option} must be a registered task or its name, not {hook!r}.")
        return name

    return check


LABEL_MAX_LENGTH = 100


def _label(label: object) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or not label or len(label) > LABEL_MAX_LENGTH:
        raise InvalidTaskError(
            f"label must be a non-empty string of at most {LABEL_MAX_LENGTH} characters, "
            f"not {label!r}."
        )
    return label


def _on_duplicate(value: object) -> str:
    if value not in ON_DUPLICATE:
        raise InvalidTaskError(f"on_duplicate must be 'return' or 'raise', not {value!r}.")
    return str(value)


def resolve_eta(eta: object, now: datetime.datetime) -> datetime.datetime:
    """When a call may run: ``eta``, or ``now`` without one."""
    if eta is None:
        return now
    if not isinstance(eta, datetime.datetime):
        raise InvalidTaskError(f"eta must be a datetime, not {type(eta).__name__}.")
    if settings.USE_TZ:
        if timezone.is_naive(eta):
            raise InvalidTaskError(
                "eta is a naive datetime while USE_TZ = True; pass an aware datetime, e.g. "
                "timezone.now() + timedelta(minutes=5)."
            )
        return eta
    return timezone.make_naive(eta) if timezone.is_aware(eta) else eta


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """How a task's calls are stored: the decorator's options, then any ``using()``'s.
    ``None`` means "from settings, when the call is scheduled"."""

    queue: str | None = None
    priority: int = 0
    eta: datetime.datetime | None = None
    max_retries: int | None = None
    retry_delay: int | None = None
    retry_backoff: bool = False
    timeout: float | None = None
    # Unique tasks (firefly_tasks.uniqueness): a key, or derived from the call (``unique``).
    unique: bool = False
    unique_key: str | Callable[..., str] | None = None
    unique_for: datetime.timedelta | None = None
    on_duplicate: str = "return"
    # Concurrency limits (firefly_tasks.slots): at most ``concurrency_limit`` tasks with
    # the same key run at once; the key defaults to the task's name.
    concurrency_limit: int | None = None
    concurrency_key: str | Callable[..., str] | None = None
    tags: tuple[str, ...] = ()
    # Rate limits (firefly_tasks.rates): at most N starts a period for one key.
    rate_limit: str | None = None
    rate_key: str | Callable[..., str] | None = None
    # Workflows (firefly_tasks.dependencies): the ids of tasks that must finish first.
    depends_on: tuple[int, ...] = ()
    # Hooks (firefly_tasks.hooks): names of tasks to schedule with this one's id when it
    # completes, or when it fails for good or is cancelled.
    on_success: str | None = None
    on_failure: str | None = None
    # A label shared by related calls (django-q's ``group``): firefly_tasks.labels.
    label: str | None = None

    @property
    def min_engine(self) -> int:
        """The lowest engine version that runs a call with these options correctly: the
        highest ``OPTION_ENGINES`` entry of the options set away from their default."""
        needed = [
            version
            for name, version in OPTION_ENGINES.items()
            if getattr(self, name) != TaskOptions.__dataclass_fields__[name].default
        ]
        return max([1, *needed])

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with ``changes``, each checked now: a bad option fails here, not when a
        call is scheduled."""
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            validator = VALIDATORS.get(name)
            if validator is None:
                raise InvalidTaskError(_unknown(name))
            checked[name] = validator(value)
        if "tags" in checked:  # a call's tags add to the task's
            checked["tags"] = _tags((*self.tags, *checked["tags"]))
        options = dataclasses.replace(self, **checked)
        if options.concurrency_key is not None and options.concurrency_limit is None:
            raise InvalidTaskError(
                "concurrency_key needs a concurrency_limit: how many tasks with one key may "
                "run at once."
            )
        if options.rate_key is not None and options.rate_limit is None:
            raise InvalidTaskError('rate_key needs a rate_limit, such as "100/m".')
        if options.depends_on and options.is_unique:
            raise InvalidTaskError(UNIQUE_WAITING)
        return options

    @property
    def is_unique(self) -> bool:
        return self.unique or self.unique_key is not None


def _queue(queue: object) -> str | None:
    return None if queue is None else validate_queue(queue)


def _eta(eta: object) -> object:
    resolve_eta(eta, timezone.now())
    return eta


def _non_negative(name: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        validate_non_negative(name, value)
        return value

    return check


VALIDATORS: dict[str, Callable[[Any], object]] = {
    "queue": _queue,
    "priority": validate_priority,
    "eta": _eta,
    "max_retries": _non_negative("max_retries"),
    "retry_delay": _non_negative("retry_delay"),
    "retry_backoff": bool,
    "timeout": validate_timeout,
    "unique": bool,
    "unique_key": _unique_key,
    "unique_for": _unique_for,
    "on_duplicate": _on_duplicate,
    "concurrency_limit": _concurrency_limit,
    "concurrency_key": _limit_key("concurrency_key"),
    "tags": _tags,
    "rate_limit": _rate_limit,
    "rate_key": _limit_key("rate_key"),
    "depends_on": _depends_on,
    "on_success": _hook("on_success"),
    "on_failure": _hook("on_failure"),
    "label": _label,
}
"""Each option's check, returning the value to keep, by name: the options that
``TaskOptions.replace()`` (and so ``using()`` and the decorators) knows."""

OPTION_ENGINES: dict[str, int] = {
    "timeout": 2,
    "unique": 3,
    "unique_key": 3,
    "concurrency_limit": 3,
    "rate_limit": 3,
    "depends_on": 4,
    "on_success": 4,
    "on_failure": 4,
}
"""The engine version (``states.ENGINE_VERSION``) that introduced an option, for options an
older consumer would ignore: a call using one is left to consumers that know it."""

TASK_ONLY = {
    "atomic": "atomic is part of the task's code: set it with @task(atomic=...)",
}
"""Options of the decorator that a call cannot change, and why."""


def _unknown(name: str) -> str:
    if name in TASK_ONLY:
        return f"{TASK_ONLY[name]}, not per call."
    return f"Unknown task option {name!r}; the options are: {', '.join(VALIDATORS)}."
