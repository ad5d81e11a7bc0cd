"""Log outside and inside a span, once with an ``extra`` of the app's own; print what records carry."""

import json
import logging
import sys

from opentelemetry import trace

seen = []


class Keep(logging.Handler):
    def emit(self, record):
        seen.append({key: getattr(record, key, None) for key in ("msg", "trace_id", "span_id", "otelTraceID")})


logger = logging.getLogger("app")
logger.addHandler(Keep())
logger.warning("outside")
with trace.get_tracer("app").start_as_current_span("logging-span"):
    logger.warning("inside")
    logger.warning("own extra", extra={"trace_id": "the app's own"})
json.dump(seen, sys.stdout)
