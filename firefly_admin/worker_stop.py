"""The worker page's "Stop gracefully": a confirmation page (GET), then the request (POST,
CSRF-checked, ``firefly_admin.stop_worker``), logged in the worker's history. The consumer
stops as SIGTERM stops it, within one heartbeat (``firefly_tasks.worker_control``)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from firefly_admin.display import seconds_text
from firefly_admin.history import log_entry
from firefly_admin.metrics import liveness
from firefly_admin.models import Worker
from firefly_tasks.conf import settings as engine_settings
from firefly_tasks.worker_control import request_stop

logger = logging.getLogger("firefly_admin")


def stop_worker(request: HttpRequest, model_admin: Any, object_id: str) -> HttpResponse:
    if not request.user.has_perm("firefly_admin.stop_worker"):
        raise PermissionDenied
    worker = Worker.objects.filter(pk=object_id).first() if object_id.isdigit() else None
    if worker is None:
        raise Http404("No such worker.")
    site = model_admin.admin_site
    back = reverse(f"{site.name}:firefly_admin_worker_change", args=[worker.pk])
    if request.method != "POST":
        context = {
            **site.each_context(request),
            "opts": model_admin.opts,
            "worker": worker,
            "alive": liveness(worker, timezone.now()) in ("alive", "late"),
            "heartbeat_interval": seconds_text(engine_settings.HEARTBEAT_INTERVAL),
            "back_url": back,
            "title": _("Stop %(worker)s") % {"worker": worker.name},
        }
        return TemplateResponse(request, "firefly_admin/stop_worker.html", context)
    user = request.user.get_username()
    if request_stop(worker.pk, by=user):
        log_entry(request, Worker, str(worker.pk), worker.name, "Asked to stop.").save()
        logger.info("worker stop requested name=%s user=%s", worker.name, user)
        messages.success(
            request,
            _(
                "%(worker)s was asked to stop: it finishes its running tasks and exits within "
                "one heartbeat (%(seconds)s s)."
            )
            % {
                "worker": worker.name,
                "seconds": seconds_text(engine_settings.HEARTBEAT_INTERVAL),
            },
        )
    else:
        messages.warning(
            request,
            _("%(worker)s is not running, or was asked to stop already.") % {"worker": worker.name},
        )
    return HttpResponseRedirect(back)
