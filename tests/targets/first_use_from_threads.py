"""Threads that make their first call of a client at the same moment, inside one span each.

``sqlite``: each thread connects and runs one query. ``http``: each thread sends one request
with ``requests`` to a local server (argv[2]). Every thread's call must be traced, including
those made while the first call was still instrumenting the library.
"""

import sys
import threading
import time

from opentelemetry import trace

what, threads = sys.argv[1], 16
barrier = threading.Barrier(threads)


def arrive(index: int) -> None:
    """The first thread calls at once, the others one by one while its set-up runs (~1-50 ms)."""
    barrier.wait()
    time.sleep(index * 0.0003)


tracer = trace.get_tracer("first-use")


def sqlite(index: int) -> None:
    import sqlite3

    arrive(index)
    connection = sqlite3.connect(":memory:")
    connection.cursor().execute(f"SELECT {index}")
    connection.close()


def http(index: int) -> None:
    import requests

    arrive(index)
    requests.get(f"{sys.argv[2]}/{index}", timeout=10)


def work(index: int) -> None:
    with tracer.start_as_current_span(f"thread-{index}"):
        {"sqlite": sqlite, "http": http}[what](index)


workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print("done", flush=True)
