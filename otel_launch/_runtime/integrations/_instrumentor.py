"""Run a contrib instrumentor once, leaving alone any the app already ran itself."""

from __future__ import annotations

from typing import Any

_ours: set[type] = set()  # instrumentor classes we instrumented (the app did not)


def instrument_once(instrumentor: Any, **kwargs: Any) -> bool:
    """Instrument unless already done (by the app or by us). True when this call did it."""
    # BaseInstrumentor is a per-class singleton that remembers whether it is active;
    # calling instrument() again would only log a warning into the app's logs.
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    _let_the_app_instrument_again()
    instrumentor.instrument(**kwargs)
    _ours.add(type(instrumentor))
    return True


def _let_the_app_instrument_again() -> None:
    """An app that instruments a library itself after we did (in a pool child, say, with its own
    providers) got "Attempting to instrument while already instrumented". Ours stays (re-doing it
    would stack the contrib's wrappers under ours), quietly; its spans follow the app's provider
    once the app set one (``sdk``)."""
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

    if getattr(BaseInstrumentor.instrument, "_otel_launch", False):
        return
    instrument = BaseInstrumentor.instrument

    def instrument_replacing_ours(self: Any, **kwargs: Any) -> Any:
        if self.is_instrumented_by_opentelemetry and type(self) in _ours:
            return None
        return instrument(self, **kwargs)

    instrument_replacing_ours._otel_launch = True  # type: ignore[attr-defined]
    BaseInstrumentor.instrument = instrument_replacing_ours


def inside_a_span() -> bool:
    """Whether a span is current: calls outside one (broker bookkeeping, a cache read at import)
    are not traced, as each would be a one-span trace of its own."""
    from opentelemetry import trace

    return trace.get_current_span().get_span_context().is_valid
