"""A parent that exports, then forks from C (libc's fork(), as uWSGI and C extensions do: no
Python fork hook runs in the child), and a child that records a span and a metric and exits.

argv[1]: "span" (the child records a span and a metric) or "metric" (a metric only).
Prints "parent <pid> <instance id>" and the child prints "child <pid>".
"""

import ctypes
import os
import sys

from opentelemetry import metrics, trace

tracer = trace.get_tracer("target")
counter = metrics.get_meter("target").create_counter("target.work")
with tracer.start_as_current_span("parent-before"):
    counter.add(1, {"who": "parent"})
provider = trace.get_tracer_provider()
provider.force_flush()  # the parent holds a live exporter, threads and a queue when it forks
instance = provider.resource.attributes["service.instance.id"]
print("parent", os.getpid(), instance, flush=True)

# PyDLL keeps the GIL across the call, as uWSGI's master holds it while it forks.
pid = ctypes.PyDLL(None).fork()
if pid == 0:
    print("child", os.getpid(), flush=True)
    if sys.argv[1] == "span":
        with tracer.start_as_current_span("in-child"):
            pass
    counter.add(1, {"who": "child"})
    sys.exit(0)  # a normal exit: atexit, where the flush runs
_, status = os.waitpid(pid, 0)
print("child-status", os.waitstatus_to_exitcode(status), flush=True)
with tracer.start_as_current_span("parent-after"):
    pass
