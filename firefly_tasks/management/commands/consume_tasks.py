from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import autoreload

from firefly_tasks.conf import settings
from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.options import validate_queue
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
        parser.add_argument(
            "--no-scheduler",
            action="store_false",
            dest="scheduler",
            help=(
                "Take no part in periodic schedules: neither sync FIREFLY_SCHEDULES nor "
                "enqueue due ticks (other consumers do)."
            ),
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help=(
                "Development: restart the consumer when Python code changes, as runserver does. "
                "Running tasks finish before each restart. Not with --burst or --max-tasks."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queues = options["queues"] or [settings.DEFAULT_QUEUE]
        try:
            for queue in queues:
                validate_queue(queue)
        except InvalidTaskError as exc:
            raise CommandError(str(exc)) from exc
        if options["reload"] and (options["burst"] or options["max_tasks"]):
            raise CommandError(
                "--reload runs until stopped: it cannot be used with --burst or --max-tasks."
            )

        def make_worker() -> Worker:
            return Worker(
                queues,
                concurrency=options["concurrency"],
                burst=options["burst"],
                max_tasks=options["max_tasks"],
                name=options["worker_name"],
                scheduler=options["scheduler"],
            )

        if options["reload"]:
            consume_with_reloader(make_worker)
        else:
            sys.exit(make_worker().run())


def consume_with_reloader(make_worker: Callable[[], Worker]) -> None:
    """Consume in a child process that Django's autoreloader restarts when code changes.

    In the child the reloader owns the main thread and the worker runs in another one, so the
    worker's own signal handling is not there: whatever ends the child (a code change, Ctrl-C,
    SIGTERM) stops the worker here, and running tasks finish before the child exits.
    """
    in_child = os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"
    if not in_child and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        # Ctrl-C reaches the whole process group. The parent outlives it, so the child has
        # time to finish its tasks; the parent exits when the child does.
        signal.signal(signal.SIGINT, lambda signum, frame: None)
    workers: list[Worker] = []
    finished = threading.Event()

    def consume() -> None:
        worker = make_worker()
        workers.append(worker)
        try:
            worker.run()
        finally:
            finished.set()

    try:
        autoreload.run_with_reloader(consume)
    finally:
        for worker in workers:
            worker.stop()
            finished.wait()
