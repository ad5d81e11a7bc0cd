"""A process that leaves SIGTERM as it found it (argv[1] says how), makes a span, says "ready",
and waits, at most 60 s, for the test's signal or for a line on stdin.

- default: SIGTERM left at its default disposition;
- ignored: SIGTERM ignored before any telemetry;
- handler-after: the app installs its own handler (exit 7) after its first span;
- child: a multiprocessing fork child makes the span and waits; the parent terminates it
  (SIGTERM) when stdin gets a line, and prints the child's exit code;
- gevent, eventlet: default, in a process monkey-patched first (its wait is the hub's).
"""

import sys

if sys.argv[1] == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif sys.argv[1] == "eventlet":
    import eventlet

    eventlet.monkey_patch()

import multiprocessing  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from opentelemetry import trace  # noqa: E402


def span(name):
    with trace.get_tracer("target").start_as_current_span(name):
        pass


def wait_for_stdin():
    if mode in ("gevent", "eventlet"):
        time.sleep(60)  # patched: the hub waits, where the signal handler then runs
    select.select([sys.stdin], [], [], 60)
    sys.stdin.readline()


def child(ready):
    span("in-child")
    ready.set()
    time.sleep(60)


mode = sys.argv[1]
if mode == "ignored":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "child":
    ready = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(target=child, args=(ready,))
    process.start()
    ready.wait(30)
    print("ready", flush=True)
    wait_for_stdin()
    process.terminate()
    process.join(30)
    print("child exit code", process.exitcode, flush=True)
    sys.exit(0)
span("before-signal")
if mode == "handler-after":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
print("ready", flush=True)
wait_for_stdin()
print("still here", signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)
