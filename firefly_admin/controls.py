"""The dashboard's queue controls: pausing (a page that asks why) and resuming.

Pausing is a step of its own: ``GET`` shows what pausing does and asks for a reason, ``POST``
pauses. It needs no JavaScript. Resuming is one ``POST`` from the dashboard. Both need
``firefly_admin.pause_queue`` and the CSRF token, and are logged (``LogEntry`` and the
``firefly_admin`` logger).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from firefly_admin.forms import PauseQueueForm, QueueForm
from firefly_admin.history import log_entry
from firefly_admin.models import Queue
from firefly_admin.views import TaskAdmin
from firefly_tasks import queues as queue_controls
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import QueueModel

logger = logging.getLogger("firefly_admin")


@require_http_methods(["GET", "POST"])
def pause_queue(request: HttpRequest, model_admin: TaskAdmin) -> HttpResponse:
    if not model_admin.has_pause_permission(request):
        raise PermissionDenied
    dashboard_url = _dashboard_url(model_admin)
    if request.method == "GET":
        form: QueueForm = QueueForm(request.GET)
        if not form.is_valid():
            return _refuse(request, form, dashboard_url)
        name = form.cleaned_data["queue"]
        return _pause_page(request, model_admin, name, PauseQueueForm(initial={"queue": name}))
    form = PauseQueueForm(request.POST)
    if not form.is_valid():
        if "queue" in form.errors:
            return _refuse(request, form, dashboard_url)
        return _pause_page(request, model_admin, form.cleaned_data["queue"], form)
    name, reason = form.cleaned_data["queue"], form.cleaned_data["reason"]
    try:
        changed = queue_controls.pause_queue(name, by=request.user.get_username(), reason=reason)
    except InvalidTaskError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(dashboard_url)
    if changed:
        _log(request, name, f"Paused: {reason}")
        logger.info("queue paused name=%s user=%s reason=%r", name, request.user, reason)
        messages.success(
            request,
            _("Queue %(name)r paused: consumers stop claiming from it.") % {"name": name},
        )
    else:
        messages.warning(request, _("Queue %(name)r was paused already.") % {"name": name})
    return HttpResponseRedirect(dashboard_url)


@require_POST
def resume_queue(request: HttpRequest, model_admin: TaskAdmin) -> HttpResponse:
    if not model_admin.has_pause_permission(request):
        raise PermissionDenied
    dashboard_url = _dashboard_url(model_admin)
    form = QueueForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form, dashboard_url)
    name = form.cleaned_data["queue"]
    if queue_controls.resume_queue(name):
        _log(request, name, "Resumed.")
        logger.info("queue resumed name=%s user=%s", name, request.user)
        messages.success(request, _("Queue %(name)r resumed.") % {"name": name})
    else:
        messages.warning(request, _("Queue %(name)r was not paused.") % {"name": name})
    return HttpResponseRedirect(dashboard_url)


def _pause_page(
    request: HttpRequest, model_admin: TaskAdmin, name: str, form: PauseQueueForm
) -> TemplateResponse:
    request.current_app = model_admin.admin_site.name
    control = QueueModel.objects.filter(name=name, paused=True).first()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Pause queue “%(name)s”") % {"name": name},
        "opts": model_admin.opts,
        "queue": name,
        "control": control,
        "pauses": {name: control} if control else {},  # for {% pause_note %}
        "form": form,
        "dashboard_url": _dashboard_url(model_admin),
    }
    return TemplateResponse(request, "firefly_admin/pause_queue.html", context)


def _refuse(request: HttpRequest, form: QueueForm, dashboard_url: str) -> HttpResponse:
    messages.error(request, " ".join(str(e) for e in form.errors.get("queue") or ["?"]))
    return HttpResponseRedirect(dashboard_url)


def _log(request: HttpRequest, name: str, message: str) -> None:
    log_entry(request, Queue, name, name, message).save(force_insert=True)


def _dashboard_url(model_admin: TaskAdmin) -> str:
    return reverse(f"{model_admin.admin_site.name}:firefly_admin_task_dashboard")
