"""Hooks on the task queryset: ``@task(on_success=..., on_failure=...)`` and ``using(...)``
name tasks that are scheduled, with the finished task's id as their argument, in the
transaction that records its final outcome (docs/workflows.md, "Hooks").

A hook is a task of its own: it runs on a consumer like any task, with its own options
(queue, retries, timeout), so a failing hook is retried and visible, and it never changes
the outcome of the task that triggered it. ``on_success`` follows a completion,
``on_failure`` a failure for good or a cancel; retries trigger nothing. Each outcome schedules
its hook once: the transition that records it is guarded, so it happens once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from firefly_tasks import serialization
from firefly_tasks.call_columns import column_values
from firefly_tasks.conf import settings
from firefly_tasks.dependencies import Dependencies, edge_model
from firefly_tasks.options import TaskOptions
from firefly_tasks.registry import registry
from firefly_tasks.states import Event, sources

FOLLOWED = ("pk", "on_success", "on_failure")


class Hooks(Dependencies):
    """The task queryset's hooks, and what follows a task's final outcome."""

    def _finished(self, rows: Iterable[Any], *, succeeded: bool) -> None:
        """``rows`` reached their final outcome in this transaction: what waits for them
        (``firefly_tasks.dependencies``), then their hooks."""
        rows = list(rows)
        cancelled = self._settle([row.pk for row in rows], succeeded=succeeded)
        if cancelled:  # what waited for them and was cancelled with them: those fail too
            hooked = self._all().filter(pk__in=cancelled, on_failure__isnull=False)
            rows += list(hooked.only(*FOLLOWED))
        field = "on_success" if succeeded else "on_failure"
        hooks = [(row, getattr(row, field)) for row in rows if getattr(row, field)]
        if hooks:
            self._schedule_hooks(hooks)

    def _schedule_hooks(self, hooks: list[tuple[Any, str]]) -> None:
        """Insert a call of each hook with its task's id (one ``INSERT`` a hook task)."""
        now = timezone.now()
        by_hook: dict[str, list[Any]] = {}
        for row, hook in hooks:
            by_hook.setdefault(hook, []).append(row)
        for hook, rows in sorted(by_hook.items()):
            task: Any = registry.get(hook)
            options = getattr(task, "options", None) or TaskOptions()
            values = column_values(hook, _hook_options(options), now=now)
            built = []
            for row in rows:
                built.append(
                    self.model(
                        **values,
                        params_data=serialization.dumps_call((row.pk,), {}, values["serializer"]),
                        params_preview=serialization.call_preview(
                            (row.pk,), {}, settings.PREVIEW_LENGTH
                        ),
                    )
                )
            self._all().insert_calls(built)

    def _cancel_unstarted(self, **changes: Any) -> int:
        """Cancel the tasks of this queryset still waiting to run; then settle the edges of
        those other tasks wait for, and schedule their ``on_failure`` hooks. Those are
        locked first, so that no claim takes one meanwhile."""
        with transaction.atomic(using=self.db):
            waited_for = edge_model(self)._default_manager.using(self.db).values("parent_id")
            followed = self.filter(status__in=sources(Event.CANCEL)).filter(
                Q(pk__in=waited_for) | Q(on_failure__isnull=False)
            )
            rows = list(followed.select_for_update().order_by("pk").only(*FOLLOWED))
            tasks: Any = self  # a TaskQuerySet: it moves states (``_move``)
            cancelled = int(tasks._move(Event.CANCEL, **changes))
            self._finished(rows, succeeded=False)
        return cancelled


def _hook_options(options: TaskOptions) -> TaskOptions:
    """A hook's call: its task's options, but never hooks or waits of its own from them
    (a hook whose task has hooks would chain outcomes without end)."""
    return TaskOptions(
        queue=options.queue,
        priority=options.priority,
        max_retries=options.max_retries,
        retry_delay=options.retry_delay,
        retry_backoff=options.retry_backoff,
        timeout=options.timeout,
    )
