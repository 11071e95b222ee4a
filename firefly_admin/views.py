"""The dashboard page, its live fragments, and the queue controls.

The dashboard is one URL: a plain request gets the whole page, an htmx request gets the
region named by its ``HX-Target`` header (``ff-queues``, ``ff-workers``, ``ff-failures`` or
``ff-tasks``), which is how each region refreshes itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from firefly_admin import metrics
from firefly_admin.conf import settings
from firefly_admin.filters import TaskFilterSet
from firefly_admin.forms import QueueForm
from firefly_admin.history import log_entry
from firefly_admin.models import Queue
from firefly_tasks import queues as queue_controls
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskModel

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models.options import Options


class TaskAdmin(Protocol):
    """What these views use of the tasks' ModelAdmin (``firefly_admin.task_admin.TaskAdmin``)."""

    admin_site: AdminSite
    opts: Options[TaskModel]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool: ...

    def has_pause_permission(self, request: HttpRequest) -> bool: ...


logger = logging.getLogger("firefly_admin")

LIVE_TASKS = 25
TASK_COLUMNS = (
    "pk",
    "func_name",
    "queue",
    "status",
    "priority",
    "attempt",
    "created",
    "not_before",
    "started",
    "completed",
    "failed",
    "cancelled",
)


def dashboard(request: HttpRequest, model_admin: TaskAdmin) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    request.current_app = model_admin.admin_site.name
    target = request.htmx.target if request.htmx else None  # type: ignore[attr-defined]
    context = _common_context(request, model_admin)
    if target:
        region = REGIONS.get(target)
        if region is None:  # never echo the header: it is whatever the client sent
            return HttpResponseBadRequest(
                "Unknown dashboard region.", content_type="text/plain; charset=utf-8"
            )
        context.update(region(request, None))
        template = f"firefly_admin/dashboard/{target.removeprefix('ff-')}.html"
        response = TemplateResponse(request, template, context)
    else:
        catalog = metrics.QueueCatalog.load()
        for region in REGIONS.values():
            context.update(region(request, catalog))
        context.update(
            model_admin.admin_site.each_context(request),
            title="Firefly dashboard",
            opts=model_admin.opts,
        )
        response = TemplateResponse(request, "firefly_admin/dashboard.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _common_context(request: HttpRequest, model_admin: TaskAdmin) -> dict[str, Any]:
    interval_ms = max(int(settings.POLL_INTERVAL * 1000), 100)
    return {
        "poll_trigger": f"every {interval_ms}ms [document.visibilityState === 'visible']",
        "poll_url": request.get_full_path(),
        "dashboard_url": reverse(f"{model_admin.admin_site.name}:firefly_admin_task_dashboard"),
        "task_changelist_url": reverse(
            f"{model_admin.admin_site.name}:firefly_admin_task_changelist"
        ),
        "worker_changelist_url": reverse(
            f"{model_admin.admin_site.name}:firefly_admin_worker_changelist"
        ),
        "can_pause": model_admin.has_pause_permission(request),
    }


# Each region renders from the request, and from the queue catalog when the full page has
# loaded it for all of them (a region requested alone loads what it needs).
Catalog = metrics.QueueCatalog | None


def _queues(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    return {"queue_stats": metrics.queue_stats(timezone.now(), catalog)}


def _workers(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    return {"workers": metrics.worker_statuses(timezone.now())}


def _failures(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    return {"failures": metrics.recent_failures()}


def _tasks(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    filterset = TaskFilterSet(
        request.GET or None,
        queryset=TaskModel.objects.order_by("-pk").only(*TASK_COLUMNS),
        queues=catalog.names if catalog else None,
    )
    query = request.GET.urlencode()
    return {
        "filterset": filterset,
        "tasks": filterset.qs[:LIVE_TASKS],
        "task_filter_query": f"?{query}" if query else "",
    }


REGIONS: dict[str, Callable[[HttpRequest, Catalog], dict[str, Any]]] = {
    "ff-queues": _queues,
    "ff-workers": _workers,
    "ff-failures": _failures,
    "ff-tasks": _tasks,
}


@require_POST
def pause_queue(request: HttpRequest, model_admin: TaskAdmin) -> HttpResponse:
    return _control_queue(request, model_admin, pause=True)


@require_POST
def resume_queue(request: HttpRequest, model_admin: TaskAdmin) -> HttpResponse:
    return _control_queue(request, model_admin, pause=False)


def _control_queue(request: HttpRequest, model_admin: TaskAdmin, *, pause: bool) -> HttpResponse:
    if not model_admin.has_pause_permission(request):
        raise PermissionDenied
    dashboard_url = reverse(f"{model_admin.admin_site.name}:firefly_admin_task_dashboard")
    form = QueueForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors.get("queue") or ["?"]))
        return HttpResponseRedirect(dashboard_url)
    name = form.cleaned_data["queue"]
    if pause:
        try:
            changed = queue_controls.pause_queue(name, by=request.user.get_username())
        except InvalidTaskError as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(dashboard_url)
        done, already = "paused: consumers stop claiming from it", "was paused already"
    else:
        changed = queue_controls.resume_queue(name)
        done, already = "resumed", "was not paused"
    if changed:
        entry = log_entry(request, Queue, name, name, "Paused." if pause else "Resumed.")
        entry.save(force_insert=True)
        messages.success(request, f"Queue {name!r} {done}.")
        logger.info(
            "queue %s name=%s user=%s", "paused" if pause else "resumed", name, request.user
        )
    else:
        messages.warning(request, f"Queue {name!r} {already}.")
    return HttpResponseRedirect(dashboard_url)
