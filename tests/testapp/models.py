from __future__ import annotations

from django.db import models


class Execution(models.Model):
    """One row per run of ``record_execution``: how exactly-once is counted."""

    task_id = models.BigIntegerField(db_index=True)
    pid = models.IntegerField()
    attempt = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.task_id} in {self.pid}"


class Note(models.Model):
    """A row a task writes, to see what its transaction kept."""

    text = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.text


class Run(models.Model):
    """One row per run of ``record_run``: when it began and ended (``time.time()``), to check
    which runs overlapped."""

    label = models.CharField(max_length=100, db_index=True)
    task_id = models.BigIntegerField()
    began = models.FloatField()
    ended = models.FloatField()

    def __str__(self) -> str:
        return f"{self.label} #{self.task_id}"
