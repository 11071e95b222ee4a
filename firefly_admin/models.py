"""Proxies of the engine's tables that carry the dashboard's own permissions.

The engine's models stay free of admin concerns; these proxies give the admin a content type
and a place for custom permissions (``firefly_admin.requeue_task`` and friends).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from firefly_tasks.models import QueueModel, ScheduleModel, TaskModel, WorkerModel


class Task(TaskModel):
    class Meta:
        proxy = True
        verbose_name = gettext_lazy("task")
        permissions = [
            ("requeue_task", "Can requeue failed or cancelled tasks"),
            ("cancel_task", "Can cancel waiting tasks"),
            ("rename_task", "Can rename tasks to another registered task"),
        ]


class Worker(WorkerModel):
    class Meta:
        proxy = True
        verbose_name = gettext_lazy("worker")
        permissions = [("stop_worker", "Can ask consumers to stop gracefully")]


class Queue(QueueModel):
    class Meta:
        proxy = True
        verbose_name = gettext_lazy("queue")
        default_permissions = ()
        permissions = [("pause_queue", "Can pause and resume queues")]


class Schedule(ScheduleModel):
    class Meta:
        proxy = True
        verbose_name = gettext_lazy("schedule")
        permissions = [("run_schedule", "Can run a periodic schedule now")]
