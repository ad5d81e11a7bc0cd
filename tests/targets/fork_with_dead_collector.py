"""A parent whose collector is down forks 20 children, each of which exits at once, while its export
to the dead collector is in progress (retrying, holding the export lock), as a pre-fork server
recycles workers. Prints whether the export was in progress and how long the 20 forks took."""

import os
import time

from opentelemetry import trace

with trace.get_tracer("target").start_as_current_span("queued"):
    pass
processors = trace.get_tracer_provider()._active_span_processor._span_processors
(batch,) = [processor._batch_processor for processor in processors if hasattr(processor, "_batch_processor")]
deadline = time.monotonic() + 20
while not batch._export_lock.locked() and time.monotonic() < deadline:  # OTEL_BSP_SCHEDULE_DELAY is short
    time.sleep(0.01)
print("exporting", batch._export_lock.locked(), flush=True)
started = time.monotonic()
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
took = time.monotonic() - started
print("still-exporting", batch._export_lock.locked(), flush=True)
print("forks-took", f"{took:.3f}", flush=True)
