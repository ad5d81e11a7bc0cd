"""Create one span (name from argv[1]), print our PID, exit with status argv[2]."""

import os
import sys

from opentelemetry import trace

with trace.get_tracer("target").start_as_current_span(sys.argv[1]) as span:
    span.set_attribute("target.pid", os.getpid())
print(os.getpid(), flush=True)
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
