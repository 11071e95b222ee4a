"""The dashboard page and its live regions.

The dashboard is one URL: a plain request gets the whole page, an htmx request gets the
region named by its ``HX-Target`` header (``ff-queues``, ``ff-controls``, ``ff-workers``,
``ff-failures``, ``ff-schedules`` or ``ff-tasks``), which is how each region refreshes
itself. The view reads htmx's headers through django-htmx's ``HtmxDetails``, built here, so the
host project needs no middleware.

Regions refresh on an ``ff:refresh`` event that ``static/firefly_admin/live.js`` dispatches on
``<body>`` at the interval picked on the page, while the tab is visible: no ``hx-trigger``
filter, which htmx would evaluate as JavaScript, so the page works under a Content Security
Policy without ``'unsafe-eval'``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRefresh
from django_htmx.middleware import HtmxDetails

from firefly_admin import metrics, triage, upcoming
from firefly_admin.conf import settings
from firefly_admin.display import seconds_text
from firefly_admin.filters import TaskFilterSet
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

    def has_requeue_permission(self, request: HttpRequest) -> bool: ...


# Regions reload on this event (see the module's docstring).
POLL_TRIGGER = "ff:refresh from:body"
# The interval switch's choices in seconds, besides off and the configured default.
POLL_INTERVALS = (1, 2, 5, 15)


@dataclass(frozen=True)
class PollChoice:
    milliseconds: int  # 0: off
    label: str
    default: bool


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
    htmx = HtmxDetails(request)
    target = htmx.target if htmx else None
    context = _common_context(request, model_admin)
    if target:
        region = REGIONS.get(target)
        if region is None:  # never echo the header: it is whatever the client sent
            return HttpResponseBadRequest(
                "Unknown dashboard region.", content_type="text/plain; charset=utf-8"
            )
        if target == "ff-controls" and not context["can_pause"]:
            raise PermissionDenied
        context.update(region(request, None))
        template = f"firefly_admin/dashboard/{target.removeprefix('ff-')}.html"
        response = TemplateResponse(request, template, context)
    else:
        catalog = metrics.QueueCatalog.load()
        catalog.workers(timezone.now())  # first: the queue and task regions read them too
        for region in dict.fromkeys(REGIONS.values()):  # ff-controls shares ff-queues' data
            context.update(region(request, catalog))
        context.update(
            model_admin.admin_site.each_context(request),
            title=_("Firefly dashboard"),
            opts=model_admin.opts,
        )
        response = TemplateResponse(request, "firefly_admin/dashboard.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def protected(
    model_admin: TaskAdmin, view: Callable[..., HttpResponse]
) -> Callable[..., HttpResponse]:
    """``view(request, model_admin, ...)`` behind the admin's login and staff check; a region's
    poll after the session ended reloads the whole page (the login form), rather than swap the
    login page into the region."""

    @wraps(view)
    def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, model_admin, *args, **kwargs)

    admitted = model_admin.admin_site.admin_view(bound)

    @wraps(admitted)
    def refresh_when_logged_out(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if HtmxDetails(request) and not model_admin.admin_site.has_permission(request):
            return HttpResponseClientRefresh()
        return admitted(request, *args, **kwargs)

    return refresh_when_logged_out


def _common_context(request: HttpRequest, model_admin: TaskAdmin) -> dict[str, Any]:
    return {
        "poll_trigger": POLL_TRIGGER,
        "poll_choices": poll_choices(settings.POLL_INTERVAL),
        "poll_url": request.get_full_path(),
        "dashboard_url": reverse(f"{model_admin.admin_site.name}:firefly_admin_task_dashboard"),
        "charts_url": reverse(f"{model_admin.admin_site.name}:firefly_admin_task_charts"),
        "task_changelist_url": reverse(
            f"{model_admin.admin_site.name}:firefly_admin_task_changelist"
        ),
        "worker_changelist_url": reverse(
            f"{model_admin.admin_site.name}:firefly_admin_worker_changelist"
        ),
        "pause_url": reverse(f"{model_admin.admin_site.name}:firefly_admin_task_pause"),
        "resume_url": reverse(f"{model_admin.admin_site.name}:firefly_admin_task_resume"),
        "can_pause": model_admin.has_pause_permission(request),
        "requeue_group_url": reverse(
            f"{model_admin.admin_site.name}:firefly_admin_task_requeue_group"
        ),
        "can_requeue": model_admin.has_requeue_permission(request),
    }


def poll_choices(default: float) -> list[PollChoice]:
    """The interval switch's options: off, the usual intervals, and the configured default
    (``FIREFLY_ADMIN_POLL_INTERVAL``) wherever it falls among them."""
    default_ms = max(round(default * 1000), 100)
    choices = {ms: every(ms) for ms in (seconds * 1000 for seconds in POLL_INTERVALS)}
    choices[default_ms] = every(default_ms)
    return [
        PollChoice(0, _("off"), default=False),
        *(PollChoice(ms, label, default=ms == default_ms) for ms, label in sorted(choices.items())),
    ]


def every(milliseconds: int) -> str:
    """``every 2 s``, ``every 0.3 s``: in the active language, its decimal separator too."""
    return _("every %(seconds)s s") % {"seconds": seconds_text(milliseconds / 1000)}


# Each region renders from the request, and from the queue catalog when the full page has
# loaded it for all of them (a region requested alone loads what it needs).
Catalog = metrics.QueueCatalog | None


def _queues(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    """The queues and their controls: the same rows, and who paused which queue and why."""
    catalog = catalog or metrics.QueueCatalog.load()
    return {
        "queue_stats": metrics.queue_stats(timezone.now(), catalog),
        "pauses": {control.name: control for control in catalog.controls if control.paused},
    }


def _workers(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    now = timezone.now()
    return {"workers": catalog.workers(now) if catalog else metrics.worker_statuses(now)}


def _failures(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    return {"failure_groups": triage.failure_groups(timezone.now())}


def _schedules(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    found = upcoming.summary(timezone.now())
    return {"upcoming_ticks": found.upcoming, "schedules_attention": found.attention}


def _tasks(request: HttpRequest, catalog: Catalog) -> dict[str, Any]:
    filterset = TaskFilterSet(
        request.GET or None,
        queryset=TaskModel.objects.order_by("-pk").only(*TASK_COLUMNS),
        queues=catalog.names if catalog else None,
    )
    query = request.GET.urlencode()
    rows = list(metrics.with_attempt_times(filterset.qs)[:LIVE_TASKS])
    metrics.mark_executing(rows, catalog)
    return {
        "filterset": filterset,
        "tasks": rows,
        "task_filter_query": f"?{query}" if query else "",
    }


REGIONS: dict[str, Callable[[HttpRequest, Catalog], dict[str, Any]]] = {
    "ff-queues": _queues,
    "ff-controls": _queues,
    "ff-workers": _workers,
    "ff-failures": _failures,
    "ff-schedules": _schedules,
    "ff-tasks": _tasks,
}
