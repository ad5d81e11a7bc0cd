"""What serves when one of our own integrations cannot: the contrib's instrumentation, whole.

A fallback runs after its step raised (see ``guard`` in the registry), so it must not need the
module that failed: nothing here imports our Celery package. Each is safe to run more than once.
"""

from __future__ import annotations

from typing import Any

# The contrib's worker-side handlers, which ours (celery/worker.py) replace while they serve.
_WORKER_SIDE = (
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
    if getattr(CeleryInstrumentor, "_otel_launch_producer_only", False) and hasattr(own, "__wrapped__"):
        CeleryInstrumentor._instrument = own.__wrapped__  # ours kept only its producer side
        CeleryInstrumentor._otel_launch_producer_only = False
    instrumentor = CeleryInstrumentor()
    instrument_once(instrumentor)
    for signal_name, handler, ours in _WORKER_SIDE:
        signal = getattr(signals, signal_name)
        signal.disconnect(dispatch_uid=ours)
        # Connected again when ours had taken them off (the same receiver is never connected twice).
        signal.connect(getattr(instrumentor, handler), weak=False)
    signals.worker_process_shutdown.connect(_flush, weak=False, dispatch_uid="otel-launch-flush")
    return "the contrib's Celery instrumentation serves instead"


def _flush(**_: Any) -> None:
    from otel_launch._runtime import _lifecycle

    _lifecycle.shutdown()
