"""What a worker thread must put back once the database answers again."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from django.db import Error

from firefly_tasks.models import TaskModel, WorkerModel
from firefly_tasks.states import AttemptOutcome

logger = logging.getLogger("firefly_tasks")


@dataclass
class Leftovers:
    """What a lost connection left a worker thread to put back once the database answers:
    tasks that started (their completion may or may not have committed), tasks that never
    started, and the stamp of a claim whose reply was lost (it may have committed).

    Every step is guarded by the rows' state and attempt, so repeating one is harmless: a
    task whose completion did commit is left as it is, and so is one another consumer took.
    """

    worker: WorkerModel
    started: list[TaskModel] = field(default_factory=list)
    unstarted: list[TaskModel] = field(default_factory=list)
    claim_stamp: datetime.datetime | None = None

    def put_back(self) -> None:
        """Requeue what is left; each part is forgotten once done, so a failure (the
        database is still away) leaves only the rest for the next call."""
        while self.started:
            TaskModel.objects.recover(self.started[0], self.worker, AttemptOutcome.INTERRUPTED)
            self.started.pop(0)
        if self.unstarted:
            TaskModel.objects.release(self.unstarted)
            self.unstarted = []
        if self.claim_stamp is not None:
            TaskModel.objects.release_claim(self.worker.pk, self.claim_stamp)
            self.claim_stamp = None

    def put_back_before_exit(self) -> None:
        left = len(self.started) + len(self.unstarted)
        try:
            self.put_back()
        except Error as exc:
            # Still unreachable: other consumers recover these once this worker is dead.
            logger.warning("could not requeue %s task(s) before exit error=%s", left, exc)
