"""Spans started in a pool thread, a Thread and a Timer, all handed their work inside "parent"."""

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace

tracer = trace.get_tracer("threads")


def child(name: str) -> None:
    with tracer.start_as_current_span(name):
        pass


with tracer.start_as_current_span("parent"):
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(child, ["pool-a", "pool-b"]))
    thread = threading.Thread(target=child, args=("thread",))
    thread.start()
    thread.join()
    timer = threading.Timer(0.01, child, args=("timer",))
    timer.start()
    timer.join()
child("after")  # outside: a root of its own
print("contrib threading instrumentation loaded:", "opentelemetry.instrumentation.threading" in sys.modules)
