"""How many more attempts a consumer may start (``consume_tasks --max-tasks``)."""

from __future__ import annotations

import threading


class Budget:
    """How many more attempts may start under ``--max-tasks`` (unbounded when ``None``)."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, count: int) -> None:
        if count:
            with self._lock:
                if self._left is not None:
                    self._left += count
