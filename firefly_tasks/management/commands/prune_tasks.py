from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from firefly_tasks import rollups
from firefly_tasks.conf import settings
from firefly_tasks.models import FINISHED_STATUSES, TaskModel, TaskRollup


class Command(BaseCommand):
    help = "Delete finished tasks (and their attempts) older than a retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=30,
            help="Delete tasks that finished more than this many days ago (default: 30).",
        )
        parser.add_argument(
            "--status",
            action="append",
            choices=[str(status) for status in FINISHED_STATUSES],
            help="Only tasks with this status; repeat for several (default: all finished).",
        )
        parser.add_argument(
            "--rollup-days",
            type=float,
            default=None,
            help="Also delete the per-minute rollups (the dashboard's throughput history) older "
            "than this many days (default: FIREFLY_ROLLUP_RETENTION_DAYS, 90).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - datetime.timedelta(days=options["days"])
        statuses = options["status"] or [str(status) for status in FINISHED_STATUSES]
        tasks = TaskModel.objects.finished_before(cutoff, statuses)
        rollup_days = options["rollup_days"]
        if rollup_days is None:
            rollup_days = settings.ROLLUP_RETENTION_DAYS
        rollup_cutoff = timezone.now() - datetime.timedelta(days=rollup_days)
        if options["dry_run"]:
            self.stdout.write(f"Would delete {tasks.count()} task(s) finished before {cutoff}.")
            old = TaskRollup.objects.filter(minute__lt=rollup_cutoff).count()
            self.stdout.write(f"Would delete {old} rollup row(s) from before {rollup_cutoff}.")
            return
        deleted = tasks.prune()
        self.stdout.write(f"Deleted {deleted} task(s) finished before {cutoff}.")
        pruned = rollups.prune(rollup_cutoff)
        self.stdout.write(f"Deleted {pruned} rollup row(s) from before {rollup_cutoff}.")
