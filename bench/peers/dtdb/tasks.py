"""The benchmark workloads as django-tasks tasks (database backend)."""

import time

from django_tasks import task


@task()
def noop():
    pass


@task()
def sleep10():
    time.sleep(0.01)


@task()
def stamp():
    return time.time()
