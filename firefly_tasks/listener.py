"""PostgreSQL wake-ups: a thread that LISTENs for new tasks so idle consumers start at once,
and for cancels of running tasks (``firefly_tasks.cancellation``) so they stop at once.

Triggers created by the migrations ``NOTIFY firefly_tasks`` when tasks are inserted, or set
back to ``created`` ready to run, in the same transaction: the notification arrives when the
task becomes visible. Polling stays as the fallback, so a lost notification only costs up to
``FIREFLY_MAX_POLL_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable
from typing import Any

from firefly_tasks.cancellation import NOTICE
from firefly_tasks.database import queue_connection
from firefly_tasks.dialects import dialect

logger = logging.getLogger("firefly_tasks")

# How often the listener looks up from its socket to see whether it should stop.
STOP_CHECK_SECONDS = 0.5


class Listener(threading.Thread):
    """Sets ``wake`` whenever a task may have become ready; reconnects with backoff."""

    def __init__(
        self,
        wake: threading.Event,
        stopping: threading.Event,
        on_cancel: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name="firefly-listener", daemon=True)
        self.wake = wake
        self.stopping = stopping
        self.on_cancel = on_cancel  # running tasks were cancelled: stop ours

    def run(self) -> None:
        delay = 0.1
        while not self.stopping.is_set():
            raw: Any = None
            listening = dialect(queue_connection())
            try:
                raw = listening.listen()
                delay = 0.1
                self.wake.set()  # whatever arrived while not listening
                while not self.stopping.is_set():
                    # Waiting on the socket costs next to nothing; psycopg's own waiting
                    # notifies(timeout=...) costs a millisecond of CPU per call.
                    readable, _, _ = select.select([raw.fileno()], [], [], STOP_CHECK_SECONDS)
                    notices = listening.notified(raw) if readable else set()
                    if notices:
                        self.wake.set()
                    if NOTICE in notices:
                        self.on_cancel()
            except Exception as exc:
                logger.warning(
                    "listener lost its connection, retrying in %.1fs error=%s", delay, exc
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if raw is not None:
                    with contextlib.suppress(Exception):  # closing a broken one may fail
                        raw.close()
