"""Asking a running consumer to stop, from anywhere that can reach the database (the
dashboard's "Stop gracefully"): its heartbeat sees the request within one
``FIREFLY_HEARTBEAT_INTERVAL`` and the consumer stops as SIGTERM stops it, finishing the tasks
it runs and handing back those it claimed, then exits 0. A supervisor that restarts consumers
(systemd's ``Restart=always``, Kubernetes) starts a fresh one: a way to recycle a consumer
without shell access to its host.
"""

from __future__ import annotations

from firefly_tasks.clock import DatabaseNow
from firefly_tasks.models import WorkerModel
from firefly_tasks.states import WorkerState


def request_stop(worker_id: int, by: str = "") -> bool:
    """Ask the consumer of ``worker_id`` to stop; False if it is not running, or was asked
    already (the first request, and who made it, stand)."""
    asked = WorkerModel.objects.filter(
        pk=worker_id, state=WorkerState.RUNNING, stop_requested__isnull=True
    ).update(stop_requested=DatabaseNow(), stop_requested_by=by[:150])
    return bool(asked)


def stop_requested_by(worker_id: int) -> str | None:
    """Who asked the consumer of ``worker_id`` to stop (``""``: unnamed), or ``None``."""
    found: str | None = (
        WorkerModel.objects.filter(pk=worker_id, stop_requested__isnull=False)
        .values_list("stop_requested_by", flat=True)
        .first()
    )
    return found
