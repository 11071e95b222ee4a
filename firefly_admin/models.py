"""Proxies of the engine's tables that carry the dashboard's own permissions.

The engine's models stay free of admin concerns; these proxies give the admin a content type
and a place for custom permissions (``firefly_admin.requeue_task`` and friends).
"""

from __future__ import annotations

from firefly_tasks.models import QueueModel, ScheduleModel, TaskModel, WorkerModel


class Task(TaskModel):
    class Meta:
        proxy = True
        verbose_name = "task"
        permissions = [
            ("requeue_task", "Can requeue failed or cancelled tasks"),
            ("cancel_task", "Can cancel waiting tasks"),
            ("rename_task", "Can rename tasks to another registered task"),
        ]


class Worker(WorkerModel):
    class Meta:
        proxy = True
        verbose_name = "worker"
        permissions = [("stop_worker", "Can ask consumers to stop gracefully")]


class Queue(QueueModel):
    class Meta:
        proxy = True
        verbose_name = "queue"
        default_permissions = ()
        permissions = [("pause_queue", "Can pause and resume queues")]


class Schedule(ScheduleModel):
    class Meta:
        proxy = True
        verbose_name = "schedule"
        permissions = [("run_schedule", "Can run a periodic schedule now")]
