"""Filtering tasks: the changelist's list filters and the dashboard's FilterSet.

Choices come from the registry and :func:`~firefly_tasks.queues.known_queues`, never from a
``DISTINCT`` over the task table. The changelist's date range and the FilterSet use the same
query parameters (``created_after``, ``created_before``), so a dashboard filter opens in the
task list unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import django_filters
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from firefly_admin import triage
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.queues import known_queues
from firefly_tasks.registry import registry
from firefly_tasks.states import ATTENTION_OUTCOMES, TaskStatus, WorkerState

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a label, translated lazily or not


def task_name_choices() -> list[tuple[str, str]]:
    """Registered task names, and old names kept runnable by ``FIREFLY_TASK_ALIASES``."""
    names = set(registry.names()) | set(engine_settings.TASK_ALIASES)
    return [(name, name) for name in sorted(names)]


def queue_choices(queues: Sequence[str] | None = None) -> list[tuple[str, str]]:
    return [(name, name) for name in (known_queues() if queues is None else queues)]


# Changelist list filters ------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return list(TaskStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in TaskStatus.values:
            return queryset.filter(status=value)
        return queryset


class BlockedFilter(admin.SimpleListFilter):
    """Blocked tasks by why they wait: for other tasks (a chain, a group, depends_on), or for
    a slot of their concurrency key."""

    title = gettext_lazy("blocked, waiting for")
    parameter_name = "blocked"
    REASONS = {
        "tasks": (gettext_lazy("other tasks"), Q(waiting_for__gt=0)),
        "slot": (gettext_lazy("a concurrency slot"), Q(waiting_for=0)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [(key, label) for key, (label, _condition) in self.REASONS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        reason = self.REASONS.get(self.value() or "")
        if reason is None:
            return queryset
        return queryset.filter(reason[1], status=TaskStatus.BLOCKED)


class OutcomeFilter(admin.SimpleListFilter):
    """Tasks with an attempt that ended so: the outcomes that need an operator's eye (a
    subquery over the attempts, read on PostgreSQL from their partial index of these outcomes;
    SQLite reads a partial index only for a WHERE in literals, MariaDB has none)."""

    title = gettext_lazy("attempt outcome")
    parameter_name = "outcome"
    OUTCOMES = ATTENTION_OUTCOMES

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [(outcome.value, outcome.label) for outcome in self.OUTCOMES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in {outcome.value for outcome in self.OUTCOMES}:
            attempts = TaskAttempt.objects.filter(outcome=value).values("task_id")
            return queryset.filter(pk__in=attempts)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return queue_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(queue=value) if value else queryset


class TaskNameFilter(admin.SimpleListFilter):
    title = gettext_lazy("task")
    parameter_name = "task"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return task_name_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(func_name=value) if value else queryset


class WorkerFilter(admin.SimpleListFilter):
    """Tasks a worker ran (any attempt) or runs now; shown only while it is applied."""

    title = gettext_lazy("worker")
    parameter_name = "worker"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self._worker_id()
        if value is None:
            return []
        name = WorkerModel.objects.filter(pk=value).values_list("name", flat=True).first()
        return [(str(value), name or _("worker #%(id)s") % {"id": value})]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        worker_id = self._worker_id()
        if worker_id is None:
            if self.value():
                raise IncorrectLookupParameters(f"worker={self.value()!r} is not a worker id.")
            return queryset
        attempts = TaskAttempt.objects.filter(worker_id=worker_id).values("task_id")
        return queryset.filter(Q(worker_id=worker_id) | Q(pk__in=attempts))

    def _worker_id(self) -> int | None:
        value = self.value()
        return int(value) if value and value.isdigit() else None


class WorkerStateFilter(admin.SimpleListFilter):
    """The worker list's: what the consumer says it is doing (liveness is read apart)."""

    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return list(WorkerState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(state=value) if value in WorkerState.values else queryset


class AppliedOnlyFilter(admin.SimpleListFilter):
    """A filter reached by a link, not picked from choices: shown only while applied, with
    its value as its one choice."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []


class ScheduleFilter(AppliedOnlyFilter):
    """Tasks a periodic schedule enqueued."""

    title = gettext_lazy("schedule")
    parameter_name = "schedule"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(schedule=value) if value else queryset


class ErrorKindFilter(AppliedOnlyFilter):
    """Tasks whose error is of one exception class: a failure group of the dashboard's."""

    title = gettext_lazy("error")
    parameter_name = "error_kind"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return triage.with_kind(queryset).filter(kind=value) if value else queryset


class DateRangeFilter(admin.FieldListFilter):
    """Presets (last hour, day, week) and a from/to form with two date inputs."""

    template = "firefly_admin/filters/date_range.html"
    presets = (
        (gettext_lazy("Last hour"), datetime.timedelta(hours=1)),
        (gettext_lazy("Last 24 hours"), datetime.timedelta(days=1)),
        (gettext_lazy("Last 7 days"), datetime.timedelta(days=7)),
    )
    # Titles in the active language: the engine's fields have no verbose_name to give one.
    titles = {"created": gettext_lazy("created")}

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: dict[str, Any],
        model: Any,
        model_admin: Any,
        field_path: str,
    ) -> None:
        self.after_param = f"{field_path}_after"
        self.before_param = f"{field_path}_before"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = self.titles.get(field_path, self.title)
        self.after = self._used(self.after_param)
        self.before = self._used(self.before_param)
        self.hidden_params: list[tuple[str, str]] = []

    def _used(self, name: str) -> str:
        value = self.used_parameters.get(name, "")
        if isinstance(value, list):  # the changelist passes every parameter as a list
            value = value[-1] if value else ""
        return str(value)

    def expected_parameters(self) -> list[str | None]:
        return [self.after_param, self.before_param]

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        lookups = date_range_lookups(self.field_path, self.after, self.before)
        if lookups is None:
            raise IncorrectLookupParameters("Dates must look like 2024-05-31 or be ISO datetimes.")
        return queryset.filter(**lookups)

    def choices(self, changelist: Any) -> Iterator[Any]:
        params = self.expected_parameters()
        yield {
            "selected": not (self.after or self.before),
            "query_string": changelist.get_query_string(remove=params),
            "display": _("Any time"),
        }
        now = timezone.now().replace(second=0, microsecond=0)
        for label, delta in self.presets:
            since = (now - delta).isoformat()
            yield {
                "selected": self.after == since and not self.before,
                "query_string": changelist.get_query_string(
                    {self.after_param: since}, [self.before_param]
                ),
                "display": label,
            }
        # What the from/to form must carry along so that other filters survive submitting it.
        self.hidden_params = [
            (key, value)
            for key, value in changelist.params.items()
            if key not in params and key not in (PAGE_VAR, ERROR_FLAG)
        ]


def date_range_lookups(field: str, after: str, before: str) -> dict[str, datetime.datetime] | None:
    """``{field__gte, field__lte}`` from ``YYYY-MM-DD`` dates (whole days) or ISO datetimes;
    ``None`` when a value cannot be read."""
    lookups: dict[str, datetime.datetime] = {}
    for value, lookup, end_of_day in ((after, "gte", False), (before, "lte", True)):
        if not value:
            continue
        moment = parse_moment(value, end_of_day=end_of_day)
        if moment is None:
            return None
        lookups[f"{field}__{lookup}"] = moment
    return lookups


def parse_moment(value: str, *, end_of_day: bool = False) -> datetime.datetime | None:
    day = parse_date(value) if len(value) == 10 else None
    if day is not None:
        moment = datetime.datetime.combine(
            day, datetime.time.max if end_of_day else datetime.time.min
        )
    else:
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


# The dashboard's FilterSet ----------------------------------------------------------------


class DateRangeWidget(django_filters.widgets.DateRangeWidget):  # type: ignore[misc]  # no stubs
    """django-filter's from/to widget, drawn by a template of ``firefly_admin``'s own: the
    host project need not install ``django_filters``, whose templates only it would find."""

    template_name = "firefly_admin/widgets/date_range.html"


class TaskFilterSet(django_filters.FilterSet):  # type: ignore[misc]  # no stubs
    """Filters of the dashboard's live task table, for the full page and its fragments."""

    status = django_filters.ChoiceFilter(
        choices=TaskStatus.choices,
        label=gettext_lazy("Status"),
        empty_label=gettext_lazy("any status"),
    )
    queue = django_filters.ChoiceFilter(
        choices=queue_choices, label=gettext_lazy("Queue"), empty_label=gettext_lazy("any queue")
    )
    task = django_filters.ChoiceFilter(
        field_name="func_name",
        choices=task_name_choices,
        label=gettext_lazy("Task"),
        empty_label=gettext_lazy("any task"),
    )
    created = django_filters.DateFromToRangeFilter(
        label=gettext_lazy("Created"),
        widget=DateRangeWidget(attrs={"type": "date"}),
    )

    class Meta:
        model = TaskModel
        fields: list[str] = []

    def __init__(self, *args: Any, queues: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if queues is not None:
            # Known already (the page lists them): spares the form a query of its own.
            self.filters["queue"].extra["choices"] = queue_choices(queues)
