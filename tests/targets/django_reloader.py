"""Run under Django's autoreloader, as ``manage.py runserver`` does: the reloader process
starts a child that serves. The child records one span, prints its PID, registers exit work
of the app's own that takes ``argv[1]`` seconds (longer than the 0.25 s Django's reloader
waits for its child after Ctrl-C), and waits for Ctrl-C."""

import atexit
import os
import sys
import threading
import time

import django
from django.conf import settings
from django.utils import autoreload
from opentelemetry import trace

settings.configure(INSTALLED_APPS=[])
django.setup()


def serve() -> None:
    with trace.get_tracer("target").start_as_current_span("served") as span:
        span.set_attribute("target.pid", os.getpid())
    atexit.register(time.sleep, float(sys.argv[1]))  # the app's own exit work, e.g. closing a pool
    print(os.getpid(), flush=True)
    threading.Event().wait()


autoreload.run_with_reloader(serve)
