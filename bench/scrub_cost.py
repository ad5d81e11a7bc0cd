"""Cost per span of ScrubbingSpanProcessor.on_end, the processor every span goes through.

Three kinds of ended span, each measured with the real SDK's ReadableSpan: an SQL span (no URL,
no event: the common case), a server span with a query (URL keys looked at), and a span with an
exception event carrying a URL with a token (free text scrubbed). The check that decides a span
has no event and no status description is what every exception-free span pays.
Run alone: ``.venv/bin/python bench/scrub_cost.py`` (a few seconds).
"""

from __future__ import annotations

import timeit

from opentelemetry.sdk.trace import TracerProvider

from otel_launch._core.masking import REDACT_PATTERN
from otel_launch._runtime._scrub import ScrubbingSpanProcessor


def ended_spans() -> dict[str, object]:
    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    made = {}
    with tracer.start_as_current_span("SELECT", attributes={"db.system": "sqlite", "db.statement": "SELECT ?"}) as s:
        pass
    made["sql, no event"] = s._readable_span()
    attributes = {"http.method": "GET", "http.target": "/orders/?page=2", "http.route": "orders/"}
    with tracer.start_as_current_span("GET orders/", attributes=attributes) as s:
        pass
    made["server, query, no event"] = s._readable_span()
    try:
        with tracer.start_as_current_span("fetch") as s:
            raise ConnectionError("Max retries exceeded with url: /p?token=abc123&page=2")
    except ConnectionError:
        pass
    made["exception event + status"] = s._readable_span()
    return made


def main() -> None:
    processor = ScrubbingSpanProcessor(REDACT_PATTERN, {})
    for name, span in ended_spans().items():
        events, status, attributes = span._events, span._status, span._attributes

        def once(span=span, events=events, status=status, attributes=attributes) -> None:
            span._events, span._status, span._attributes = events, status, attributes  # as ended
            processor.on_end(span)

        def baseline(span=span, events=events, status=status, attributes=attributes) -> None:
            span._events, span._status, span._attributes = events, status, attributes

        number = 20_000 if "exception" in name else 200_000
        cost = min(timeit.repeat(once, number=number, repeat=15)) / number
        base = min(timeit.repeat(baseline, number=number, repeat=15)) / number
        print(f"{name:28s} {(cost - base) * 1e9:8.0f} ns per span")


if __name__ == "__main__":
    main()
