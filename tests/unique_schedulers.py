"""A process of schedulers for tests/test_unique_consumers.py: ``THREADS`` threads released
together, each scheduling ``record_interval`` with one unique key ``CALLS`` times; prints how
many calls stored a task and how many were deduplicated, as JSON.

    python -m tests.unique_schedulers KEY THREADS CALLS
"""

from __future__ import annotations

import json
import sys
import threading

import django


def main(key: str, threads: int, calls: int) -> None:
    django.setup()
    from django.db import connection

    from tests.testapp import tasks

    barrier = threading.Barrier(threads)
    counts = {"stored": 0, "deduplicated": 0}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def schedule() -> None:
        try:
            barrier.wait(60)
            for _ in range(calls):
                row = tasks.record_interval.using(unique_key=key).schedule(key, 0.002)
                with lock:
                    counts["deduplicated" if row.deduplicated else "stored"] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=schedule) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    if errors:
        raise errors[0]
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
