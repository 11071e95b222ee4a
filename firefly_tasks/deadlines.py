"""Deadlines: a task's ``timeout`` enforced in the thread that runs it.

A thread that starts a task's body with a timeout *arms* its deadline; a watchdog thread (one
a process, started by the first deadline) raises :class:`~firefly_tasks.exceptions.TaskTimeout`
in that thread once the deadline passes, with CPython's ``PyThreadState_SetAsyncExc``: the
exception arrives between two bytecodes of the task's Python code, so ``finally:`` blocks run.
The thread *disarms* when the body ends, and from then on nothing is raised in it: a timeout
fired but not yet delivered is withdrawn, so it never lands in the runner's own code.

A thread blocked in C (a socket read, ``time.sleep``) receives the exception only when it
returns to Python: docs/timeouts.md says what else bounds such a task.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from firefly_tasks.exceptions import TaskTimeout

# PyThreadState_SetAsyncExc(thread id, exception): to raise one, and (given NULL) to withdraw
# one not delivered yet. Holding the GIL, as every pythonapi call does.
_raise_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_withdraw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


@dataclass(slots=True)
class Deadline:
    """One armed body: its thread, when it must end (monotonic), whether it was told, and
    whether it was reported overdue (see :meth:`Watchdog.overdue`)."""

    thread: int
    at: float
    seconds: float
    fired: bool = False
    overdue: bool = False


class Watchdog:
    """The deadlines of a process's task threads, and the thread that enforces them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._armed: dict[int, Deadline] = {}  # by thread id
        self._wake_at = float("inf")  # when the watchdog thread looks next
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        """This thread's task body starts and may run ``seconds``."""
        deadline = Deadline(threading.get_ident(), time.monotonic() + seconds, seconds)
        with self._lock:
            self._armed[deadline.thread] = deadline
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="firefly-deadlines", daemon=True
                )
                self._thread.start()
            elif deadline.at < self._wake_at:
                # Only an earlier deadline wakes the watchdog: arming a task costs no switch
                # of threads when every task has the same timeout.
                self._changed.notify()

    def disarm(self) -> bool:
        """This thread's task body ended; whether its deadline had passed. Nothing is raised
        in this thread after this returns."""
        thread = threading.get_ident()
        while True:
            try:
                with self._lock:
                    deadline = self._armed.pop(thread, None)
                fired = deadline is not None and deadline.fired
                if fired:
                    # Withdraw the exception if it has not arrived yet (it may arrive here,
                    # before this line: then the loop takes it, and the answer is the same).
                    _withdraw(thread, None)
                return fired
            except TaskTimeout:
                continue

    def overdue(self, grace: float) -> list[Deadline]:
        """The bodies still running ``grace`` seconds past their deadline, each reported once:
        their threads did not stop (blocked in C code), and the consumer fences them."""
        now = time.monotonic()
        with self._lock:
            found = [
                d for d in self._armed.values() if d.fired and not d.overdue and d.at + grace <= now
            ]
            for deadline in found:
                deadline.overdue = True
        return found

    def stuck(self) -> set[int]:
        """The threads whose bodies were reported overdue and still run."""
        with self._lock:
            return {d.thread for d in self._armed.values() if d.overdue}

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for deadline in self._armed.values():
                    if not deadline.fired and deadline.at <= now:
                        deadline.fired = True
                        _raise_in(deadline.thread, TaskTimeout)
                pending = [d.at for d in self._armed.values() if not d.fired]
                self._wake_at = min(pending, default=float("inf"))
                self._changed.wait(None if not pending else max(self._wake_at - now, 0.0))


watchdog = Watchdog()


def ran_past(seconds: float) -> str:
    return f"the attempt ran past its timeout of {seconds:g} s"


def call(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], seconds: float) -> Any:
    """``func(*args, **kwargs)`` in this thread, interrupted by :class:`TaskTimeout` past
    ``seconds``. It raises ``TaskTimeout`` whenever the deadline passed, even if the function
    caught the exception and returned or raised something else."""
    fired = False
    try:
        try:
            watchdog.arm(seconds)
            result = func(*args, **kwargs)
        finally:
            fired = watchdog.disarm()
    except TaskTimeout as exc:
        # It may have arrived after the body, before ``disarm()`` began: disarm now (again).
        watchdog.disarm()
        exc.args = (ran_past(seconds),)
        raise
    except BaseException as exc:
        if fired:
            raise TaskTimeout(ran_past(seconds)) from exc
        raise
    if fired:
        raise TaskTimeout(ran_past(seconds))
    return result


def bounded(func: Callable[..., Awaitable[Any]], seconds: float) -> Callable[..., Awaitable[Any]]:
    """The coroutine function ``func``, cancelled past ``seconds`` (``asyncio.timeout``) and
    then raising :class:`TaskTimeout`."""

    @functools.wraps(func)
    async def within(*args: Any, **kwargs: Any) -> Any:
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await func(*args, **kwargs)
        except BaseException as exc:
            if limit.expired():
                raise TaskTimeout(ran_past(seconds)) from exc
            raise

    return within
