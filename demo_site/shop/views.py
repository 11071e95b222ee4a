"""The demo's one page: what is in the queues, and a button that schedules a burst."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from demo_site.shop.burst import schedule_burst
from firefly_tasks.models import TaskModel, TaskStatus

RECENT_TASKS = 15


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    counts = {
        (row["queue"], row["status"]): row["n"]
        for row in TaskModel.objects.values("queue", "status").annotate(n=Count("id"))
    }
    queues = sorted({queue for queue, _ in counts} | {"default", "emails"})
    context = {
        "statuses": list(TaskStatus),
        "queues": [
            (queue, [counts.get((queue, status), 0) for status in TaskStatus]) for queue in queues
        ],
        "recent": TaskModel.objects.order_by("-id")[:RECENT_TASKS],
        "dashboard_url": dashboard_url(),
    }
    return TemplateResponse(request, "index.html", context)


def dashboard_url() -> str | None:
    """Firefly's dashboard in the admin, when ``firefly_admin`` is installed."""
    try:
        return reverse("admin:firefly_admin_task_dashboard")
    except NoReverseMatch:
        return None


@require_POST
def schedule(request: HttpRequest) -> HttpResponse:
    rows = schedule_burst()
    messages.success(request, f"Scheduled {len(rows)} tasks on the queues default and emails.")
    return redirect("index")
