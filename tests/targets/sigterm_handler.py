"""After a span, wait for a signal: SIGTERM handled as servers do (clean exit), SIGINT left to Python."""

import signal
import sys
import threading

from opentelemetry import trace

stopped = threading.Event()


def on_term(signum, frame):
    print("handled SIGTERM", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
with trace.get_tracer("target").start_as_current_span("before-signal"):
    pass
print("ready", flush=True)
stopped.wait(60)  # bounded: the test sends SIGTERM long before
sys.exit(1)
