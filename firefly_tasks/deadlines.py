"""Deadlines: stopping a task's body in the thread that runs it, at its ``timeout`` or when it
is cancelled while it runs.

A thread that starts a task's body *arms* it (with its timeout, if any); a watchdog thread (one
a process, started by the first timeout) raises :class:`~firefly_tasks.exceptions.TaskTimeout`
in that thread once the deadline passes, and :meth:`Watchdog.interrupt` raises
:class:`~firefly_tasks.exceptions.TaskCancelled` in it, with CPython's
``PyThreadState_SetAsyncExc``: the exception arrives between two bytecodes of the task's Python
code, so ``finally:`` blocks run. The thread *disarms* when the body ends, and from then on
nothing is raised in it: an exception raised but not delivered yet is taken there, so it never
lands in the runner's own code.

A thread blocked in C (a socket read, ``time.sleep``) receives the exception only when it
returns to Python: ``firefly_tasks.fence`` deals with a thread that does not.

On CPython 3.11, while an exception raised in a thread waits for it, every other thread that
runs under a tracer (a debugger, coverage.py) spins at its next call until it arrives, which for
a thread blocked in C may be never. Nothing is raised there while a tracer is set: the body
runs on, ends ``timed_out`` (or ``cancelled``) when it returns, and is fenced if it has not
within the grace.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from firefly_tasks.exceptions import TaskCancelled, TaskTimeout

# PyThreadState_SetAsyncExc(thread id, exception), holding the GIL as every pythonapi call
# does. (Never with NULL to withdraw one: CPython then leaves its eval breaker set for good,
# which costs every thread a check at each call, and under a tracer loops for ever.)
_raise_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
NEVER = float("inf")


def _can_raise() -> bool:
    """Whether raising in another thread is safe from this one (see the module's docstring)."""
    return sys.version_info >= (3, 12) or (sys.gettrace() is None and threading.gettrace() is None)


def _arrive() -> None:
    """Nothing: calling it checks for a pending exception (a call's first instruction does),
    so one raised in this thread arrives here at the latest."""


@dataclass(slots=True)
class Deadline:
    """One armed body: its thread, what it runs (``token``), when it must end (monotonic;
    ``NEVER`` without a timeout), what it was told (``raised``: the exception's class, once),
    whether that was raised in its thread (``sent``: not under a tracer on CPython 3.11), and
    whether it was reported overdue (see :meth:`Watchdog.overdue`)."""

    thread: int
    token: Hashable
    at: float
    seconds: float | None
    raised: type[BaseException] | None = None
    sent: bool = False
    overdue: bool = False

    def tell(self, raised: type[BaseException]) -> None:
        """Stop, with ``raised``: raise it in the body's thread if that is safe."""
        self.raised = raised
        if _can_raise():
            _raise_in(self.thread, raised)
            self.sent = True


class Watchdog:
    """The armed bodies of a process's task threads, and the thread that times them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._armed: dict[int, Deadline] = {}  # by thread id
        # Each thread's current (or last) body once it was told to stop, kept until its next
        # body: disarm() may be interrupted by the very exception it takes, and must still know.
        self._told: dict[int, Deadline] = {}
        self._wake_at = NEVER  # when the watchdog thread looks next
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float | None, token: Hashable = None) -> None:
        """This thread's task body starts, may run ``seconds`` (``None``: no limit), and is
        known as ``token`` to :meth:`interrupt`."""
        at = NEVER if seconds is None else time.monotonic() + seconds
        deadline = Deadline(threading.get_ident(), token, at, seconds)
        with self._lock:
            self._armed[deadline.thread] = deadline
            self._told.pop(deadline.thread, None)
            if at == NEVER:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="firefly-deadlines", daemon=True
                )
                self._thread.start()
            elif at < self._wake_at:
                # Only an earlier deadline wakes the watchdog: arming a task costs no switch
                # of threads when every task has the same timeout.
                self._changed.notify()

    def disarm(self) -> type[BaseException] | None:
        """This thread's task body ended; what was raised in it, if anything. Nothing is
        raised in this thread after this returns."""
        thread = threading.get_ident()
        taken = False
        while True:
            try:
                with self._lock:
                    self._armed.pop(thread, None)
                told = self._told.get(thread)
                if told is None:
                    return None
                if told.sent and not taken:
                    # The exception may still be on its way (CPython's flag for it is shared
                    # by all threads, and one thread's taking its own clears it for all).
                    # Raise it again, which replaces any still pending, and take it here: the
                    # next call's first instruction delivers it, to the loop's except.
                    taken = True
                    assert told.raised is not None
                    _raise_in(thread, told.raised)
                    _arrive()
                return told.raised
            except (TaskTimeout, TaskCancelled):
                continue

    def interrupt(self, thread: int, token: Hashable) -> bool:
        """Raise ``TaskCancelled`` in ``thread`` if it is still running the body ``token``;
        whether it was. Its grace for stopping counts from now (see :meth:`overdue`)."""
        with self._lock:
            deadline = self._armed.get(thread)
            if deadline is None or deadline.token != token or deadline.raised is not None:
                return False
            deadline.at = time.monotonic()
            self._told[thread] = deadline
            deadline.tell(TaskCancelled)
            return True

    def cancelled(self, thread: int) -> bool:
        """Whether the body ``thread`` runs was cancelled (``current_task().cancel_requested``)."""
        told = self._told.get(thread)
        return told is not None and told.raised is TaskCancelled

    def overdue(self, grace: float) -> list[Deadline]:
        """The bodies still running ``grace`` seconds after they were told to stop, each
        reported once: their threads did not stop (blocked in C code), and are fenced."""
        now = time.monotonic()
        with self._lock:
            found = [
                d
                for d in self._armed.values()
                if d.raised is not None and not d.overdue and d.at + grace <= now
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
                    if deadline.raised is None and deadline.at <= now:
                        self._told[deadline.thread] = deadline
                        deadline.tell(TaskTimeout)
                pending = [d.at for d in self._armed.values() if d.raised is None]
                self._wake_at = min(pending, default=NEVER)
                wait = None if self._wake_at == NEVER else max(self._wake_at - now, 0.0)
                self._changed.wait(wait)


class Guard(Protocol):
    """What stops a task's body in the thread that runs it: this process's :class:`Watchdog`,
    or in a process pool's child, its alarms (``firefly_tasks.alarms``)."""

    def arm(self, seconds: float | None, token: Hashable = None) -> None: ...

    def disarm(self) -> type[BaseException] | None: ...

    def cancelled(self, thread: int) -> bool: ...


watchdog = Watchdog()
_guard: Guard = watchdog


def guard() -> Guard:
    """What stops task bodies in this process."""
    return _guard


def use(new: Guard) -> None:
    """Stop task bodies with ``new`` from now on (a process pool's child, at its start)."""
    global _guard
    _guard = new


def ran_past(seconds: float | None) -> str:
    return f"the attempt ran past its timeout of {seconds:g} s"


CANCELLED = "the task was cancelled while it ran"


def _stopped(raised: type[BaseException], seconds: float | None) -> BaseException:
    return TaskTimeout(ran_past(seconds)) if raised is TaskTimeout else TaskCancelled(CANCELLED)


def call(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    seconds: float | None,
    token: Hashable = None,
) -> Any:
    """``func(*args, **kwargs)`` in this thread, interrupted by :class:`TaskTimeout` past
    ``seconds`` (``None``: never) and by :class:`TaskCancelled` at :meth:`Watchdog.interrupt`.
    Whenever one was raised, it raises it, even if the function caught it and returned or
    raised something else."""
    raised = None
    stopper = _guard
    try:
        try:
            stopper.arm(seconds, token)
            result = func(*args, **kwargs)
        finally:
            raised = stopper.disarm()
    except (TaskTimeout, TaskCancelled) as exc:
        # It may have arrived after the body, before ``disarm()`` began: disarm now (again).
        stopper.disarm()
        raise _stopped(type(exc), seconds).with_traceback(exc.__traceback__) from None
    except BaseException as exc:
        if raised is not None:
            raise _stopped(raised, seconds) from exc
        raise
    if raised is not None:
        raise _stopped(raised, seconds)
    return result


@dataclass(slots=True)
class _AsyncBody:
    """A running ``@atask`` body: its loop and task, for a cancel from another thread."""

    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[Any] | None
    cancelled: bool = False


_async_bodies: dict[Hashable, _AsyncBody] = {}


def cancel_async(token: Hashable) -> bool:
    """Cancel the ``@atask`` body ``token`` if it runs (from any thread, or a signal
    handler): its task is cancelled at its current ``await``, then ends ``TaskCancelled``."""
    body = _async_bodies.get(token)
    if body is None or body.cancelled or body.task is None:
        return False
    body.cancelled = True
    body.loop.call_soon_threadsafe(body.task.cancel)
    return True


def async_cancelled(token: Hashable) -> bool:
    body = _async_bodies.get(token)
    return body is not None and body.cancelled


def bounded(
    func: Callable[..., Awaitable[Any]], seconds: float | None, token: Hashable = None
) -> Callable[..., Awaitable[Any]]:
    """The coroutine function ``func``, cancelled past ``seconds`` (``asyncio.timeout``; None:
    never) and then raising :class:`TaskTimeout`, or at :func:`cancel_async` of ``token`` and
    then raising :class:`TaskCancelled`, even if it caught the cancellation."""

    @functools.wraps(func)
    async def within(*args: Any, **kwargs: Any) -> Any:
        body = _AsyncBody(asyncio.get_running_loop(), asyncio.current_task())
        if token is not None:
            _async_bodies[token] = body
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                result = await func(*args, **kwargs)
        except BaseException as exc:
            if body.cancelled:
                raise TaskCancelled(CANCELLED) from exc
            if limit.expired():
                raise TaskTimeout(ran_past(seconds)) from exc
            raise
        finally:
            if token is not None:
                _async_bodies.pop(token, None)
        if body.cancelled:
            raise TaskCancelled(CANCELLED)
        return result

    return within
