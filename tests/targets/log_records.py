"""Log two records, one inside a span: with logs export on, both must arrive."""

import logging

from opentelemetry import trace

logging.getLogger("app").warning("outside any span")
with trace.get_tracer("app").start_as_current_span("with-log"):
    logging.getLogger("app").warning("inside a span")
