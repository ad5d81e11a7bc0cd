"""The lean span path (``_runtime/sdk/lean_span.py``) gives every processor and exporter what the
SDK gives it: the same spans made through the SDK's ``Tracer.start_span`` and through the lean
one, compared field by field (live span on start and after end, ``ReadableSpan`` on end, OTLP
bytes, the SDK's warnings). Runs on the SDK release of each cell of the matrix (1.43 and 1.45)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_launch._runtime.sdk import lean_span

REQUEST = {  # what the Django request path collects at start: str and int values
    "http.method": "GET",
    "http.server_name": "127.0.0.1",
    "http.scheme": "http",
    "net.host.name": "127.0.0.1:8000",
    "net.host.port": 8000,
    "http.host": "127.0.0.1:8000",
    "http.target": "/customers/",
    "http.url": "http://127.0.0.1:8000/customers/",
    "net.peer.ip": "127.0.0.1",
    "net.peer.port": 51234,
    "http.user_agent": "wrk",
    "http.flavor": "1.1",
    "ratio": 0.5,
    "flag": True,
}
SQL = {"db.system": "sqlite", "db.statement": "SELECT id FROM orders WHERE customer = %s", "db.name": "shop"}
REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("congo", "t61rcWkgMzE")]),
)


class Ids(IdGenerator):
    """The same ids, in the same order, for both paths."""

    def __init__(self, random: bool = True) -> None:
        self._spans, self._traces, self._random = itertools.count(0x1000), itertools.count(0x5000), random

    def generate_span_id(self) -> int:
        return next(self._spans)

    def generate_trace_id(self) -> int:
        return next(self._traces)

    def is_trace_id_random(self) -> bool:  # not in SDK 1.43's IdGenerator: asked when present
        return self._random


class SampleFirst(Sampler):
    """As the Django request path's: a recording decision that carries the request's attributes."""

    def __init__(self, attributes: dict, decision: Decision = Decision.RECORD_AND_SAMPLE) -> None:
        self._attributes, self._decision = attributes, decision

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        parent = trace.get_current_span(parent_context).get_span_context()
        state = parent.trace_state if parent.is_valid else None
        return SamplingResult(self._decision, dict(self._attributes), state)

    def get_description(self) -> str:
        return "SampleFirst"


class Recorder(SpanProcessor):
    """What a processor sees: the live span on start (its state then), on ending, and on end."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.classes: list[type] = []  # of the live spans: not compared, the lean one's is a subclass

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.classes.append(type(span))
        self.seen.append(("start", live_state(span)))
        self.seen.append(("start parent", context_state(parent_context)))

    def _on_ending(self, span: Any) -> None:
        self.seen.append(("ending", live_state(span)))

    def on_end(self, span: Any) -> None:
        self.seen.append(("end", readable_state(span)))
        self.seen.append(("end bytes", encode_spans([span]).SerializeToString()))
        try:
            self.seen.append(("end json", span.to_json()))
        except TypeError as exc:  # SDK 1.45's to_json() cannot write a bytes value
            self.seen.append(("end json", str(exc)))


def context_state(context: Any) -> Any:
    """A Context's values, a span by its type and SpanContext (the same span object is never
    there twice: each path makes its own)."""
    if context is None:
        return None
    return {k: (type(v), v.get_span_context()) if isinstance(v, trace.Span) else v for k, v in context.items()}


def attributes_state(attributes: Any) -> Any:
    if attributes is None or isinstance(attributes, dict):
        return attributes
    fields = {k: v for k, v in vars(attributes).items() if k not in ("_dict", "_lock")}
    return (type(attributes), list(attributes._dict.items()), fields, type(attributes._lock))


def list_state(bounded: Any) -> Any:
    if isinstance(bounded, (tuple, list)):
        return (type(bounded), [event_state(item) for item in bounded])
    fields = (list(vars(bounded)), type(bounded._lock), bounded._dq.maxlen, bounded.dropped)
    return (type(bounded), fields, [event_state(item) for item in bounded._dq])


def event_state(item: Any) -> Any:
    if isinstance(item, Link):
        return ("link", item.context, attributes_state(item.attributes))
    return ("event", type(item), item.name, item.timestamp, attributes_state(item._attributes))


def value_state(key: str, value: Any) -> Any:
    if key == "_attributes":
        return attributes_state(value)
    if key in ("_events", "_links"):
        return list_state(value)
    if key == "_lock":
        return type(value)
    if key == "_context" or key == "_parent":
        return value if value is None else (type(value), tuple(value), type(value.trace_flags))
    if key == "_status":
        return (value.status_code, value.description)
    if key == "_record_end_metrics":
        return getattr(value, "__qualname__", value)
    if key == "_sampler":  # each run has a provider of its own: its parts compared by what they are
        return type(value), value.get_description()
    if key == "_span_processor":
        return type(value), [type(processor) for processor in value._span_processors]
    if key == "_limits":
        return repr(value)
    return value


def live_state(span: Any) -> Any:
    """The span's instance dictionary: keys in order, each value compared by what it holds."""
    return (type(span).__name__, repr(span), [(k, value_state(k, v)) for k, v in vars(span).items()])


def readable_state(span: Any) -> Any:
    public = (
        span.name,
        span.context,
        span.parent,
        span.kind,
        dict(span.attributes),
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
        [(e.name, e.timestamp, dict(e.attributes)) for e in span.events],
        [(link.context, dict(link.attributes)) for link in span.links],
        (span.status.status_code, span.status.description),
        span.resource.attributes,
        span.instrumentation_scope,
        span._instrumentation_info,  # the property warns: deprecated
        span.start_time,
        span.end_time,
    )
    return type(span), public, [(k, value_state(k, v)) for k, v in vars(span).items()]


def run(scenario: Callable[[Any], None], lean: bool, **provider_args: Any) -> tuple[list, list]:
    """(what the recorder saw, the SDK's log records) of ``scenario(tracer)``; each span the lean
    path started (all but those with links) of its class."""
    CLOCK.reset()
    recorder = Recorder()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "side-by-side"}), shutdown_on_exit=False, **provider_args
    )
    provider.add_span_processor(recorder)
    tracer = provider.get_tracer("otel_launch.tests", "1.0", "https://opentelemetry.io/schemas/1.21.0")
    if lean:
        assert lean_span.lean(tracer) is tracer
        assert tracer.start_span.__func__ is lean_span.start_span
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("opentelemetry.sdk.trace", "opentelemetry.attributes")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        scenario(tracer)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    lean_classes = [cls for cls in recorder.classes if cls is lean_span._Span]
    assert len(lean_classes) >= (len(recorder.classes) - 1 if lean else 0)
    assert lean or not lean_classes
    return recorder.seen, handler.messages


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.name, record.getMessage()))


class Clock:
    """The SDK's clock (spans and events) and the lean module's: the same ticks for both paths."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._ticks = itertools.count(1_700_000_000_000_000_000, 1000)

    def __call__(self) -> int:
        return next(self._ticks)


CLOCK = Clock()


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_trace, "time_ns", CLOCK)
    monkeypatch.setattr(lean_span, "_time_ns", CLOCK)


def request_and_queries(tracer: Any) -> None:
    """A server span (remote parent, request attributes from the sampler) and its SQL spans."""
    parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    server = tracer.start_span("GET", context=parent, kind=SpanKind.SERVER, start_time=1_600_000_000_000_000_000)
    token = context_api.attach(trace.set_span_in_context(server, parent))
    try:
        server.set_attribute("http.route", "/customers/")
        server.update_name("GET /customers/")
        for _ in range(3):
            sql = tracer.start_span("SELECT", kind=SpanKind.CLIENT)
            if sql.is_recording():
                sql.set_attributes(dict(SQL))
            sql.end()
        server.set_attribute("http.status_code", 200)
        server.set_status(Status(StatusCode.UNSET))
    finally:
        context_api.detach(token)
    server.end()


def events_links_status(tracer: Any) -> None:
    """Events, an exception, links, statuses, start_as_current_span, a root span."""
    with tracer.start_as_current_span("task", kind=SpanKind.CONSUMER, attributes={"celery.action": "run"}) as task:
        task.add_event("retry", {"attempt": 2})
        task.add_link(REMOTE, {"why": "batch"})
        task.record_exception(ValueError("boom"), {"extra": "x"})
        task.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("inner", links=[Link(REMOTE, {"k": "v"})]) as inner:
            inner.set_status(StatusCode.OK)
        with pytest.raises(KeyError), tracer.start_as_current_span("raises", kind=SpanKind.PRODUCER):
            raise KeyError("gone")
    root = tracer.start_span("root", context=context_api.Context())
    root.set_attributes({})
    root.end(end_time=1_800_000_000_000_000_000)


def odd_attributes(tracer: Any) -> None:
    """Values the SDK cleans, converts or drops, keys it refuses, limits reached, an ended span."""
    span = tracer.start_span("odd", attributes={"start": "value", "seq": [1, 2]})
    span.set_attributes({"list": [1, 2, 3], "tuple": ("a", "b"), "none": None, "bytes": b"xy", "long": "z" * 40})
    span.set_attributes({"ok": "short", "n": 1})
    span.set_attribute("ok", "moved to the end")
    span.set_attributes({"n": 2, "start": "moved too"})
    span.set_attribute("", "empty key")
    span.set_attribute("object", object())
    span.set_attribute("long2", "w" * 40)
    span.set_attribute("x", 1.5)
    span.set_attributes({"fill1": 1, "fill2": 2, "fill3": 3, "fill4": 4, "fill5": 5, "fill6": 6})
    span.set_attribute("fill7", 7)
    span.end()
    span.set_attribute("late", 1)
    span.set_attributes({"later": 2})
    span.end()
    plain = tracer.start_span("plain", attributes={"a": "b"})
    plain.set_attributes(_DictSubclass({"k": "v"}))
    plain.set_attributes(_OwnItems({"k": "v", "m": "w"}))
    plain.end()


class _DictSubclass(dict):
    pass


class _OwnItems(dict):
    def items(self) -> Any:
        return [("own", "items")]


SCENARIOS = [request_and_queries, events_links_status, odd_attributes]
SAMPLERS = {
    "default": {},
    "sample-first": {"sampler": ParentBased(SampleFirst(REQUEST), remote_parent_sampled=SampleFirst(REQUEST))},
    "record-only": {"sampler": SampleFirst(REQUEST, Decision.RECORD_ONLY)},
    "always-off": {"sampler": ALWAYS_OFF},
    "ratio": {"sampler": ParentBased(TraceIdRatioBased(0.5))},
    "not random ids": {"id_generator": Ids(random=False), "sampler": ALWAYS_ON},
    "limits": {"span_limits": SpanLimits(max_span_attributes=8, max_span_attribute_length=12, max_events=2)},
    "sample-first, limits": {
        "sampler": SampleFirst(REQUEST),
        "span_limits": SpanLimits(max_span_attributes=10, max_span_attribute_length=12),
    },
    "concurrent processors": {},  # a ConcurrentMultiSpanProcessor of each run's own, made below
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("setup", list(SAMPLERS))
def test_the_lean_path_gives_processors_and_exporters_what_the_sdk_gives(scenario: Callable, setup: str) -> None:
    def provider_args() -> dict:
        args = {"id_generator": Ids(), **SAMPLERS[setup]}
        if "id_generator" in SAMPLERS[setup]:
            args["id_generator"] = Ids(random=False)
        if setup == "concurrent processors":
            args["active_span_processor"] = ConcurrentMultiSpanProcessor(1)
        return args

    sdk_seen, sdk_logged = run(scenario, lean=False, **provider_args())
    lean_seen, lean_logged = run(scenario, lean=True, **provider_args())
    assert sdk_seen or setup == "always-off", "the scenario recorded nothing"
    assert [kind for kind, _ in lean_seen] == [kind for kind, _ in sdk_seen]
    for (kind, sdk), (_, lean) in zip(sdk_seen, lean_seen, strict=True):
        assert lean == sdk, kind
    assert lean_logged == sdk_logged


def test_an_unsampled_span_is_the_sdks_non_recording_span() -> None:
    def unsampled(tracer: Any) -> None:
        spans.append(tracer.start_span("dropped", context=trace.set_span_in_context(NonRecordingSpan(REMOTE))))
        spans.append(tracer.start_span("root dropped"))

    results = []
    for lean in (False, True):
        spans: list = []
        run(unsampled, lean, sampler=ALWAYS_OFF, id_generator=Ids())
        results.append([(type(span), span.get_span_context(), span.is_recording()) for span in spans])
    assert results[0] == results[1]
    assert results[0][0][0] is NonRecordingSpan


def test_the_tracers_otel_launch_hands_out_start_lean_spans() -> None:
    from otel_launch._runtime.sdk.parts import provider_whose_tracers_follow_the_app

    provider = provider_whose_tracers_follow_the_app(TracerProvider)(shutdown_on_exit=False)
    tracer = provider.get_sdk_tracer("otel_launch.tests", "1.0", None, None)
    assert type(tracer) is sdk_trace.Tracer  # the SDK's (request.py wraps its sampler)
    assert tracer.start_span.__func__ is lean_span.start_span
    span = tracer.start_span("x")
    assert isinstance(span, sdk_trace.Span) and type(span).__name__ == "_Span"
    following = provider.get_tracer("otel_launch.tests.following")
    assert following._tracer.start_span.__func__ is lean_span.start_span


def test_an_sdk_release_not_proven_keeps_the_sdks_start_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lean_span, "PROVEN", ())
    monkeypatch.setattr(lean_span, "_usable", [])
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("otel_launch.tests.unproven")
    assert "start_span" not in vars(lean_span.lean(tracer))
    assert type(tracer.start_span("x")) is sdk_trace._Span


def test_the_sdks_own_span_metrics_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED: the tracer's started/live span counts, both ways."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    points = []
    for lean in (False, True):
        reader = InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)

        def started_and_open(tracer: Any) -> None:
            request_and_queries(tracer)
            tracer.start_span("left open")
            unsampled = SpanContext(REMOTE.trace_id, REMOTE.span_id, is_remote=True, trace_flags=TraceFlags(0))
            tracer.start_span("dropped", context=trace.set_span_in_context(NonRecordingSpan(unsampled)))

        run(started_and_open, lean, meter_provider=meters, sampler=ParentBased(ALWAYS_ON), id_generator=Ids())
        collected = reader.get_metrics_data()
        points.append(
            sorted(
                (metric.name, sorted(point.attributes.items()), point.value)
                for resource in collected.resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
                for point in metric.data.data_points
            )
        )
    assert points[0], "the SDK recorded no span metric"
    assert points[1] == points[0]


def test_a_disabled_tracer_starts_what_the_sdks_starts() -> None:
    from opentelemetry.sdk.trace import _disable_tracer_configurator

    results = []
    for lean in (False, True):
        provider = TracerProvider(shutdown_on_exit=False, id_generator=Ids())
        provider._set_tracer_configurator(tracer_configurator=_disable_tracer_configurator)
        tracer = provider.get_tracer("otel_launch.tests.disabled")
        if lean:
            lean_span.lean(tracer)
        span = tracer.start_span("x", context=trace.set_span_in_context(NonRecordingSpan(REMOTE)))
        results.append((type(span), span.get_span_context(), span.is_recording()))
    assert results[1] == results[0]
    assert results[0][2] is False


def test_a_tracer_start_span_patched_later_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool that wraps the SDK's Tracer.start_span after otel-launch handed its tracers out."""
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("otel_launch.tests.patched")
    lean_span.lean(tracer)
    assert type(tracer.start_span("before the patch")) is lean_span._Span
    calls = []
    original = sdk_trace.Tracer.start_span

    def wrapped(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(sdk_trace.Tracer, "start_span", wrapped)
    span = tracer.start_span("patched", kind=SpanKind.CLIENT)
    assert calls == ["patched"]
    assert type(span) is sdk_trace._Span and span.kind is SpanKind.CLIENT
