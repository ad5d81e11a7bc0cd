"""A parent forks while another of its threads is in the middle of recording a measurement (it
holds that measurement's aggregation lock, as the SDK's ``aggregate()`` does), as a threaded app
forks a worker. The child records the same measurement, and one with an exemplar reservoir held
too, then exits; a child that waits on a lock no thread of its own holds is killed after a bound."""

import contextlib
import os
import signal
import sys
import threading
import time

from opentelemetry import metrics, trace

tracer = trace.get_tracer("target")
counter = metrics.get_meter("target").create_counter("target.work")
with tracer.start_as_current_span("parent"):
    counter.add(1, {"who": "parent"})
provider = metrics.get_meter_provider()
(storage,) = provider._measurement_consumer._reader_storages.values()
(aggregation,) = [
    aggregation
    for matches in storage._instrument_view_instrument_matches.values()
    for match in matches
    for aggregation in match._attributes_aggregation.values()
]
recording, release = threading.Event(), threading.Event()


# The exemplar reservoir has a lock of its own in newer SDKs; on the oldest (1.43) only the aggregation has one.
reservoir_lock = getattr(getattr(aggregation, "_reservoir", None), "_lock", None) or contextlib.nullcontext()


def record_slowly():
    with aggregation._lock, reservoir_lock:
        recording.set()
        release.wait(60)


threading.Thread(target=record_slowly, daemon=True).start()
recording.wait(10)
pid = os.fork()
if pid == 0:
    with tracer.start_as_current_span("in-child"):
        counter.add(1, {"who": "parent"})
    sys.exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child-status", os.waitstatus_to_exitcode(status), flush=True)
        break
    time.sleep(0.05)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("child-status hung", flush=True)
release.set()
