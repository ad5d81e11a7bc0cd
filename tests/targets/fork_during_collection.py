"""A parent whose metric collection is in progress (a thread holds the collection's lock, as the
SDK's metric thread does while it collects) when its main thread forks, as a Celery prefork
worker forks its pool children. The child records a span and a metric and exits normally."""

import os
import sys
import threading

from opentelemetry import metrics, trace

tracer = trace.get_tracer("target")
counter = metrics.get_meter("target").create_counter("target.work")
with tracer.start_as_current_span("parent"):
    counter.add(1, {"who": "parent"})
provider = metrics.get_meter_provider()
collecting, release = threading.Event(), threading.Event()


def collect_slowly():
    with provider._measurement_consumer._lock:
        collecting.set()
        release.wait(60)


threading.Thread(target=collect_slowly, daemon=True).start()
collecting.wait(10)
pid = os.fork()
if pid == 0:
    with tracer.start_as_current_span("in-child"):
        counter.add(1, {"who": "child"})
    sys.exit(0)
_, status = os.waitpid(pid, 0)
release.set()
print("child-status", os.waitstatus_to_exitcode(status), flush=True)
