"""The request path's lean context calls give what the API's give, side by side: extraction from a
WSGI environ under each propagator (known ones answered without being asked when the request
carries none of their headers, every other asked), and attach / detach / get_current."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("opentelemetry.instrumentation.wsgi")

from opentelemetry import baggage, context, propagate, trace  # noqa: E402
from opentelemetry.baggage.propagation import W3CBaggagePropagator  # noqa: E402
from opentelemetry.instrumentation.wsgi import wsgi_getter  # noqa: E402
from opentelemetry.propagators.composite import CompositePropagator  # noqa: E402
from opentelemetry.propagators.textmap import DefaultGetter  # noqa: E402
from opentelemetry.trace.propagation import _SPAN_KEY  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

from otel_launch._runtime.integrations import _lean_context  # noqa: E402

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ENVIRONS = {
    "no headers": {},
    "traceparent": {"HTTP_TRACEPARENT": TRACEPARENT},
    "unsampled traceparent": {"HTTP_TRACEPARENT": TRACEPARENT[:-2] + "00"},
    "traceparent and tracestate": {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": "vendor=1"},
    "tracestate alone": {"HTTP_TRACESTATE": "vendor=1"},
    "invalid traceparent": {"HTTP_TRACEPARENT": "garbage"},
    "empty traceparent": {"HTTP_TRACEPARENT": ""},
    "baggage": {"HTTP_BAGGAGE": "tenant=acme,region=eu"},
    "traceparent and baggage": {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_BAGGAGE": "tenant=acme"},
    "a None header": {"HTTP_TRACEPARENT": None, "HTTP_BAGGAGE": None},
    "b3": {"HTTP_B3": "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"},
}


class OwnTraceContext(TraceContextTextMapPropagator):
    """An app's own propagator: a subclass may extract anything, so it is asked."""


def _b3() -> object | None:
    try:
        from opentelemetry.propagators.b3 import B3SingleFormat
    except ImportError:
        return None
    return B3SingleFormat()


PROPAGATORS = {
    "tracecontext,baggage": lambda: CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
    "tracecontext": TraceContextTextMapPropagator,
    "composite of tracecontext": lambda: CompositePropagator([TraceContextTextMapPropagator()]),
    "baggage": W3CBaggagePropagator,
    "baggage,tracecontext": lambda: CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()]),
    "none": lambda: CompositePropagator([]),
    "own": OwnTraceContext,
    "tracecontext,own": lambda: CompositePropagator([TraceContextTextMapPropagator(), OwnTraceContext()]),
    "b3": _b3,
}
# Those answered without being asked for a request carrying none of their headers.
KNOWN = {"tracecontext,baggage", "tracecontext", "composite of tracecontext"}


@pytest.fixture
def global_textmap():
    kept = propagate.get_global_textmap()
    yield propagate.set_global_textmap
    propagate.set_global_textmap(kept)


@pytest.fixture
def current_baggage():
    """A context current with a span and baggage: what a propagator starting from the current
    context (the baggage one) would carry over."""
    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=False))
    token = context.attach(baggage.set_baggage("from", "current", trace.set_span_in_context(span)))
    yield
    context.detach(token)


def comparable(ctx: object) -> object:
    """A context's content, spans by their span context (a span compares by identity)."""
    if ctx is None:
        return None
    return {key: (value.get_span_context() if key == _SPAN_KEY else value) for key, value in ctx.items()}


@pytest.mark.parametrize("environ", list(ENVIRONS.values()), ids=list(ENVIRONS))
@pytest.mark.parametrize("name", list(PROPAGATORS))
def test_extraction_gives_what_the_propagator_gives(global_textmap, current_baggage, name, environ):
    propagator = PROPAGATORS[name]()
    if propagator is None:
        pytest.skip("B3 propagator not installed")
    global_textmap(propagator)
    ours = _lean_context.extract_wsgi(dict(environ), wsgi_getter)
    upstream = propagate.extract(dict(environ), getter=wsgi_getter)
    assert (type(ours), comparable(ours)) == (type(upstream), comparable(upstream))


class Asked(Exception):
    pass


@pytest.mark.parametrize("name", list(PROPAGATORS))
def test_a_known_propagator_is_not_asked_for_a_request_without_its_headers_and_any_other_is(global_textmap, name):
    propagator = PROPAGATORS[name]()
    if propagator is None:
        pytest.skip("B3 propagator not installed")

    def extract(*args, **kwargs):
        raise Asked

    propagator.extract = extract
    global_textmap(propagator)
    environ = {"REQUEST_METHOD": "GET", "HTTP_HOST": "shop.example", "HTTP_X_TENANT": "acme"}
    if name in KNOWN:
        assert _lean_context.extract_wsgi(environ, wsgi_getter) == context.Context()
        for key in ("HTTP_TRACEPARENT", "HTTP_TRACESTATE", "HTTP_BAGGAGE"):  # any of their headers: asked
            if key == "HTTP_BAGGAGE" and name != "tracecontext,baggage":
                continue
            with pytest.raises(Asked):
                _lean_context.extract_wsgi({**environ, key: "x"}, wsgi_getter)
    else:
        with pytest.raises(Asked):
            _lean_context.extract_wsgi(environ, wsgi_getter)


def test_another_getter_is_asked(global_textmap):
    propagator = PROPAGATORS["tracecontext,baggage"]()

    def extract(*args, **kwargs):
        raise Asked

    propagator.extract = extract
    global_textmap(propagator)
    with pytest.raises(Asked):
        _lean_context.extract_wsgi({}, DefaultGetter())


def test_attach_detach_and_get_current_are_the_runtime_contexts_own():
    # On every supported API release the direct path is the one taken (an API that moved its
    # runtime context's variable fails here, where the API's functions would serve instead).
    assert _lean_context._VAR is not None
    before = context.get_current()
    assert _lean_context.get_current() is before
    ctx = context.set_value("key", "value")
    token = _lean_context.attach(ctx)
    assert context.get_current() is ctx and _lean_context.get_current() is ctx
    inner = context.attach(context.set_value("key", "inner"))  # the API's, nested: both see one stack
    assert _lean_context.get_current()["key"] == "inner"
    context.detach(inner)
    _lean_context.detach(token)
    assert context.get_current() is before


def test_a_detach_that_fails_is_logged_as_the_api_logs_it(caplog):
    token = _lean_context.attach(context.set_value("key", "value"))
    _lean_context.detach(token)
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        _lean_context.detach(token)  # used already
    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == ["Failed to detach context"]
