"""Failure triage: the last day's failed tasks grouped by task and exception class, each group
with its count, first and last failure and latest error, and requeued as one.

A group is ``(func_name, kind)``, ``kind`` being the exception's class as the stored error
begins (``ValueError`` of ``"ValueError: boom"``). One query whatever the number of failures:
the groups (over the index on ``failed``), each with its latest error. Tasks whose name no
registered task answers to are flagged, and never offered a requeue: they would fail again at
once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Aggregate,
    Case,
    Count,
    F,
    Max,
    Min,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Left, StrIndex, Substr
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from firefly_admin.actions import requeue_tasks
from firefly_admin.pagination import task_id
from firefly_tasks.models import TaskModel, TaskStatus
from firefly_tasks.registry import registry

WINDOW = datetime.timedelta(hours=24)
GROUP_LIMIT = 20
KIND_LENGTH = 100


@dataclass
class FailureGroup:
    func_name: str
    backend: str  # a DEP 14 row's TASKS alias, "" for Firefly's own tasks
    kind: str
    count: int
    first: datetime.datetime
    last: datetime.datetime
    registered: bool
    latest_id: int
    latest_error: str = ""


def kind_of(error: str) -> str:
    """The exception class an error begins with: what :func:`with_kind` computes in SQL."""
    head, colon, _ = error.partition(":")
    return head if colon else error[:KIND_LENGTH]


def is_registered(func_name: str, backend: str = "") -> bool:
    """Whether a row's task runs here (a DEP 14 row is the framework's to resolve: assumed)."""
    return bool(backend) or func_name in registry.known_names()


def with_kind(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` with each task's exception class (``kind``, as :func:`kind_of` reads it),
    computed by the database."""
    with_colon = queryset.annotate(colon_at=StrIndex("error", Value(":")))
    kind = Case(
        When(colon_at__gt=0, then=Substr("error", 1, F("colon_at") - 1)),
        default=Left("error", KIND_LENGTH),
    )
    annotated: QuerySet[Any] = with_colon.annotate(kind=kind)
    return annotated


class LatestError(Aggregate):
    """An aggregate: the error of each group's newest task (its highest id). Read by primary
    key in the grouping query, not by a second query (nor by a ``Subquery``, which Django would
    group by); SQLite allows no aggregate inside a subquery, and takes the error from the
    greatest of the rows' ids and errors written as one string."""

    function = "MAX"
    output_field = TextField()

    def __init__(self) -> None:
        super().__init__("pk", "error")

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        pk = self.get_source_expressions()[0]
        pk_sql, params = compiler.compile(pk)
        table = connection.ops.quote_name(TaskModel._meta.db_table)
        column, key = (connection.ops.quote_name(name) for name in ("error", "id"))
        # Aliased: inside, the table's own name still means the grouped rows outside.
        sql = f"(SELECT newest.{column} FROM {table} newest WHERE newest.{key} = MAX({pk_sql}))"
        return sql, params

    def as_sqlite(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        (pk_sql, pk_params), (error_sql, error_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions()[:2]
        )
        sql = f"SUBSTR(MAX(printf('%%020d', {pk_sql}) || COALESCE({error_sql}, '')), 21)"
        return sql, [*pk_params, *error_params]


def failed_since(now: datetime.datetime) -> QuerySet[Any]:
    """The last :data:`WINDOW`'s failed tasks, with their ``kind``."""
    return with_kind(TaskModel.objects.filter(status=TaskStatus.FAILED, failed__gte=now - WINDOW))


def failure_groups(now: datetime.datetime, limit: int = GROUP_LIMIT) -> list[FailureGroup]:
    """The groups of the last :data:`WINDOW`'s failed tasks, latest failure first."""
    rows = (
        failed_since(now)
        .values("func_name", "backend", "kind")
        .annotate(count=Count("pk"), first=Min("failed"), last=Max("failed"), latest=Max("pk"))
        .annotate(error=LatestError())
        .order_by("-last")[:limit]
    )
    names = registry.known_names()
    return [
        FailureGroup(
            row["func_name"],
            row["backend"],
            row["kind"],
            row["count"],
            row["first"],
            row["last"],
            bool(row["backend"]) or row["func_name"] in names,
            row["latest"],
            row["error"] or "",
        )
        for row in rows
    ]


def group_rows(
    now: datetime.datetime, group: tuple[str, str, str], up_to_id: int | None
) -> QuerySet[Any]:
    """The failed tasks of one group (task name, backend, kind), up to the latest one the
    operator was shown."""
    func_name, backend, kind_name = group
    rows: QuerySet[Any] = failed_since(now).filter(
        func_name=func_name, backend=backend, kind=kind_name
    )
    return rows if up_to_id is None else rows.filter(pk__lte=up_to_id)


@require_POST
def requeue_group(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Requeue one group's failed tasks (``firefly_admin.requeue_task``; POST, CSRF-checked by
    the admin), through the task list's own requeue action: its guards, its history."""
    if not model_admin.has_requeue_permission(request):
        raise PermissionDenied
    func_name, kind_name = request.POST.get("task", ""), request.POST.get("kind", "")
    backend = request.POST.get("backend", "")
    up_to_id = task_id(request.POST.get("up_to_id", ""))
    if not func_name or up_to_id is None:
        return HttpResponseBadRequest(
            "A group is a task name, an exception class and the latest task id shown.",
            content_type="text/plain; charset=utf-8",
        )
    site, opts = model_admin.admin_site.name, model_admin.opts
    back = HttpResponseRedirect(reverse(f"{site}:{opts.app_label}_{opts.model_name}_dashboard"))
    if not is_registered(func_name, backend):
        model_admin.message_user(
            request,
            _("%(task)s is not a registered task here: requeued, it would fail again at once.")
            % {"task": func_name},
            messages.ERROR,
        )
        return back
    rows = group_rows(timezone.now(), (func_name, backend, kind_name), up_to_id)
    requeue_tasks(model_admin, request, rows)
    return back
