"""The tasks in the Django admin: the list, each task's page, and the dashboard's URLs.

Rows are read-only: tasks change through the actions (``actions.py``, ``bulk.py``), the
dashboard's queue controls (``controls.py``) and the delete page.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy, pgettext_lazy

from firefly_admin import (
    charts,
    controls,
    display,
    previews,
    prometheus,
    search,
    task_page,
    triage,
    views,
    workflow_display,
)
from firefly_admin.actions import (
    cancel_running_tasks,
    cancel_tasks,
    delete_tasks,
    rename_tasks,
    requeue_tasks,
    run_now_tasks,
)
from firefly_admin.bulk import held_by_a_worker, orphaned
from firefly_admin.changelist import TaskChangeList
from firefly_admin.filters import (
    BlockedFilter,
    DateRangeFilter,
    ErrorKindFilter,
    OutcomeFilter,
    QueueFilter,
    ScheduleFilter,
    StatusFilter,
    TaskNameFilter,
    WorkerFilter,
)
from firefly_admin.forms import TaskForm
from firefly_admin.models import Task
from firefly_admin.permissions import ReadOnlyRows, permission
from firefly_tasks.models import TaskAttempt, TaskModel, WorkerModel
from firefly_tasks.states import TaskStatus

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[TaskModel]  # generic only to the type checker
else:
    _ModelAdmin = admin.ModelAdmin


class TaskAdmin(ReadOnlyRows, _ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "queue_column",
        "status_badge",
        "priority_column",
        "attempt_count",
        "created_at",
        "not_before_at",
        "started_at",
        "finished_at",
        "duration_display",
    )
    list_display_links = ("id", "task_name")
    list_filter = (
        StatusFilter,
        BlockedFilter,
        OutcomeFilter,
        QueueFilter,
        TaskNameFilter,
        ("created", DateRangeFilter),
        WorkerFilter,
        ScheduleFilter,
        ErrorKindFilter,
    )
    search_fields = ("func_name",)
    search_help_text = gettext_lazy(
        "A task id, part of a task name, tag:NAME, error:TEXT, or args.KEY:VALUE "
        "(error and argument searches read the newest tasks: FIREFLY_ADMIN_SEARCH_ROWS)."
    )
    # Pages are keyset pages by id (changelist.py): the id is the only order a million-row
    # table can be paged in without sorting it, so it is the only column that sorts.
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = (
        requeue_tasks,
        run_now_tasks,
        cancel_tasks,
        cancel_running_tasks,
        rename_tasks,
        delete_tasks,
    )
    change_list_template = "firefly_admin/task/change_list.html"
    change_form_template = "firefly_admin/task/change_form.html"
    form = TaskForm  # the fields' labels
    fieldsets = (
        (None, {"fields": ("id", "func_name", "queue", "status_badge", "priority", "worker_link")}),
        (gettext_lazy("Arguments and result"), {"fields": ("params_display", "result_display")}),
        (gettext_lazy("Last failure"), {"fields": ("error", "traceback_display")}),
        (
            gettext_lazy("Timing"),
            {
                "fields": (
                    "created_at",
                    "not_before_at",
                    "claimed_at",
                    "started_at",
                    "completed_at",
                    "failed_at",
                    "cancelled_at",
                    "duration_display",
                    "schedule",
                    "scheduled_for",
                )
            },
        ),
        (
            gettext_lazy("Retries and timeout"),
            {
                "fields": (
                    "timeout",
                    "attempt",
                    "retry_attempts",
                    "max_retries",
                    "retry_delay",
                    "retry_backoff_words",
                    "lost_attempts",
                    "snoozes",
                )
            },
        ),
        (
            gettext_lazy("Flow control"),
            {
                "fields": (
                    "tags_display",
                    "unique_key",
                    "unique_until_at",
                    "concurrency_key",
                    "concurrency_limit",
                )
            },
        ),
        (gettext_lazy("Workflow"), {"fields": workflow_display.FIELDS}),
        (gettext_lazy("Storage"), {"classes": ("collapse",), "fields": ("serializer", "backend")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)  # nobody edits a task row by hand

    class Media:
        css = {"all": ("firefly_admin/firefly.css",)}

    # Permissions: rows are read-only (ReadOnlyRows), each action has its own -------------

    has_requeue_permission = permission("requeue_task")
    has_cancel_permission = permission("cancel_task")
    has_rename_permission = permission("rename_task")
    has_pause_permission = permission("pause_queue")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == TaskStatus.RUNNING and not self.is_orphaned(obj):
            return False  # its worker owns it until it finishes
        return super().has_delete_permission(request, obj)

    def is_orphaned(self, obj: TaskModel) -> bool:
        """Whether ``obj`` runs with no live worker to own it (see ``bulk.orphaned``)."""
        return (
            obj.status == TaskStatus.RUNNING and Task.objects.filter(orphaned(), pk=obj.pk).exists()
        )

    # The list -----------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 asks for the actions of a location (change list or change form) and
        # warns about overrides without the parameter; Django 5.2 has no such parameter.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg,unused-ignore]
        actions.pop("delete_selected", None)  # replaced by delete_tasks
        return actions

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        found = search.search(queryset, search_term)
        if found is None:
            return super().get_search_results(request, queryset, search_term)
        return found, False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": self._url("dashboard"),
        }
        return super().changelist_view(request, extra_context)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Back to the task's own page when an action was started from it."""
        response = super().response_action(request, queryset, *args, **kwargs)
        from_object = request.POST.get("_from_object", "")
        if (
            type(response) is HttpResponseRedirect
            and from_object.isdigit()
            and TaskModel.objects.filter(pk=from_object).exists()
        ):
            return HttpResponseRedirect(self._url("change", from_object))
        return response

    @admin.display(description=gettext_lazy("task"))
    def task_name(self, obj: TaskModel) -> SafeString | str:
        return display.task_name(obj.func_name, triage.is_registered(obj.func_name, obj.backend))

    @admin.display(description=gettext_lazy("error"))
    def error_summary(self, obj: TaskModel) -> str:
        return display.first_line(obj.error)

    def get_list_display(self, request: HttpRequest) -> Any:
        """With the error, where the list shows failed or cancelled tasks, or searched errors."""
        failures = request.GET.get("status") in (TaskStatus.FAILED, TaskStatus.CANCELLED)
        failures = failures or request.GET.get("q", "").strip().startswith("error:")
        shown = super().get_list_display(request)
        return (*shown[:4], "error_summary", *shown[4:]) if failures else shown

    @admin.display(description=gettext_lazy("status"))
    def status_badge(self, obj: TaskModel) -> SafeString:
        return display.status(obj)

    @admin.display(description=gettext_lazy("tags"))
    def tags_display(self, obj: TaskModel) -> SafeString | str:
        tags = obj.tags
        if not tags:
            return "-"
        return format_html_join(
            " ", '<span class="ff-badge ff-tag">{}</span>', ((t,) for t in tags)
        )

    @admin.display(description=gettext_lazy("attempts"))
    def attempt_count(self, obj: TaskModel) -> int:
        return obj.attempt

    @admin.display(description=gettext_lazy("created"))
    def created_at(self, obj: TaskModel) -> SafeString | str:
        return display.moment(obj.created)

    @admin.display(description=gettext_lazy("not before"))
    def not_before_at(self, obj: TaskModel) -> SafeString | str:
        return display.moment(obj.not_before)

    @admin.display(description=gettext_lazy("started"))
    def started_at(self, obj: TaskModel) -> SafeString | str:
        """When the latest attempt started (not when its batch was claimed)."""
        if obj.status == TaskStatus.RUNNING:
            return display.moment(getattr(obj, "executing_since", None))
        return display.moment(getattr(obj, "attempt_started", None))

    @admin.display(description=gettext_lazy("claimed"))
    def claimed_at(self, obj: TaskModel) -> SafeString | str:
        """When a consumer last claimed it (the row's ``started``): the start of its attempt
        is later when it waited in a batch."""
        return display.moment(obj.started)

    queue_column = display.column("queue", gettext_lazy("queue"))
    priority_column = display.column("priority", gettext_lazy("priority"))
    completed_at = display.moment_field("completed", pgettext_lazy("when", "completed"))
    failed_at = display.moment_field("failed", pgettext_lazy("when", "failed"))
    cancelled_at = display.moment_field("cancelled", pgettext_lazy("when", "cancelled"))
    unique_until_at = display.moment_field("unique_until", gettext_lazy("unique until"))
    retry_backoff_words = task_page.retry_backoff_words

    @admin.display(description=gettext_lazy("finished"))
    def finished_at(self, obj: TaskModel) -> SafeString | str:
        return display.moment(obj.completed or obj.failed or obj.cancelled)

    @admin.display(description=gettext_lazy("duration"))
    def duration_display(self, obj: TaskModel) -> str:
        """How long the latest attempt ran; for an executing task, how long it has run so
        far, against its timeout (``12.5 s of 30.0 s``)."""
        if obj.status == TaskStatus.RUNNING:
            since = getattr(obj, "executing_since", None)
            return display.elapsed(timezone.now() - since, obj.timeout) if since else "—"
        started = getattr(obj, "attempt_started", None)
        finished = getattr(obj, "attempt_finished", None)
        if started is None or finished is None:
            return display.duration(None)
        return display.duration(max(finished - started, datetime.timedelta(0)))

    # The detail ---------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("arguments"))
    def params_display(self, obj: TaskModel) -> SafeString:
        return format_html('<pre class="ff-pre">{}</pre>', previews.params_text(obj) or "—")

    @admin.display(description=gettext_lazy("result"))
    def result_display(self, obj: TaskModel) -> SafeString | str:
        if obj.status != TaskStatus.COMPLETED:
            return "—"
        return format_html('<pre class="ff-pre">{}</pre>', previews.result_text(obj))

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_display(self, obj: TaskModel) -> SafeString | str:
        if not obj.traceback:
            return "—"
        return format_html('<pre class="ff-pre ff-traceback">{}</pre>', obj.traceback)

    @admin.display(description=gettext_lazy("worker"))
    def worker_link(self, obj: TaskModel) -> SafeString | str:
        if obj.worker_id is None:
            return "—"
        name = WorkerModel.objects.filter(pk=obj.worker_id).values_list("name", flat=True)
        url = reverse(f"{self.admin_site.name}:firefly_admin_worker_change", args=[obj.worker_id])
        return format_html('<a href="{}">{}</a>', url, name.first() or f"#{obj.worker_id}")

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None:
            context.update(
                task_page.page_context(self, request, obj), changelist_url=self._url("changelist")
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return task_page.shown_fieldsets(super().get_fieldsets(request, obj), obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A summary for the delete page: never one line per attempt."""
        objs = list(objs)
        attempts = TaskAttempt.objects.filter(task_id__in=[obj.pk for obj in objs]).count()
        perms_needed = set() if self.has_delete_permission(request) else {self.opts.verbose_name}
        return (*task_page.deletion_summary(objs, attempts), perms_needed, [])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        Task.objects.filter(pk=obj.pk).exclude(held_by_a_worker()).delete()

    # Extra pages --------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        pages = {
            "dashboard": ("dashboard/", views.dashboard),
            "charts": ("dashboard/charts/", charts.charts_view),
            "pause": ("dashboard/pause/", controls.pause_queue),
            "resume": ("dashboard/resume/", controls.resume_queue),
            "requeue_group": ("dashboard/requeue-group/", triage.requeue_group),
        }
        protected = [
            path(url, views.protected(self, view), name=f"{prefix}_{name}")
            for name, (url, view) in pages.items()
        ]
        return [
            *protected,
            path("metrics/", prometheus.metrics_view, name=f"{prefix}_metrics"),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args: Any) -> str:
        site, opts = self.admin_site.name, self.opts
        return reverse(f"{site}:{opts.app_label}_{opts.model_name}_{name}", args=args)
