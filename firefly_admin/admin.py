"""Registers the dashboard's ModelAdmins with the admin site (Django autodiscovers this module).

Each ModelAdmin lives in a module of its own: ``task_admin.py`` (the tasks, the task pages and the
dashboard's URLs), ``worker_admin.py`` and ``schedule_admin.py``.
"""

from __future__ import annotations

from django.contrib import admin

from firefly_admin.models import Schedule, Task, Worker
from firefly_admin.schedule_admin import ScheduleAdmin
from firefly_admin.task_admin import TaskAdmin
from firefly_admin.worker_admin import WorkerAdmin

__all__ = ["ScheduleAdmin", "TaskAdmin", "WorkerAdmin"]

admin.site.register(Task, TaskAdmin)
admin.site.register(Worker, WorkerAdmin)
admin.site.register(Schedule, ScheduleAdmin)
