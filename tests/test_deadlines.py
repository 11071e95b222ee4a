"""The watchdog raises a task's ``TaskTimeout`` only while the task's body runs: never into
the code around it, however close the deadline falls to the body's end."""

from __future__ import annotations

import random
import sys
import threading
import time

from firefly_tasks import deadlines
from firefly_tasks.exceptions import TaskCancelled, TaskTimeout

THREADS = 4
ROUNDS = 400


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_timeout_lands_in_the_body_or_nowhere_never_in_the_runner() -> None:
    start = threading.Barrier(THREADS)
    seen = {"timed out": 0, "outside": 0}
    lock = threading.Lock()

    def runner(seed: int) -> None:
        chance = random.Random(seed)
        start.wait()
        for _ in range(ROUNDS):
            caught = False
            try:
                # Deadlines and bodies of the same lengths (up to a few GIL switch intervals):
                # about half time out, and the watchdog often fires just as the body ends.
                deadlines.call(spin, [chance.uniform(0, 0.01)], {}, chance.uniform(0, 0.01))
            except TaskTimeout:
                caught = True
            try:
                spin(0.0001)  # the runner's own code: nothing may arrive here
            except TaskTimeout:
                with lock:
                    seen["outside"] += 1
            with lock:
                seen["timed out"] += caught

    threads = [threading.Thread(target=runner, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)

    # The race was run (deadlines passed), and every exception was the body's.
    assert seen["timed out"] > 0 and seen["outside"] == 0, seen


def test_an_unfired_deadline_costs_its_thread_nothing() -> None:
    watchdog = deadlines.Watchdog()
    for _ in range(1000):
        watchdog.arm(60)
        assert watchdog.disarm() is None


def test_a_cancel_lands_in_the_body_it_names_and_nowhere_else() -> None:
    # One thread runs bodies 0, 1, 2, ... of random lengths; another cancels the body running
    # now or the one before (gone already) at random moments.
    rounds = 3000
    current = {"body": -1}
    told: set[int] = set()
    stopped: set[int] = set()
    outside = []
    ready = threading.Barrier(2)
    runner_thread: list[int] = []

    def runner() -> None:
        runner_thread.append(threading.get_ident())
        ready.wait()
        for body in range(rounds):
            current["body"] = body
            try:
                deadlines.call(spin, [random.uniform(0, 0.0005)], {}, None, body)
            except TaskCancelled:
                stopped.add(body)
            try:
                spin(0.00005)
            except TaskCancelled:
                outside.append(body)
        current["body"] = rounds

    thread = threading.Thread(target=runner)
    thread.start()
    ready.wait()
    while current["body"] < rounds:
        body = current["body"] - random.choice((0, 0, 1))
        if deadlines.watchdog.interrupt(runner_thread[0], body):
            told.add(body)
        spin(random.uniform(0, 0.001))
    thread.join(60)

    assert not thread.is_alive() and not outside
    assert told and stopped == told  # every cancel told was felt, by that body only


def test_a_thread_blocked_in_c_past_its_deadline_stalls_no_traced_thread() -> None:
    # On CPython 3.11, an exception raised in a thread that is blocked in C makes every traced
    # thread (a debugger, coverage.py) spin at its next call until the exception arrives. Here
    # the watchdog's thread, the body's and this one are traced; the body is blocked in C on a
    # lock that this thread releases once it has made its calls. An untraced rescuer releases
    # it after 10 s if they stalled.
    def tracer(frame: object, event: str, arg: object) -> None:
        return None

    gate, once = threading.Lock(), threading.Lock()
    gate.acquire()
    calls_done, done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {"stalled": False, "interrupted": False}

    def open_gate() -> None:
        with once:
            if gate.locked():
                gate.release()

    def rescuer() -> None:
        sys.settrace(None)  # untraced: it never spins
        if not calls_done.wait(10):
            outcome["stalled"] = True
            open_gate()

    rescue = threading.Thread(target=rescuer)
    rescue.start()
    own = threading.gettrace() is None, sys.gettrace() is None
    if own[0]:
        threading.settrace(tracer)
    if own[1]:
        sys.settrace(tracer)
    try:
        watchdog = deadlines.Watchdog()

        def body() -> None:
            try:
                watchdog.arm(0.05)
                gate.acquire()  # blocked in C
                spin(0.01)
            except TaskTimeout:
                outcome["interrupted"] = True
            finally:
                outcome["told"] = watchdog.disarm()
                done.set()

        thread = threading.Thread(target=body)
        thread.start()
        while watchdog.overdue(0) == []:  # the deadline passed, and it was told
            time.sleep(0.01)
        assert sum(len(str(n)) for n in range(10_000)) > 0  # many Python calls
        calls_done.set()
        open_gate()
        assert done.wait(20)
        thread.join(10)
    finally:
        if own[0]:
            threading.settrace(None)
        if own[1]:
            sys.settrace(None)
    rescue.join(20)

    # The calls ran while the body was still blocked, and it was told it timed out.
    assert outcome["stalled"] is False and outcome["told"] is TaskTimeout
    # Where raising is safe, the exception arrived in the body once it returned to Python.
    assert outcome["interrupted"] is (sys.version_info >= (3, 12))
