"""The task changelist's actions: requeue, cancel, rename and delete.

Each action changes only the rows still in the state it expects, in chunks: lock the chunk's
rows that qualify, change them with one set-based ``UPDATE`` (or ``DELETE``), and bulk-insert
one admin ``LogEntry`` per changed task, all in one short transaction. Selecting every task
of a filtered list (``select_across``) therefore scales to tens of thousands of rows, and
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
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from firefly_admin.confirmation import TypedConfirmation, confirmation_page, wants_exact_count
from firefly_admin.counting import capped_count
from firefly_admin.forms import RenameTaskForm
from firefly_admin.history import log_entry
from firefly_admin.models import Task
from firefly_admin.selection import RefusedSelection, Selection
from firefly_tasks.clock import database_time_ago
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.queryset import TaskQuerySet
from firefly_tasks.registry import registry
from firefly_tasks.states import LIVE_WORKER_STATES, AttemptOutcome, Event, TaskStatus, sources

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
    matching tasks "select all" left alone."""
    done, skipped = apply_in_chunks(
        request,
        selection.rows,
        guard=guard,
        change=change,
        message=message,
        action_flag=action_flag,
    )
    newer = selection.newer()
    text = f"{verb}: {done:,} done, {skipped:,} skipped"
    text += f" ({skipped_because})" if skipped else ""
    if newer.value:
        text += (
            f"; {newer} newer matching task{newer.plural} left alone (scheduled after the "
            "list was shown)"
        )
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
            skipped_because += f"; {refused:,} because {why}"

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


@admin.action(permissions=["requeue"], description="Requeue selected tasks (run now)")
def requeue_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Failed, cancelled or orphaned tasks back to ``created``, to run now; attempts are kept."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb="Requeue",
        past_tense="requeued",
        expected=Q(status__in=sources(Event.REQUEUE)),
        # skip_held: a key taken meanwhile leaves its task alone (and is counted as done).
        move=lambda rows: rows.requeue(skip_held=True),
        message="Requeued to run now.",
        skipped_because="not failed, cancelled or orphaned",
        refuse=(
            (key_held_elsewhere(), "an unfinished task holds their unique key"),
            (unregistered(), "no registered task answers to their name here"),
        ),
    )


@admin.action(permissions=["cancel"], description="Cancel selected tasks")
def cancel_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Tasks still waiting to run, or orphaned, become ``cancelled``; running tasks that a
    worker holds are left alone."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb="Cancel",
        past_tense="cancelled",
        expected=Q(status__in=sources(Event.CANCEL)),
        move=lambda rows: rows.cancel(),
        message="Cancelled.",
        skipped_because="not waiting to run or orphaned",
    )


@admin.action(permissions=["cancel"], description="Cancel selected tasks, stopping running ones")
def cancel_running_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """As :func:`cancel_tasks`, and running tasks too: each is cancelled now, and the consumer
    running it stops it (``TaskCancelled``; docs/timeouts.md)."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb="Cancel",
        past_tense="cancelled",
        expected=Q(status__in=sources(Event.CANCEL) + sources(Event.ABORT)),
        move=lambda rows: rows.cancel(running=True),
        message="Cancelled (stopped if it was running).",
        skipped_because="already finished",
    )


@admin.action(permissions=["rename"], description="Rename selected tasks…")
def rename_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> TemplateResponse | None:
    """Point tasks at another registered task name, e.g. after the function moved."""
    selection = selected(modeladmin, request, queryset)
    if selection is None:
        return None
    form = RenameTaskForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        new_name = form.cleaned_data["func_name"]
        change_selected(
            modeladmin,
            request,
            selection,
            verb="Rename",
            guard=Q(status__in=sources(Event.RENAME)) & ~Q(func_name=new_name),
            change=lambda rows: rows.rename(new_name),
            message=lambda pk, name: f"Renamed from {name} to {new_name}.",
            skipped_because="running, or named so already",
        )
        return None
    return confirmation_page(
        modeladmin,
        request,
        selection,
        selection.count(exact=wants_exact_count(request)),
        "rename_tasks",
        "Rename tasks",
        "rename.html",
        form=form,
    )


@admin.action(permissions=["delete"], description="Delete selected tasks…")
def delete_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> TemplateResponse | None:
    """Delete tasks and their attempts, after a confirmation that counts them; past
    ``FIREFLY_ADMIN_CONFIRM_DELETE_ABOVE`` tasks, the operator types how many first."""
    selection = selected(modeladmin, request, queryset)
    if selection is None:
        return None
    # Counted exactly (within the count timeout) on the page and again on confirming: what
    # the operator types is checked against the tasks that would be deleted now.
    count = selection.count(exact=True)
    typed = TypedConfirmation.for_delete(count)
    error = None
    if request.POST.get("post") == "yes":
        error = typed.error(request.POST) if typed else None
        if error is None:
            change_selected(
                modeladmin,
                request,
                selection,
                verb="Delete",
                guard=~held_by_a_worker(),
                change=lambda rows: rows.only("pk").delete(),
                message=lambda pk, name: "",
                skipped_because="running on a live worker",
                action_flag=DELETION,
            )
            return None
    return confirmation_page(
        modeladmin,
        request,
        selection,
        count,
        "delete_tasks",
        "Delete tasks",
        "delete.html",
        attempts=capped_count(
            TaskAttempt.objects.filter(task_id__in=selection.rows.order_by().values("pk"))
        ),
        running=capped_count(selection.rows.filter(held_by_a_worker())),
        typed=typed,
        error=error,
    )
