"""Trace ids on the app's log records, so that a log line leads to its trace.

Every record gets ``trace_id`` and ``span_id`` (of the current span, or of the Django request
it was logged about: see :func:`request_span`), and the attributes of
``opentelemetry-instrument``'s logging instrumentation (``otelTraceID``, ``otelSpanID``,
``otelTraceSampled``, ``otelServiceName``), so that format strings and structured handlers
written for either keep working. Outside a span the ids are "0", as upstream, so that a
format string naming them never fails.

The contrib ``LoggingInstrumentor`` is not used: importing it costs ~70 ms in every process
that imports ``logging``, it builds the SDK as soon as it is enabled, and by default it also
attaches the log-export handler, the source of the recursion warnings users see with logs
export off. Stamping the records as they are made is all correlation needs.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# Upstream's format when OTEL_PYTHON_LOG_CORRELATION=true and no OTEL_PYTHON_LOG_FORMAT is set.
DEFAULT_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s resource.service.name=%(otelServiceName)s "
    "trace_sampled=%(otelTraceSampled)s] - %(message)s"
)
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_installed = False


def request_span(record: Any) -> Any:
    """The server span of the Django request a record is about, when it is logged after that span
    ended: Django logs each 4xx and 5xx response (``django.request``'s "Not Found: /x") with the
    request in ``extra``, once the middleware chain, ours included, has returned."""
    state = getattr(getattr(record, "__dict__", {}).get("request"), "_otel_launch_request", None)
    return getattr(state, "span", None)


def correlate(logging: ModuleType) -> None:
    """Stamp trace ids on every record (once), and set upstream's log format when asked for."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.Logger.makeRecord
    service_name = os.environ.get("OTEL_SERVICE_NAME", "")

    # Wrapping makeRecord, not the record factory: the factory runs before the caller's
    # ``extra`` is applied, and logging refuses an ``extra`` key the record already has, so
    # an app logging extra={"trace_id": ...} of its own would break. Its value wins here.
    def stamped_make_record(self: Any, *args: Any, **kwargs: Any) -> Any:
        record = make_record(self, *args, **kwargs)
        trace_id = span_id = "0"
        sampled = False
        # No span can be current in a process that never imported the trace API, so a process
        # that logs but never traces does not pay for importing it.
        trace = sys.modules.get("opentelemetry.trace")
        if trace is not None:
            context = trace.get_current_span().get_span_context()
            if not context.is_valid:
                span = request_span(record)
                if span is not None:
                    context = span.get_span_context()
            if context.is_valid:
                trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
                sampled = context.trace_flags.sampled
        fields = record.__dict__
        for name, value in (
            ("trace_id", trace_id),
            ("span_id", span_id),
            ("otelTraceID", trace_id),
            ("otelSpanID", span_id),
            ("otelTraceSampled", sampled),
            ("otelServiceName", service_name),
        ):
            fields.setdefault(name, value)
        return record

    logging.Logger.makeRecord = stamped_make_record
    # OTEL_PYTHON_LOG_CORRELATION keeps its upstream meaning: also configure the root logger.
    if os.environ.get("OTEL_PYTHON_LOG_CORRELATION", "").strip().lower() == "true":
        level = _LEVELS.get(os.environ.get("OTEL_PYTHON_LOG_LEVEL", "").strip().lower(), 20)
        logging.basicConfig(format=os.environ.get("OTEL_PYTHON_LOG_FORMAT") or DEFAULT_FORMAT, level=level)
