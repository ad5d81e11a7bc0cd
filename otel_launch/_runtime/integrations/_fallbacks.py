"""What serves when one of our own integrations cannot: the contrib's instrumentation, whole.

A fallback runs after its step raised (see ``guard`` in the registry), so it must not need the
module that failed: nothing here imports our Celery package. Each is safe to run more than once.
"""

from __future__ import annotations

from typing import Any

# The contrib's handlers, which ours (celery/worker.py) replace while they serve.
_REPLACED = (
    ("before_task_publish", "_trace_before_publish", "otel-launch-published"),
    ("after_task_publish", "_trace_after_publish", "otel-launch-after-publish"),
    ("task_prerun", "_trace_prerun", "otel-launch-prerun"),
    ("task_postrun", "_trace_postrun", "otel-launch-postrun"),
    ("task_failure", "_trace_failure", "otel-launch-failure"),
    ("task_retry", "_trace_retry", "otel-launch-retry"),
)


def celery(_: Any = None) -> str:
    """The contrib's Celery instrumentation, producer and worker side, in place of ours.

    Whatever part of ours was connected before the failure is disconnected (never two run spans
    for one task), and a prefork pool child still flushes before it leaves through ``os._exit()``.
    """
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    own = vars(CeleryInstrumentor).get("_instrument")
    if getattr(CeleryInstrumentor, "_otel_launch_replaced", False) and hasattr(own, "__wrapped__"):
        CeleryInstrumentor._instrument = own.__wrapped__  # ours took its handlers off
        CeleryInstrumentor._otel_launch_replaced = False
    instrumentor = CeleryInstrumentor()
    instrument_once(instrumentor)
    for signal_name, handler, ours in _REPLACED:
        signal = getattr(signals, signal_name)
        signal.disconnect(dispatch_uid=ours)
        # Connected again when ours had taken them off (the same receiver is never connected twice).
        signal.connect(getattr(instrumentor, handler), weak=False)
    signals.worker_process_shutdown.connect(_flush, weak=False, dispatch_uid="otel-launch-flush")
    return "the contrib's Celery instrumentation serves instead"


def _flush(**_: Any) -> None:
    from otel_launch._runtime import _lifecycle

    _lifecycle.shutdown()
