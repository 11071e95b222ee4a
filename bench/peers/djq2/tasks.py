"""The benchmark workloads as django-q2 task functions (``async_task`` takes their path)."""

import time

from bench.peer_agent import write_stamp


def noop():
    pass


def sleep10():
    time.sleep(0.01)


def stamp(key):
    write_stamp(key)
