"""The task changelist's actions: requeue, run now, cancel, rename and delete, each a change
of the selected tasks through ``firefly_admin.bulk`` (chunks, guards, history)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.models import DELETION
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from firefly_admin.bulk import (
    change_selected,
    held_by_a_worker,
    key_held_elsewhere,
    move_selected,
    selected,
    unregistered,
)
from firefly_admin.confirmation import TypedConfirmation, confirmation_page, wants_exact_count
from firefly_admin.counting import capped_count
from firefly_admin.forms import RenameTaskForm
from firefly_tasks.clock import DatabaseNow
from firefly_tasks.models import TaskAttempt
from firefly_tasks.states import Event, TaskStatus, sources


@admin.action(permissions=["requeue"], description=gettext_lazy("Requeue selected tasks (run now)"))
def requeue_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Failed, cancelled or orphaned tasks back to ``created``, to run now; attempts are kept."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb=gettext_noop("Requeue"),
        past_tense="requeued",
        expected=Q(status__in=sources(Event.REQUEUE)),
        # skip_held: a key taken meanwhile leaves its task alone (and is counted as done).
        move=lambda rows: rows.requeue(skip_held=True),
        message="Requeued to run now.",
        skipped_because=_("not failed, cancelled or orphaned"),
        refuse=(
            (key_held_elsewhere(), _("an unfinished task holds their unique key")),
            (unregistered(), _("no registered task answers to their name here")),
        ),
    )


@admin.action(permissions=["requeue"], description=gettext_lazy("Run selected scheduled tasks now"))
def run_now_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Tasks waiting for their ``eta`` or a retry delay become ready now; nothing else of
    them changes (their attempts and retries stand)."""
    selection = selected(modeladmin, request, queryset)
    if selection is None:
        return
    change_selected(
        modeladmin,
        request,
        selection,
        verb=gettext_noop("Run now"),
        guard=Q(status=TaskStatus.CREATED, not_before__gt=DatabaseNow()),
        change=lambda rows: rows.update(not_before=DatabaseNow()),
        message=lambda pk, name: "Set to run now.",
        skipped_because=_("not scheduled for later"),
    )


@admin.action(permissions=["cancel"], description=gettext_lazy("Cancel selected tasks"))
def cancel_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """Tasks still waiting to run, or orphaned, become ``cancelled``; running tasks that a
    worker holds are left alone."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb=gettext_noop("Cancel"),
        past_tense="cancelled",
        expected=Q(status__in=sources(Event.CANCEL)),
        move=lambda rows: rows.cancel(),
        message="Cancelled.",
        skipped_because=_("not waiting to run or orphaned"),
    )


@admin.action(
    permissions=["cancel"], description=gettext_lazy("Cancel selected tasks, stopping running ones")
)
def cancel_running_tasks(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    """As :func:`cancel_tasks`, and running tasks too: each is cancelled now, and the consumer
    running it stops it (``TaskCancelled``; docs/timeouts.md)."""
    move_selected(
        modeladmin,
        request,
        queryset,
        verb=gettext_noop("Cancel"),
        past_tense="cancelled",
        expected=Q(status__in=sources(Event.CANCEL) + sources(Event.ABORT)),
        move=lambda rows: rows.cancel(running=True),
        message="Cancelled (stopped if it was running).",
        skipped_because=_("already finished"),
    )


@admin.action(permissions=["rename"], description=gettext_lazy("Rename selected tasks…"))
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
            verb=gettext_noop("Rename"),
            guard=Q(status__in=sources(Event.RENAME)) & ~Q(func_name=new_name),
            change=lambda rows: rows.rename(new_name),
            message=lambda pk, name: f"Renamed from {name} to {new_name}.",
            skipped_because=_("running, or named so already"),
        )
        return None
    return confirmation_page(
        modeladmin,
        request,
        selection,
        selection.count(exact=wants_exact_count(request)),
        "rename_tasks",
        _("Rename tasks"),
        "rename.html",
        form=form,
    )


@admin.action(permissions=["delete"], description=gettext_lazy("Delete selected tasks…"))
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
                verb=gettext_noop("Delete"),
                guard=~held_by_a_worker(),
                change=lambda rows: rows.only("pk").delete(),
                message=lambda pk, name: "",
                skipped_because=_("running on a live worker"),
                action_flag=DELETION,
            )
            return None
    return confirmation_page(
        modeladmin,
        request,
        selection,
        count,
        "delete_tasks",
        _("Delete tasks"),
        "delete.html",
        attempts=capped_count(
            TaskAttempt.objects.filter(task_id__in=selection.rows.order_by().values("pk"))
        ),
        running=capped_count(selection.rows.filter(held_by_a_worker())),
        typed=typed,
        error=error,
    )
