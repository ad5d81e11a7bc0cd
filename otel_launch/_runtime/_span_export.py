"""Span export for otel-launch's own OTLP exporters: each span encoded as it ends, batches of bytes sent.

:class:`EncodingBatchSpanProcessor` is the SDK's ``BatchSpanProcessor`` (opentelemetry-sdk
1.43-1.45: its queue, export thread, ``OTEL_BSP_*`` variables, batch sizes, schedule, fork
handling, ``force_flush`` and ``shutdown`` are the SDK's own, inherited) with one step moved
and one made cheap:

- **A span is encoded when it ends**, in the thread that ended it (``_otlp_encoding``: the
  bytes the SDK's encoder would write), and the queue holds ``(resource, scope, bytes)``. The
  SDK's queue keeps each ReadableSpan (a dozen objects) until its export thread encodes the
  whole batch: ~5 ms of CPU for 512 spans in one stretch, holding the GIL while the server's
  request thread waits for it (that wait is the p99 latency of an instrumented server), and
  objects that outlive the young garbage-collector generations, so that full collections come
  more often and take longer. Encoded at the end, each request pays for its own spans, evenly,
  and a span's objects are freed with its request. The export thread then only joins the bytes
  and sends them: the OTLP/gRPC exporter gets them as they are (``_otlp_encoding.send_bytes``),
  the OTLP/HTTP exporter serializes nothing again (``_otlp_encoding.serialized_spans``).
- **A full queue drops the span that ends** (the SDK drops the oldest queued one), before
  it is encoded. The SDK also builds a "Queue full" log record for every span it drops
  (~15 us each): with the collector down, that cost every request. The drops are counted and
  said by the wrapper every batch processor of otel-launch's gets (``sdk.parts.counting``).

What the app's own span processors, sampler and exporters see is unchanged: this processor only
serves the OTLP exporters otel-launch builds (``sdk.from_env.tracer_provider``), and only when the SDK's
internal metrics are off (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``: the SDK's processor
reports them). tests/unit/runtime/test_span_export.py exports the same spans through both processors
and compares the bytes a receiver gets.

SDK internals relied on (_compat: "span-encoding"): ``BatchSpanProcessor._batch_processor`` and
its ``_queue``, ``_max_queue_size``, ``_shutdown``, ``_pid`` and ``emit()``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.trace.export import BatchSpanProcessor


class EncodingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch span processor whose queue holds spans encoded when they end."""

    def __init__(self, span_exporter: Any, **kwargs: Any) -> None:
        # Imported here, once :func:`usable` said its internals are there (it imports them).
        from otel_launch._runtime import _otlp_encoding

        super().__init__(span_exporter, **kwargs)
        self._encoding = _otlp_encoding

    def on_end(self, span: Any) -> None:
        context = span.context
        if not (context and context.trace_flags.sampled):
            return
        batch = self._batch_processor
        if len(batch._queue) >= batch._max_queue_size and not batch._shutdown and batch._pid == os.getpid():
            return  # full: dropped unencoded (a forked child's first span goes on: emit() renews the queue)
        try:
            item: Any = (span.resource, span.instrumentation_scope, self._encoding.encode_span(span))
        except Exception:  # a value the encoder does not know: the export thread encodes it, as the SDK does
            item = span
        batch.emit(item)


def usable() -> bool:
    """Whether this processor can serve here: the encoder's and the processor's internals are
    there, and the SDK's internal metrics (which its own processor reports) are off."""
    import os

    from otel_launch._runtime import _compat

    if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true":
        return False
    return _compat.usable("otlp-encoding") and _compat.usable("span-encoding")
