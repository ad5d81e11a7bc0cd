"""Celery: producer and worker spans from the contrib signals, made whole for real deployments.

The contrib ``CeleryInstrumentor`` connects Celery's signals (publish on the producer side,
prerun/postrun/failure/retry on the worker side); it is run when a process first uses Celery:
its first publish, or the start of ``celery worker``. Importing the app is not using
it, and building the SDK there cost every management command of a Celery project ~50 ms.

Prefork pool children inherit the connected signals, and the SDK renews its export threads
and ``service.instance.id`` in every child at fork. What it misses is the exit: children
end in ``os._exit()`` right after ``worker_process_shutdown`` (also when recycled by
``--max-tasks-per-child``), which skips atexit, so that signal is where each child flushes.
Without it every task span and the last metrics of every child are lost.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

_started = False


def on_import(_: ModuleType) -> None:
    # Once per process, whichever trigger comes first.
    global _started
    if _started:
        return
    _started = True
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(CeleryInstrumentor())
    # Also when the app instrumented Celery itself: its pool children need the flush as much.
    signals.worker_process_shutdown.connect(_flush_pool_child, weak=False, dispatch_uid="otel-launch-flush")


def _flush_pool_child(**_: Any) -> None:
    from otel_launch._runtime import _lifecycle

    _lifecycle.shutdown()
