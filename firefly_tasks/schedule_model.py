"""Periodic schedules (``firefly_tasks.ticks``); ``firefly_tasks.models`` exports the model."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from firefly_tasks.states import MissedTicks, Overlap, ScheduleSource


class ScheduleModel(models.Model):
    """A periodic schedule: from ``FIREFLY_SCHEDULES`` (or ``@periodic``), synced when a
    consumer starts, or made in the admin. Consumers enqueue its due ticks; a tick becomes
    one task because only the consumer that moves ``next_tick`` on, from the value it read,
    inserts it (see ``firefly_tasks.ticks``)."""

    name = models.CharField(max_length=200, unique=True)
    func_name = models.CharField(gettext_lazy("task"), max_length=255)
    # A TASKS alias (a FireflyBackend) for a Django Tasks framework task; "" for @task's.
    backend = models.CharField(max_length=100, blank=True)
    # Exactly one of cron and every (a check constraint says so).
    cron = models.CharField(
        max_length=200, blank=True, help_text=gettext_lazy("five fields, or @daily etc.")
    )
    every = models.DurationField(null=True, blank=True, help_text=gettext_lazy("a fixed interval"))
    time_zone = models.CharField(
        max_length=64, blank=True, help_text=gettext_lazy("where cron is read (default: TIME_ZONE)")
    )
    anchor = models.DateTimeField(
        default=timezone.now, help_text=gettext_lazy("where every's grid starts")
    )
    params_data = models.TextField(
        gettext_lazy("arguments"), db_column="params", default="[[], {}]"
    )
    params_preview = models.TextField(blank=True)
    queue = models.CharField(
        max_length=100, blank=True, help_text=gettext_lazy("default: the task's")
    )
    priority = models.SmallIntegerField(
        null=True, blank=True, help_text=gettext_lazy("default: the task's")
    )
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.ALLOW)
    missed = models.CharField(max_length=8, choices=MissedTicks.choices, default=MissedTicks.ONCE)
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=8, choices=ScheduleSource.choices, default=ScheduleSource.ADMIN
    )
    # The next tick to enqueue (UTC); consumers move it on with a compare-and-set.
    next_tick = models.DateTimeField()
    last_tick = models.DateTimeField(null=True, blank=True)
    # What went wrong with it last (an unknown task, arguments that no longer serialize).
    problem = models.TextField(blank=True)
    # The FIREFLY_SCHEDULES entry it was last synced from (settings schedules only).
    digest = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "schedule"
        indexes = [models.Index(fields=["enabled", "next_tick"], name="firefly_schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(every__isnull=False))
                | (~Q(cron="") & Q(every__isnull=True)),
                name="firefly_schedule_cron_or_every",
            ),
        ]

    def __str__(self) -> str:
        return self.name
