"""The benchmark workloads as Procrastinate tasks: plain (sync) functions, as a Django
project writes them; Procrastinate runs them in a thread of its worker."""

import time

from procrastinate.contrib.django import app

from bench.peer_agent import write_stamp


@app.task
def noop():
    pass


@app.task
def sleep10():
    time.sleep(0.01)


@app.task
def stamp(key):
    write_stamp(key)
