"""Celery: producer and run spans and worker metrics of our own, the contrib's records made whole.

The contrib ``CeleryInstrumentor`` connects Celery's signals; ``worker.py`` replaces its handlers,
keeping its records: on the producer side the span ``apply_async/<task>`` (PRODUCER, current
while the message is sent, its trace context injected into the headers) and on the worker side
the run spans, plus queue time, current messaging attributes and worker metrics, at less cost
(an unsampled publish or task costs its propagation, and a task its measurements, nothing else).
The contrib is still what the app sees instrumented (its own ``instrument()`` call is a no-op).
It is run when a process first uses Celery: its first publish, or the start of ``celery worker``.
Importing the app is not using it, and building the SDK there cost every management command of a
Celery project ~50 ms.

Every publish also carries its time (header ``worker.PUBLISHED``), for queue time. Celery's task
tracer hands ``task_prerun`` and ``task_postrun`` to their receivers directly while every one is
connected for any sender (``dispatch.py``: ours, and in a Django project's worker Celery's own
fixup's; a receiver for a specific sender keeps Celery's dispatch).

Prefork pool children inherit the connected signals, and the SDK renews its export threads
and ``service.instance.id`` in every child at fork. What it misses is the exit: children
end in ``os._exit()`` right after ``worker_process_shutdown`` (also when recycled by
``--max-tasks-per-child``), which skips atexit, so that signal is where each child flushes.
Without it every task span and the last metrics of every child are lost. A child killed
outright cannot flush: ``killed.py`` has its task recorded by the main process, and spans
leave a worker's processes within about a second (``OTEL_BSP_SCHEDULE_DELAY`` 1000 ms unless
set), so that little else is lost with it.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

# worker.py is imported where it is used, not here: a process that imports Celery but never runs
# a task (a web worker) must not load the worker side and the contrib's Celery instrumentation (~4 MB).
PUBLISHED = "otel_launch_published"  # header: seconds since the epoch, set by the producer
BEAT_ENTRY = "otel_launch_beat_entry"  # header: the beat schedule entry that sent the task (beat.py)
_started = False
_worker_started = False
WORKER_SCHEDULE_DELAY_MS = "1000"


def on_import(_: ModuleType | None = None) -> None:
    # Once per process, whichever trigger comes first.
    global _started
    if _started:
        return
    _started = True
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once
    from otel_launch._runtime.integrations.celery import dispatch, worker

    _replace_its_handlers(CeleryInstrumentor)
    instrument_once(CeleryInstrumentor())
    _disconnect_contrib_handlers(CeleryInstrumentor())
    connect = {"weak": False}
    signals.before_task_publish.connect(worker.on_before_publish, dispatch_uid="otel-launch-published", **connect)
    signals.after_task_publish.connect(worker.on_after_publish, dispatch_uid="otel-launch-after-publish", **connect)
    signals.task_prerun.connect(worker.on_prerun, dispatch_uid="otel-launch-prerun", **connect)
    signals.task_postrun.connect(worker.on_postrun, dispatch_uid="otel-launch-postrun", **connect)
    signals.task_failure.connect(worker.on_failure, dispatch_uid="otel-launch-failure", **connect)
    signals.task_retry.connect(worker.on_retry, dispatch_uid="otel-launch-retry", **connect)
    # Celery's task tracer calls the two per-task handlers (and the signals' other receivers for any
    # sender) without its signal dispatch (dispatch.py); once its module is loaded (a worker's is).
    dispatch.install()
    # Also when the app instrumented Celery itself: its pool children need the flush as much.
    signals.worker_process_shutdown.connect(_flush_pool_child, dispatch_uid="otel-launch-flush", **connect)


def on_worker_import(apps_worker: ModuleType) -> None:
    """``celery worker`` starts (main process, before its pool forks)."""
    global _worker_started
    if _worker_started:
        return
    _worker_started = True
    # Before the tracer provider is built: a killed child takes at most ~1 s of finished spans.
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", WORKER_SCHEDULE_DELAY_MS)
    on_import()
    from celery import signals
    from celery.app import trace  # noqa: F401  (the task tracer, for dispatch.py)
    from celery.worker.request import Request

    from otel_launch._runtime.integrations.celery import dispatch, killed, worker

    dispatch.install()

    killed.install(Request)
    signals.task_received.connect(worker.stamp_receipt, weak=False, dispatch_uid="otel-launch-received")
    worker.main_process_gauges()


def on_beat_import(beat_module: ModuleType) -> None:
    """``celery.beat`` imported (``celery beat``, a worker's ``-B``): lateness and last publish per entry."""
    from otel_launch._runtime.integrations.celery import beat

    beat.install(beat_module)


def _replace_its_handlers(instrumentor_class: Any) -> None:
    """Whoever runs the contrib instrumentor (we, or the app itself), its signal handlers are
    disconnected right after: ``worker.py`` records the same spans, and two would be duplicates."""
    if getattr(instrumentor_class, "_otel_launch_replaced", False):
        return
    instrument = instrumentor_class._instrument

    @functools.wraps(instrument)  # the contrib's, for a fallback to put back (integrations/_fallbacks.py)
    def instrument_without_handlers(self: Any, **kwargs: Any) -> None:
        instrument(self, **kwargs)
        _disconnect_contrib_handlers(self)

    instrumentor_class._instrument = instrument_without_handlers
    instrumentor_class._otel_launch_replaced = True


def _disconnect_contrib_handlers(instrumentor: Any) -> None:
    from celery import signals

    for signal, handler in (
        (signals.before_task_publish, "_trace_before_publish"),
        (signals.after_task_publish, "_trace_after_publish"),
        (signals.task_prerun, "_trace_prerun"),
        (signals.task_postrun, "_trace_postrun"),
        (signals.task_failure, "_trace_failure"),
        (signals.task_retry, "_trace_retry"),
    ):
        signal.disconnect(getattr(instrumentor, handler))


def _flush_pool_child(**_: Any) -> None:
    from otel_launch._runtime import _lifecycle

    _lifecycle.shutdown()
