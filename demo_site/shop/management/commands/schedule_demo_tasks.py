from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand

from demo_site.shop.burst import schedule_burst


class Command(BaseCommand):
    help = "Schedule a burst of demo tasks on the queues 'default' and 'emails'."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = schedule_burst()
        names = Counter(row.func_name.rsplit(".", 1)[-1] for row in rows)
        summary = ", ".join(f"{count} {name}" for name, count in names.items())
        self.stdout.write(f"Scheduled {len(rows)} tasks: {summary}.")
