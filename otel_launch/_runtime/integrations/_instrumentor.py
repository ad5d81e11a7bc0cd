"""Run a contrib instrumentor once, leaving alone any the app already ran itself."""

from __future__ import annotations

from typing import Any


def instrument_once(instrumentor: Any, **kwargs: Any) -> bool:
    """Instrument unless already done (by the app or by us). True when this call did it."""
    # BaseInstrumentor is a per-class singleton that remembers whether it is active;
    # calling instrument() again would only log a warning into the app's logs.
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    instrumentor.instrument(**kwargs)
    return True


def inside_a_span() -> bool:
    """Whether a span is current: calls outside one (broker bookkeeping, a cache read at import)
    are not traced, as each would be a one-span trace of its own."""
    from opentelemetry import trace

    return trace.get_current_span().get_span_context().is_valid
