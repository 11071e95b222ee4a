"""Periodic schedules declared in code, ``FIREFLY_SCHEDULES`` and ``@periodic``, and the
rules they follow: :func:`spec` checks one entry (the system checks, the consumer's sync and
the admin's form all use it). ``firefly_tasks.schedules`` syncs them to the table."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from firefly_tasks import serialization
from firefly_tasks.cadence import Cadence, interval, time_zone
from firefly_tasks.conf import settings
from firefly_tasks.exceptions import (
    InvalidScheduleError,
    InvalidTaskError,
    SerializationError,
    UnknownTaskError,
)
from firefly_tasks.options import validate_priority, validate_queue
from firefly_tasks.registry import registry
from firefly_tasks.states import MissedTicks, Overlap

KEYS = frozenset(
    {"task", "backend", "cron", "every", "timezone", "args", "kwargs", "queue", "priority",
     "overlap", "missed", "enabled"}
)  # fmt: skip
NAME_MAX_LENGTH = 200
T = TypeVar("T")

# What @periodic declared, by schedule name.
_decorated: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class ScheduleSpec:
    """One declared schedule, checked: what its row is synced to."""

    name: str
    func_name: str
    backend: str
    cron: str
    every: datetime.timedelta | None
    time_zone: str
    params_data: str
    params_preview: str
    queue: str
    priority: int | None
    overlap: str
    missed: str
    enabled: bool

    def cadence(self, anchor: datetime.datetime | None) -> Cadence:
        return Cadence(
            cron=self.cron or None,
            every=self.every,
            zone=self.time_zone or settings.TIME_ZONE,
            anchor=anchor,
        )

    @property
    def digest(self) -> str:
        every = None if self.every is None else self.every // datetime.timedelta(microseconds=1)
        fields = [
            self.func_name, self.backend, self.cron, every, self.time_zone, self.params_data,
            self.queue,
            self.priority, self.overlap, self.missed, self.enabled,
        ]  # fmt: skip
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def times_like(self, row: Any) -> bool:
        """Whether the schedule row ``row`` ticks when this does (so its next tick stands)."""
        return (row.cron, row.every, row.time_zone) == (self.cron, self.every, self.time_zone)


def periodic(
    *, cron: str | None = None, every: float | datetime.timedelta | None = None,
    name: str | None = None, **options: Any,
) -> Callable[[T], T]:  # fmt: skip
    """Declare a schedule of the decorated task (put it above ``@task``)::

        @periodic(cron="0 3 * * *", timezone="Europe/Paris")
        @task()
        def nightly_report(): ...

    ``name`` defaults to the task's name; the other options are ``FIREFLY_SCHEDULES``'s.
    Raises :class:`InvalidScheduleError` at once for bad options."""

    def declare(task: T) -> T:
        task_name = getattr(task, "name", None)
        if not isinstance(task_name, str) or registry.get(task_name) is not task:
            raise InvalidScheduleError("@periodic goes above @task or @atask.")
        entry: dict[str, Any] = {"task": task_name, **options}
        if cron is not None:
            entry["cron"] = cron
        if every is not None:
            entry["every"] = every
        schedule_name = name or task_name
        spec(schedule_name, entry)  # bad options fail at import, where they are written
        _decorated[schedule_name] = entry
        return task

    return declare


def declared() -> dict[str, Any]:
    """Every declared entry by name: ``FIREFLY_SCHEDULES``, then ``@periodic``'s (a name
    declared in both is an error of the checks; settings win)."""
    return {**_decorated, **settings.SCHEDULES}


def decorated_names() -> set[str]:
    return set(_decorated)


def spec(name: object, entry: object) -> ScheduleSpec:
    """The checked form of one declared entry, or :class:`InvalidScheduleError` saying what
    is wrong with it."""
    if not isinstance(name, str) or not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidScheduleError(
            f"A schedule's name must be a non-empty string of at most {NAME_MAX_LENGTH} "
            f"characters, not {name!r}."
        )
    if not isinstance(entry, Mapping):
        raise InvalidScheduleError(f"Schedule {name!r} must be a dict, not {entry!r}.")
    unknown = sorted(set(map(str, entry)) - KEYS)
    if unknown:
        raise InvalidScheduleError(
            f"Schedule {name!r} has unknown keys {', '.join(unknown)} (known: "
            f"{', '.join(sorted(KEYS))})."
        )
    try:
        return _spec(name, entry)
    except (InvalidTaskError, UnknownTaskError) as exc:
        raise InvalidScheduleError(f"Schedule {name!r}: {exc}") from exc
    except InvalidScheduleError as exc:
        raise InvalidScheduleError(f"Schedule {name!r}: {exc}") from exc


def _spec(name: str, entry: Mapping[str, Any]) -> ScheduleSpec:
    target = entry.get("task")
    # A Firefly task's name is its path; a framework task's is module_path.
    func_name = getattr(target, "module_path", None) or getattr(target, "name", target)
    if not isinstance(func_name, str) or not func_name:
        raise InvalidScheduleError(f"task must name a registered task, not {target!r}.")
    framework = getattr(target, "module_path", None) is not None
    backend = entry.get("backend") or (getattr(target, "backend", "") if framework else "")
    if not isinstance(backend, str):
        raise InvalidScheduleError(f"backend must be a TASKS alias, not {backend!r}.")
    # A Firefly task, or with a backend a Django Tasks framework task bound to a FireflyBackend.
    task = registry.resolve(func_name, backend=backend)
    if "cron" in entry and "every" in entry:
        raise InvalidScheduleError("give cron or every, not both.")
    if "cron" not in entry and "every" not in entry:
        raise InvalidScheduleError("give cron or every.")
    zone = entry.get("timezone", "")
    if zone:
        time_zone(zone)
    every = None if entry.get("every") is None else interval(entry["every"])
    cadence = Cadence(cron=entry.get("cron"), every=every, zone=zone or "UTC")
    args, kwargs = entry.get("args", ()), entry.get("kwargs", {})
    if not isinstance(args, list | tuple):
        raise InvalidScheduleError(f"args must be a list or tuple, not {args!r}.")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidScheduleError(f"kwargs must be a dict of str keys, not {kwargs!r}.")
    overlap, missed = entry.get("overlap", Overlap.ALLOW), entry.get("missed", MissedTicks.ONCE)
    if overlap not in Overlap.values:
        raise InvalidScheduleError(f"overlap must be one of {Overlap.values}, not {overlap!r}.")
    if missed not in MissedTicks.values:
        raise InvalidScheduleError(f"missed must be one of {MissedTicks.values}, not {missed!r}.")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidScheduleError(f"enabled must be True or False, not {enabled!r}.")
    queue = entry.get("queue") or ""
    if queue:
        validate_queue(queue)
    priority = entry.get("priority")
    if priority is not None:
        validate_priority(priority)
    return ScheduleSpec(
        name=name,
        func_name=func_name if backend else task.name,
        backend=backend,
        cron=cadence.cron or "",
        every=cadence.every,
        time_zone=zone,
        # Plain JSON (with Firefly's tags for dates and decimals): the admin shows it.
        params_data=_stored(args, kwargs),
        params_preview=serialization.call_preview(
            tuple(args), dict(kwargs), settings.PREVIEW_LENGTH
        ),
        queue=queue,
        priority=priority,
        overlap=str(overlap),
        missed=str(missed),
        enabled=enabled,
    )


def _stored(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The arguments as a schedule row stores them: JSON, whatever ``FIREFLY_SERIALIZER``
    says, so that the admin can show and edit them."""
    try:
        return serialization.dumps_call(tuple(args), dict(kwargs), "json")
    except SerializationError as exc:
        reason = str(exc).split(". ")[0]
        raise InvalidScheduleError(
            f"a schedule's arguments are stored as JSON, and {reason}."
        ) from exc
