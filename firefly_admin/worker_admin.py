"""The consumers in the Django admin: who runs, on which queues, and how alive each one is."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from firefly_admin import display
from firefly_admin.filters import WorkerStateFilter
from firefly_admin.forms import WorkerForm
from firefly_admin.metrics import liveness
from firefly_admin.pagination import CappedCountChangeList, CappedCountPaginator
from firefly_admin.permissions import ReadOnlyRows
from firefly_admin.worker_stop import stop_worker
from firefly_tasks.models import WorkerModel
from firefly_tasks.states import WorkerState

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[WorkerModel]  # generic only to the type checker
else:
    _ModelAdmin = admin.ModelAdmin


class WorkerAdmin(ReadOnlyRows, _ModelAdmin):
    list_display = (
        "name_column",
        "hostname_column",
        "pid_column",
        "queue_list",
        "concurrency_column",
        "pool_column",
        "memory",
        "version_column",
        "liveness_badge",  # its state folded in: alive, late, dead, stopping, stopped
        "heartbeat",
        "started_at",
        "processed_column",
        "failed_column",
        "tasks_link",
    )
    list_filter = (WorkerStateFilter,)
    search_fields = ("name", "hostname")
    ordering = ("-started", "-id")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    fields = (
        "name",
        "hostname",
        "pid",
        "queue_list",
        "concurrency",
        "pool",
        "memory",
        "version",
        "children_table",
        "liveness_badge",
        "state",
        "stop_request",
        "started_at",
        "heartbeat",
        "stopped_at",
        "processed",
        "failed",
        "tasks_link",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("firefly_admin/firefly.css",)}

    change_form_template = "firefly_admin/worker/change_form.html"
    form = WorkerForm  # the fields' labels

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[CappedCountChangeList]:
        return CappedCountChangeList

    def get_urls(self) -> list[URLPattern]:
        stop = path(
            "<path:object_id>/stop/",
            self.admin_site.admin_view(functools.partial(stop_worker, model_admin=self)),
            name="firefly_admin_worker_stop",
        )
        return [stop, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        worker = WorkerModel.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        can_stop = (
            worker is not None
            and worker.stop_requested is None
            and liveness(worker, timezone.now()) in ("alive", "late")
            and request.user.has_perm("firefly_admin.stop_worker")
        )
        context = {**(extra_context or {}), "can_stop": can_stop}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description=gettext_lazy("memory"))
    def memory(self, obj: WorkerModel) -> str:
        """Resident memory at its last heartbeat (its children's are in their table)."""
        return mebibytes(obj.memory_kib)

    @admin.display(description=gettext_lazy("stop"))
    def stop_request(self, obj: WorkerModel) -> SafeString | str:
        if obj.stop_requested is None:
            return "-"
        asked = display.moment(obj.stop_requested)
        if obj.stop_requested_by:
            return format_html(
                _("asked {moment} by {user}"), moment=asked, user=obj.stop_requested_by
            )
        return format_html(_("asked {moment}"), moment=asked)

    @admin.display(description=gettext_lazy("queues"))
    def queue_list(self, obj: WorkerModel) -> str:
        return ", ".join(obj.queues or ())

    @admin.display(description=gettext_lazy("children"))
    def children_table(self, obj: WorkerModel) -> SafeString | str:
        """The process pool's children at the last heartbeat: slot, pid, memory, task."""
        children = obj.children if isinstance(obj.children, list) else []
        if not children:
            return "-" if obj.pool != "process" else _("none reported yet")
        site = self.admin_site.name
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (_child_cells(child, site) for child in children if isinstance(child, dict)),
        )
        return format_html(
            '<table class="firefly-children"><thead><tr><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("slot"),
            _("pid"),
            _("memory"),
            _("task"),
            rows,
        )

    @admin.display(description=gettext_lazy("liveness"))
    def liveness_badge(self, obj: WorkerModel) -> SafeString:
        """How alive it is, and its state where that says more: a live worker finishing its
        tasks before it exits reads ``stopping`` (the list shows no state column)."""
        shown = liveness(obj, timezone.now())
        if shown == "alive" and obj.state == WorkerState.STOPPING:
            shown = "stopping"
        return display.badge(shown)

    @admin.display(description=gettext_lazy("last heartbeat"), ordering="last_heartbeat")
    def heartbeat(self, obj: WorkerModel) -> SafeString | str:
        return display.moment(obj.last_heartbeat)

    @admin.display(description=gettext_lazy("started"), ordering="started")
    def started_at(self, obj: WorkerModel) -> SafeString | str:
        return display.moment(obj.started)

    stopped_at = display.moment_field("stopped", gettext_lazy("stopped"))
    # The list's columns of the engine's fields, headed in the active language.
    name_column = display.column("name", gettext_lazy("name"))
    hostname_column = display.column("hostname", gettext_lazy("hostname"))
    pid_column = display.column("pid", gettext_lazy("pid"))
    concurrency_column = display.column("concurrency", gettext_lazy("concurrency"))
    pool_column = display.column("pool", gettext_lazy("pool"))
    version_column = display.column("version", gettext_lazy("version"))
    processed_column = display.column(
        "processed", pgettext_lazy("tasks a worker ran", "processed"), display.count
    )
    failed_column = display.column(
        "failed", pgettext_lazy("tasks a worker ran", "failed"), display.count
    )

    @admin.display(description=gettext_lazy("tasks"))
    def tasks_link(self, obj: WorkerModel) -> SafeString:
        url = reverse(f"{self.admin_site.name}:firefly_admin_task_changelist")
        return format_html('<a href="{}?worker={}">{}</a>', url, obj.pk, _("Tasks it ran"))


def mebibytes(kib: float | None) -> str:
    """A memory size in KiB as MiB, with the active language's separators; ``-`` if unknown."""
    if kib is None:
        return "-"
    # Rounded first: number_format cuts a float's digits off (1228.79 would read 1228.7).
    size = number_format(round(kib / 1024, 1), 1, force_grouping=True)
    return _("%(size)s MiB") % {"size": size}


def _child_cells(child: dict[str, Any], site: str) -> tuple[Any, ...]:
    """One child's cells, whatever its JSON holds (escaped by format_html_join)."""
    memory, task, pid = child.get("memory_kib"), child.get("task"), child.get("pid")
    shown_memory = mebibytes(memory if isinstance(memory, int | float) else None)
    shown_task: Any = _("idle")
    if isinstance(task, int):
        url = reverse(f"{site}:firefly_admin_task_change", args=[task])
        shown_task = format_html('<a href="{}">{}</a>', url, task)
    return (child.get("slot", "?"), _("starting") if pid is None else pid, shown_memory, shown_task)
