"""What an orchestrator undoes when it exits, normally or by SIGTERM: drop its databases,
stop its processes (last registered, first run)."""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

_cleanups: list[Callable[[], None]] = []


def on_exit(function: Callable[[], None]) -> None:
    _cleanups.append(function)


def _run_cleanups() -> None:
    while _cleanups:
        function = _cleanups.pop()
        with contextlib.suppress(Exception):
            function()


def _on_signal(signum: int, frame: Any) -> None:
    _run_cleanups()
    sys.exit(128 + signum)


atexit.register(_run_cleanups)
signal.signal(signal.SIGTERM, _on_signal)
