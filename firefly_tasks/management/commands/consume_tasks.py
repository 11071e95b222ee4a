from __future__ import annotations

import multiprocessing
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
from firefly_tasks.pool import ProcessPool
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
            "--pool",
            choices=("thread", "process"),
            default="thread",
            help=(
                "Where tasks run: on the consumer's threads (default), or each slot in a child "
                "process of its own, killed and replaced past a task's timeout or cancel "
                "(docs/consumer.md)."
            ),
        )
        parser.add_argument(
            "--max-tasks-per-child",
            type=positive_int,
            metavar="N",
            help="With --pool process: replace a child once it has run N tasks.",
        )
        parser.add_argument(
            "--max-memory-per-child",
            type=positive_int,
            metavar="KIB",
            help=(
                "With --pool process: replace a child after the task that took its peak "
                "memory (resident set) past KIB kibibytes."
            ),
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

        pool = make_pool(options)

        def make_worker() -> Worker:
            return Worker(
                queues,
                concurrency=options["concurrency"],
                burst=options["burst"],
                max_tasks=options["max_tasks"],
                name=options["worker_name"],
                scheduler=options["scheduler"],
                pool=pool,
            )

        if options["reload"]:
            consume_with_reloader(make_worker)
        else:
            sys.exit(make_worker().run())


def make_pool(options: dict[str, Any]) -> ProcessPool | None:
    """The process pool the options ask for, or ``None`` for threads; refuses what cannot be."""
    per_child = options["max_tasks_per_child"] or options["max_memory_per_child"]
    if options["pool"] != "process":
        if per_child:
            raise CommandError(
                "--max-tasks-per-child and --max-memory-per-child need --pool process."
            )
        return None
    if options["reload"]:
        raise CommandError(
            "--pool process cannot be used with --reload: the reloader restarts the consumer, "
            "not its children. Use the default thread pool in development."
        )
    if "spawn" not in multiprocessing.get_all_start_methods() or not hasattr(signal, "SIGALRM"):
        raise CommandError(
            f"--pool process is not supported on this platform ({sys.platform}): it needs the "
            "spawn start method and POSIX signals."
        )
    return ProcessPool(
        max_tasks_per_child=options["max_tasks_per_child"],
        max_memory_per_child=options["max_memory_per_child"],
    )


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
