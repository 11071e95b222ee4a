from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from firefly_tasks.conf import settings
from firefly_tasks.decorators import validate_queue
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.worker import Worker


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run a Firefly consumer: claim ready tasks from the given queues and run them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            help="Queue to consume; repeat for several (default: FIREFLY_DEFAULT_QUEUE).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=1,
            metavar="N",
            help="Threads running tasks, each with its own database connection (default: 1).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Exit 0 once no task is ready and none is running (future tasks are left).",
        )
        parser.add_argument(
            "--max-tasks",
            type=positive_int,
            metavar="N",
            help="Exit 0 after N task attempts have finished.",
        )
        parser.add_argument(
            "--worker-name",
            metavar="NAME",
            help="Name shown for this process in the worker table (default: host:pid:random).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queues = options["queues"] or [settings.DEFAULT_QUEUE]
        try:
            for queue in queues:
                validate_queue(queue)
        except InvalidTaskError as exc:
            raise CommandError(str(exc)) from exc
        worker = Worker(
            queues,
            concurrency=options["concurrency"],
            burst=options["burst"],
            max_tasks=options["max_tasks"],
            name=options["worker_name"],
        )
        sys.exit(worker.run())
