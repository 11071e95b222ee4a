"""Changing many selected tasks at once, the machinery of the task list's actions.

Each change touches only the rows still in the state it expects, in chunks: lock the chunk's
rows that qualify, change them with one set-based ``UPDATE`` (or ``DELETE``), and bulk-insert
one admin ``LogEntry`` per changed task, all in one short transaction (the entries' own, just
before, where the admin's history lives on another database than the tasks). Selecting every
task of a filtered list (``select_across``) therefore scales to tens of thousands of rows, and
stops at the tasks the list showed (``selection.py``): newer ones are left alone, and counted.

A running task belongs to its worker, so the actions leave it alone, unless it is orphaned:
no live worker holds it (its worker is gone, stopped or dead) and it was claimed longer than
``FIREFLY_WORKER_TIMEOUT`` ago, the rows a consumer's maintenance recovers by itself. Those can
be requeued, cancelled or deleted, which matters when no consumer runs to recover them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from firefly_admin.display import count
from firefly_admin.history import log_entry
from firefly_admin.models import Task
from firefly_admin.selection import RefusedSelection, Selection
from firefly_tasks.clock import database_time_ago
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.queryset import TaskQuerySet
from firefly_tasks.registry import registry
from firefly_tasks.states import LIVE_WORKER_STATES, AttemptOutcome, TaskStatus

logger = logging.getLogger("firefly_admin")

CHUNK_SIZE = 1000

RowMessage = Callable[[int, str], str]


def orphaned() -> Q:
    """Running tasks that no live worker holds, claimed longer than a worker timeout ago."""
    live = WorkerModel.objects.filter(state__in=LIVE_WORKER_STATES).values("pk")
    claimed_long_ago = Q(started__isnull=True) | Q(
        started__lt=database_time_ago(engine_settings.WORKER_TIMEOUT)
    )
    no_live_worker = Q(worker_id__isnull=True) | ~Q(worker_id__in=live)
    return Q(status=TaskStatus.RUNNING) & claimed_long_ago & no_live_worker


def unregistered() -> Q:
    """Firefly tasks whose name no registered task answers to: requeued, they would fail again
    at once (a DEP 14 row is the framework's to resolve)."""
    return Q(backend="") & ~Q(func_name__in=registry.known_names())


def key_held_elsewhere() -> Q:
    """Tasks whose unique key another task holds now: requeueing them is refused."""
    holders = TaskModel.objects.filter(unique_hold=OuterRef("unique_key")).exclude(
        pk=OuterRef("pk")
    )
    return Q(unique_key__isnull=False) & Q(Exists(holders))


def held_by_a_worker() -> Q:
    """Running tasks that are not orphaned: their worker owns them until they finish."""
    return Q(status=TaskStatus.RUNNING) & ~orphaned()


# What ending an attempt reads of a task row.
ORPHAN_FIELDS = ("pk", "attempt", "started", "worker_id", "isolation", "lost_attempts")


def end_orphaned_attempts(rows: TaskQuerySet, why: str) -> int:
    """Record the orphaned rows' unfinished attempts as interrupted, and requeue them."""
    orphans = list(rows.filter(orphaned()).only(*ORPHAN_FIELDS))
    workers = WorkerModel.objects.in_bulk({row.worker_id for row in orphans if row.worker_id})
    error = f"Interrupted: {why}, as no live worker held it"
    return sum(
        TaskModel.objects.recover(
            row, workers.get(row.worker_id or 0), AttemptOutcome.INTERRUPTED, error=error
        )
        for row in orphans
    )


def apply_in_chunks(
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    guard: Q,
    change: Callable[[TaskQuerySet], object],
    message: RowMessage,
    action_flag: int = CHANGE,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[int, int]:
    """Apply ``change`` to the rows of ``queryset`` that still match ``guard``.

    Returns ``(done, skipped)``: rows changed, and rows selected but no longer in the expected
    state. Every changed row gets a ``LogEntry`` written in the same transaction.
    """
    using = queryset.db
    logs = router.db_for_write(LogEntry)  # the default database's, where the queue has its own
    ids = queryset.order_by("pk").values_list("pk", flat=True)
    done = seen = 0
    last = None
    while True:
        chunk = list((ids if last is None else ids.filter(pk__gt=last))[:chunk_size])
        if not chunk:
            break
        seen += len(chunk)
        last = chunk[-1]
        with transaction.atomic(using=using), _logging_atomic(using, logs):
            rows = list(
                Task.objects.using(using)
                .select_for_update()
                .filter(guard, pk__in=chunk)
                .values_list("pk", "func_name")
            )
            if not rows:
                continue
            LogEntry.objects.using(logs).bulk_create(
                log_entry(
                    request,
                    Task,
                    str(pk),
                    f"{name} #{pk}",
                    message(pk, name),
                    action_flag=action_flag,
                    using=logs,
                )
                for pk, name in rows
            )
            change(Task.objects.using(using).filter(guard, pk__in=[pk for pk, _ in rows]))
            done += len(rows)
    return done, seen - done


def _logging_atomic(using: str, logs: str) -> contextlib.AbstractContextManager[Any]:
    """The log entries' transaction, where they live on another database than the tasks:
    entered inside the tasks' one, so it commits first."""
    return contextlib.nullcontext() if logs == using else transaction.atomic(using=logs)


def selected(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> Selection | None:
    """The selection an action acts on; ``None``, with an error message, when it is refused."""
    try:
        return Selection.from_request(request, queryset)
    except RefusedSelection as refusal:
        modeladmin.message_user(request, str(refusal), messages.ERROR)
        return None


def change_selected(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    selection: Selection,
    *,
    verb: str,
    guard: Q,
    change: Callable[[TaskQuerySet], object],
    message: RowMessage,
    skipped_because: str,
    action_flag: int = CHANGE,
) -> None:
    """Every action's last step: :func:`apply_in_chunks`, then tell the user and the log how
    many tasks were changed, how many were skipped (``skipped_because``), and how many newer
    matching tasks "select all" left alone. ``verb`` is English (``gettext_noop``): the log
    says it so, the user reads it translated."""
    done, skipped = apply_in_chunks(
        request,
        selection.rows,
        guard=guard,
        change=change,
        message=message,
        action_flag=action_flag,
    )
    newer = selection.newer()
    text = _("%(action)s: %(done)s, %(skipped)s") % {
        "action": _(verb),
        "done": ngettext("%(count)s done", "%(count)s done", done) % {"count": count(done)},
        "skipped": ngettext("%(count)s skipped", "%(count)s skipped", skipped)
        % {"count": count(skipped)},
    }
    text += f" ({skipped_because})" if skipped else ""
    if newer.value:
        left_alone = ngettext(
            "%(count)s newer matching task left alone (scheduled after the list was shown)",
            "%(count)s newer matching tasks left alone (scheduled after the list was shown)",
            newer.quantity,
        )
        text += "; " + left_alone % {"count": newer}
    modeladmin.message_user(request, f"{text}.", messages.SUCCESS if done else messages.WARNING)
    logger.info(
        "admin action=%s user=%s done=%s skipped=%s newer=%s",
        verb.lower(),
        request.user,
        done,
        skipped,
        newer,
    )


def move_selected(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    verb: str,
    past_tense: str,
    expected: Q,
    move: Callable[[TaskQuerySet], object],
    message: str,
    skipped_because: str,
    refuse: tuple[tuple[Q, str], ...] = (),
) -> None:
    """Move the selected tasks still in the ``expected`` states, and the orphaned ones, to
    another state; an orphan's unfinished attempt is recorded as interrupted first, as a
    consumer's maintenance would have. ``refuse``: the tasks among them left alone, and why."""
    selection = selected(modeladmin, request, queryset)
    if selection is None:
        return
    guard = expected | orphaned()
    for condition, why in refuse:
        refused = selection.rows.filter(guard & condition).count()
        guard &= ~condition
        if refused:
            because = _("%(count)s because %(reason)s") % {"count": count(refused), "reason": why}
            skipped_because += f"; {because}"

    def change(rows: TaskQuerySet) -> None:
        end_orphaned_attempts(rows, f"{past_tense} from the admin")
        move(rows)

    change_selected(
        modeladmin,
        request,
        selection,
        verb=verb,
        guard=guard,
        change=change,
        message=lambda pk, name: message,
        skipped_because=skipped_because,
    )
