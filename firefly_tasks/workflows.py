"""Signatures, chains and groups: tasks scheduled together, each waiting for the ones before
it (docs/workflows.md).

``add.s(1, 2)`` is a call of a task not yet scheduled; in a chain it receives the previous
link's result as its first argument (``add.si(1, 2)`` receives nothing). ``chain(a, b, c)``
runs its links one after another; ``group(a, b).then(c)`` runs its members in parallel and
then ``c`` with their results in order. ``schedule()`` checks and serializes every call
first, then inserts the whole workflow in one transaction: all of it or nothing. What runs a
waiting task when its time comes is ``firefly_tasks.dependencies``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

from django.utils import timezone

from firefly_tasks import calls, database
from firefly_tasks.dependencies import WORKFLOW_ENGINE
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.options import UNIQUE_WAITING, TaskOptions
from firefly_tasks.registry import registry
from firefly_tasks.states import Feed

if TYPE_CHECKING:
    from firefly_tasks.models import TaskModel


class Task(Protocol):
    """What a signature needs of its task (``firefly_tasks.task.Task``)."""

    name: str
    options: TaskOptions

    def _check_sync_context(self) -> None: ...


class Signature:
    """A call of a task, not yet scheduled: ``add.s(1, 2)``, or ``add.si(1, 2)``, which
    receives nothing from the tasks it waits for."""

    def __init__(
        self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], *, immutable: bool
    ) -> None:
        name = getattr(task, "name", None)
        if name is None or name not in registry or not hasattr(task, "options"):
            raise InvalidTaskError(
                f"{task!r} is not a registered task: decorate the function with @task."
            )
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.immutable = immutable
        self.options: TaskOptions = task.options

    def __repr__(self) -> str:
        kind = "si" if self.immutable else "s"
        return f"<Signature {self.task.name}.{kind}{self.args!r}>"

    def using(self, **options: Any) -> Self:
        """A copy whose call gets ``options``, as ``task.using()``'s."""
        configured = copy.copy(self)
        configured.options = self.options.replace(**options)
        return configured

    def schedule(self) -> TaskModel:
        """Schedule this call on its own."""
        return _run_if_immediate(calls.store(self._rows(Feed.NOTHING)))[0]

    def _rows(self, feed: Feed) -> list[TaskModel]:
        """The call as an unsaved row, receiving ``feed`` (its ``waits_for`` is set by the
        caller)."""
        task = self.task
        task._check_sync_context()
        if feed != Feed.NOTHING and self.options.is_unique:
            raise InvalidTaskError(UNIQUE_WAITING)
        call = [(self.args, self.kwargs)]
        (row,) = calls.build_rows(task.name, self.options, call, now=timezone.now())
        row.feed = Feed.NOTHING if self.immutable else feed
        return [row]


class Chain:
    """Links that run one after another: ``chain(fetch.s(url), parse.s(), store.s())``. A
    link may be a group: its members wait for the link before, and the link after waits for
    the group's callback, or for all its members (then receiving their results in order)."""

    def __init__(self, links: tuple[Signature | Group, ...]) -> None:
        if len(links) < 2:
            raise InvalidTaskError(
                f"A chain needs at least two links, not {len(links)}: schedule a single "
                "signature with its schedule()."
            )
        for link in links:
            if not isinstance(link, Group):
                _check_signature(link, "A chain's link")
        self.links = links

    def __repr__(self) -> str:
        return f"<Chain of {len(self.links)} links>"

    def schedule(self) -> list[TaskModel]:
        """Store every link, the first ready to run and each other waiting for the one before
        it, in one transaction; return their rows in order (a group's members, then its
        callback)."""
        stages = []
        feed = Feed.NOTHING  # the first link receives nothing
        for link in self.links:
            stage = _Stage.of(link, feed)
            stages.append(stage)
            feed = stage.feeds
        return _run_if_immediate(_store(stages))


class ScheduledGroup(NamedTuple):
    """What a group's ``schedule()`` returns: its members' rows, and its callback's."""

    members: list[Any]
    callback: Any | None


@dataclasses.dataclass(frozen=True)
class Group:
    """Members that run in parallel, on any consumers: ``group(resize.s(i) for i in ids)``;
    with ``.then(notify.s())``, a callback that runs once after all of them finished."""

    members: tuple[Signature, ...]
    callback: Signature | None = None
    run_if_failed: bool = False

    def then(self, callback: Signature, *, run_if_failed: bool = False) -> Group:
        """This group with ``callback``, which receives the members' results in order, after
        every member completed; with ``run_if_failed``, after every member finished however,
        a failed member's place holding a ``TaskFailure``. Without it, a member failing for
        good cancels the callback."""
        _check_signature(callback, "A group's callback")
        return dataclasses.replace(self, callback=callback, run_if_failed=bool(run_if_failed))

    def schedule(self) -> ScheduledGroup:
        """Store the members (calls of one task with the same options in one ``INSERT``, as
        ``schedule_many()``) and the callback waiting for them, in one transaction."""
        stored = _run_if_immediate(_store([_Stage.of(self, Feed.NOTHING)]))
        if self.callback is None:
            return ScheduledGroup(stored, None)
        return ScheduledGroup(stored[:-1], stored[-1])


@dataclasses.dataclass
class _Stage:
    """A link of a workflow, built and checked, not stored: its entry rows (in runs stored
    together), waiting for the link before, and a callback waiting for them, if any."""

    runs: list[list[TaskModel]]
    callback: TaskModel | None = None
    fans_out: bool = False

    @property
    def feeds(self) -> Feed:
        """What the link after this one receives: one result, or a group's results."""
        return Feed.RESULTS if self.fans_out and self.callback is None else Feed.RESULT

    @classmethod
    def of(cls, link: Signature | Group, feed: Feed) -> _Stage:
        """``link`` built, its entries receiving ``feed`` of the link before."""
        if isinstance(link, Signature):
            if link.options.is_unique:  # a duplicate's row may be finished: nothing to wait for
                raise InvalidTaskError(UNIQUE_WAITING)
            return cls([link._rows(feed)])
        callback = None
        if link.callback is not None:
            (callback,) = link.callback._rows(Feed.RESULTS)
            callback.run_if_failed = link.run_if_failed
        return cls(_runs(link.members, feed), callback, fans_out=True)


def _store(stages: list[_Stage]) -> list[TaskModel]:
    """Insert built stages in one transaction, each waiting for the one before; every row
    stored, in order."""
    if len(stages) > 1 or stages[0].callback is not None:
        for stage in stages:
            _needs_workflow_engine([row for run in stage.runs for row in run])
            _needs_workflow_engine([stage.callback] if stage.callback else [])
    stored: list[TaskModel] = []
    exits: list[TaskModel] = []
    with database.atomic():
        for stage in stages:
            fresh = [row.pk for row in stored]
            entries: list[TaskModel] = []
            for run in stage.runs:
                for row in run if exits else ():
                    row.waits_for = tuple((parent.pk, i) for i, parent in enumerate(exits))
                entries += calls.store(run, fresh=fresh)
            stored += entries
            exits = entries
            if stage.callback is not None:
                stage.callback.waits_for = tuple((row.pk, i) for i, row in enumerate(entries))
                exits = calls.store([stage.callback], fresh=[row.pk for row in stored])
                stored += exits
    return stored


def chain(*links: Signature | Group) -> Chain:
    """Links that run one after another, each receiving the previous one's result (a group's:
    its members' results, or its callback's result)."""
    return Chain(links)


def group(*members: Signature | Iterable[Signature]) -> Group:
    """Members that run in parallel: ``group(a.s(1), b.s(2))`` or ``group(a.s(i) for i in
    ids)``."""
    found: list[Any] = []
    for member in members:
        if isinstance(member, Signature):
            found.append(member)
        elif isinstance(member, Iterable) and not isinstance(member, str | bytes | dict):
            found.extend(member)
        else:
            found.append(member)
    if not found:
        raise InvalidTaskError("A group needs at least one member.")
    for member in found:
        _check_signature(member, "A group's member")
    return Group(tuple(found))


def _check_signature(value: object, what: str) -> None:
    if not isinstance(value, Signature):
        raise InvalidTaskError(
            f"{what} must be a signature of a registered task (task.s(...) or task.si(...)), "
            f"not {value!r}."
        )


def _runs(members: tuple[Signature, ...], feed: Feed) -> list[list[TaskModel]]:
    """The members' rows, consecutive calls of one task with the same options built
    together: each run is stored in one ``INSERT`` (one a member, when they wait for a link
    before them). ``feed``: what a member receives of that link."""
    runs: list[list[TaskModel]] = []
    start = 0
    for end in range(1, len(members) + 1):
        if end == len(members) or not _same_run(members[start], members[end]):
            first = members[start]
            if first.options.is_unique:
                raise InvalidTaskError(UNIQUE_WAITING)
            first.task._check_sync_context()
            found = [(member.args, member.kwargs) for member in members[start:end]]
            run = calls.build_rows(first.task.name, first.options, found, now=timezone.now())
            for row in run:
                row.feed = Feed.NOTHING if first.immutable else feed
            runs.append(run)
            start = end
    return runs


def _same_run(a: Signature, b: Signature) -> bool:
    return (a.task.name, a.options, a.immutable) == (b.task.name, b.options, b.immutable)


def _needs_workflow_engine(rows: list[TaskModel]) -> None:
    for row in rows:
        row.min_engine = max(row.min_engine, WORKFLOW_ENGINE)


def _run_if_immediate(rows: list[TaskModel]) -> list[TaskModel]:
    """Under ``FIREFLY_RUN_IMMEDIATELY``, run the workflow's tasks in order, once it is
    stored: each waiting one runs if the ones before promoted it."""
    calls.run_if_immediate(rows)
    return rows
