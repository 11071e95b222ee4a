"""The benchmark workloads as django_firefly_tasks 0.4.0 tasks."""

import time

from django_firefly_tasks.decorators import task


@task()
def noop():
    pass


@task()
def sleep10():
    time.sleep(0.01)


@task()
def stamp():
    return time.time()
