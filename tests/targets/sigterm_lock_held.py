"""SIGTERM lands while the main thread holds the batch processor's export lock (as it does
during a force_flush() export) for argv[1] seconds; SIGTERM is left at its default.

Prints "ready" with the lock held; the test sends SIGTERM at once.
"""

import sys
import time

from opentelemetry import trace

with trace.get_tracer("target").start_as_current_span("before-signal"):
    pass
provider = trace.get_tracer_provider()
(batch,) = [p for p in provider._active_span_processor._span_processors if hasattr(p, "_batch_processor")]
hold = float(sys.argv[1])
with batch._batch_processor._export_lock:
    print("ready", flush=True)
    held_until = time.monotonic() + hold
    while time.monotonic() < held_until:
        time.sleep(0.01)  # Python code between sleeps: where a signal handler runs
time.sleep(60)
