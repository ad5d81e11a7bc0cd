"""A parent that exports first, then starts children with the start method in argv[1]."""

import multiprocessing
import os
import sys

from opentelemetry import metrics, trace


def child_work(name):
    with trace.get_tracer("child").start_as_current_span(name) as span:
        span.set_attribute("child.pid", os.getpid())
    metrics.get_meter("child").create_counter("child.work").add(1, {"start_method": name})


if __name__ == "__main__":
    method = sys.argv[1]
    tracer = trace.get_tracer("parent")
    with tracer.start_as_current_span("parent-before"):
        pass
    # Export now, so the parent holds a live exporter connection when it forks.
    trace.get_tracer_provider().force_flush()
    if method == "os.fork":
        pid = os.fork()
        if pid == 0:
            child_work("child-os.fork")
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    else:
        process = multiprocessing.get_context(method).Process(target=child_work, args=(f"child-{method}",))
        process.start()
        process.join(60)
        assert process.exitcode == 0, process.exitcode
    with tracer.start_as_current_span("parent-after"):
        pass
