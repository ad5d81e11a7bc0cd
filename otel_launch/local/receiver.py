"""A real OTLP receiver: gRPC and HTTP/protobuf, on the generated ``opentelemetry-proto`` stubs.

Tests use it as their collector: with ``keep=True`` (the default) it records every span,
metric point and log record it receives, decoded into plain dataclasses, exactly as sent
(``receiver.wait_for(...)``). ``otel-launch tail`` and ``ui`` run :meth:`OTLPReceiver.viewer`:
nothing is kept, each export is decoded within :data:`VIEWER_LIMITS` (long values cut and
marked), checked (:func:`check_spans`) and handed to a callback in batches of at most
:data:`BATCH` items, then forgotten. Both run the same decoder; only the limits differ.
Benchmarks pass ``keep=False`` alone: exports are counted, never decoded. It listens on
127.0.0.1 unless told otherwise.

The callback may return a :class:`Rejected`: the export is then answered with OTLP's
``partial_success`` (rejected count and message), over HTTP and gRPC alike. A callback that
raises makes the export fail (HTTP 500, gRPC INTERNAL) with one line on stderr, never a
traceback, and the receiver keeps serving.

OTLP/HTTP takes ``application/x-protobuf`` only, plain, gzip or deflate (415 otherwise, as the
OpenTelemetry Collector answers), on a bounded server (``receiver_http.py``); ``allowed_host``
refuses requests whose ``Host`` it does not accept (403). gRPC reads ``grpc_workers`` calls at
a time, takes at most ``max_connections`` calls at once (RESOURCE_EXHAUSTED
beyond), and closes a connection after ``GRPC_CONNECTION_AGE`` seconds (clients reconnect; a
call still open is cut ``GRPC_AGE_GRACE`` seconds later), so that a call that never sends its
request holds a reader for 40 s at most. Both transports
hand the request's bytes over undecoded; one export is decompressed, parsed and decoded at a
time, so that memory holds one decoded export, not many. Every listening socket is
restartable at once and never shared (``listen.py``).

Options used by ``otel-launch doctor``'s tests: ``answer_status`` makes every export fail as a
collector refusing it would (HTTP status, and the matching gRPC code), ``partial_success``
answers with an OTLP partial success, and ``max_request_bytes`` refuses larger requests (413,
read-and-drop so that the client sees the answer; gRPC RESOURCE_EXHAUSTED). A request that
does not decode is refused (HTTP 400 with a ``google.rpc.Status`` body, gRPC INTERNAL) without
disturbing the server.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from otel_launch.local.listen import is_loopback_host, listening_socket, port_free, shown_host
from otel_launch.local.receiver_http import BoundedHTTPServer, Request, Response

STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}
KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
MiB = 1024 * 1024
REQUEST_BYTES = 20 * MiB  # the viewers' request size limit: the OpenTelemetry Collector's default
BATCH = 5000  # items decoded and handed to a viewer at once
GRPC_CONNECTION_AGE = 30.0  # seconds; then the connection is closed once its calls end,
GRPC_AGE_GRACE = 10.0  # or after this many seconds more: a call that never sends is cut then


# -- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What a viewer keeps of one span, event, log record or resource (the SDK's defaults for the
    counts); a cut string ends with :func:`truncation_mark`, dropped attributes and events are counted."""

    value_chars: int = 16 * 1024  # one string attribute value, log body, span or event name
    attributes: int = 128  # per span, event, resource, log record, metric point
    events: int = 128  # per span
    array_items: int = 128  # per array or key-value list value
    depth: int = 8  # nesting of arrays and key-value lists
    name_chars: int = 256  # attribute keys, scope and metric names, severity text
    # A resource is repeated on every span, log record and point it covers: its attributes are kept
    # in order while they fit (service.name always), about this many bytes (value_size).
    resource_bytes: int = 16 * 1024


VIEWER_LIMITS = Limits()
EVERYTHING = Limits(*(sys.maxsize,) * 7)  # the tests' receiver: exactly as sent
RESOURCE_DROPPED = "otel_launch.resource.dropped_attributes"  # how many a resource over its bytes lost


def truncation_mark(total: int) -> str:
    return f"... [truncated: {total} characters]"


class _Cut:
    """Counts the attributes one decode dropped."""

    __slots__ = ("attributes",)

    def __init__(self) -> None:
        self.attributes = 0


_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def any_value(value: Any, limits: Limits = EVERYTHING, depth: int = 0) -> Any:
    """An OTLP AnyValue as a Python value, within ``limits``. A double that is not finite reads as
    the string ``NaN``, ``Infinity`` or ``-Infinity``: JSON, which the viewers write, has no such numbers."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        items = value.array_value.values
        if depth >= limits.depth:
            return f"[array of {len(items)} values, nested too deep]"
        kept = [any_value(item, limits, depth + 1) for item in items[: limits.array_items]]
        if len(items) > limits.array_items:
            kept.append(f"... [truncated: {len(items)} values]")
        return kept
    if kind == "kvlist_value":
        if depth >= limits.depth:
            return f"{{list of {len(value.kvlist_value.values)} values, nested too deep}}"
        return attributes(value.kvlist_value.values, limits, _Cut(), depth + 1)
    plain = getattr(value, kind)
    if kind in ("string_value", "bytes_value"):
        return _cut_text(plain, limits.value_chars)
    if kind == "double_value" and not math.isfinite(plain):
        return _NON_FINITE.get(plain, "NaN")
    return plain


def _cut_text(text: Any, cap: int) -> Any:
    if len(text) <= cap:
        return text
    if isinstance(text, bytes):
        return text[:cap] + truncation_mark(len(text)).encode()
    return text[:cap] + truncation_mark(len(text))


def attributes(key_values: Any, limits: Limits = EVERYTHING, cut: _Cut | None = None, depth: int = 0) -> dict:
    """OTLP key-values as a dict, within ``limits``; the ones dropped are added to ``cut``."""
    kept = {}
    for item in key_values[: limits.attributes]:
        kept[_cut_text(item.key, limits.name_chars)] = any_value(item.value, limits, depth)
    if cut is not None:
        cut.attributes += max(0, len(key_values) - limits.attributes)
    return kept


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    events: list[dict[str, Any]] = field(default_factory=list)
    transport: str = ""
    # Attributes and events the sender's SDK or the viewer's limits dropped.
    dropped_attributes: int = 0
    dropped_events: int = 0

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "?"))

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class ReceivedPoint:
    """One metric data point as exported: sums and gauges carry ``value``; histograms carry
    ``count``, ``sum``, ``bucket_counts`` over ``bounds`` (explicit upper bounds, one bucket more
    than bounds: the last is unbounded), ``min`` and ``max``. ``kind`` is ``sum``, ``gauge``,
    ``histogram``, ``exponential_histogram`` or ``summary``; ``temporality`` is OTLP's number
    (1 delta, 2 cumulative, 0 for gauges)."""

    metric: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    value: float | None  # sums and gauges; histogram points carry count instead
    count: int | None
    transport: str = ""
    kind: str = ""
    unit: str = ""
    description: str = ""
    temporality: int = 0
    monotonic: bool = False
    start_ns: int = 0
    time_ns: int = 0
    sum: float | None = None
    bucket_counts: list[int] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    scope: str = ""
    flags: int = 0

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "?"))


@dataclass
class ReceivedLog:
    """One log record: ``severity`` is its text, ``severity_number`` OTLP's (0 unset, 1-24)."""

    body: Any
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    transport: str = ""
    severity_number: int = 0
    time_ns: int = 0
    observed_ns: int = 0
    flags: int = 0
    scope: str = ""
    dropped_attributes: int = 0

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "?"))


def _entries(request: Any, resources: str, scopes: str, items: str, limits: Limits) -> Iterator[tuple[dict, Any, Any]]:
    """(resource attributes, scope, item) for every item of an OTLP export request; one dict per
    resource, shared by its items."""
    for resource_entry in getattr(request, resources):
        resource = _within(attributes(resource_entry.resource.attributes, limits), limits.resource_bytes)
        for scope_entry in getattr(resource_entry, scopes):
            for item in getattr(scope_entry, items):
                yield resource, scope_entry.scope, item


def _within(resource: dict, budget: int) -> dict:
    """The resource, or its first attributes that fit in ``budget`` bytes (service.name first), the
    number dropped under :data:`RESOURCE_DROPPED`."""
    if budget == sys.maxsize or value_size(resource) <= budget:
        return resource
    kept, used = {}, 0
    for key in sorted(resource, key=lambda key: key != "service.name"):  # stable: the others in order
        cost = 100 + len(key) + value_size(resource[key])
        if used + cost <= budget or key == "service.name":
            kept[key], used = resource[key], used + cost
    kept[RESOURCE_DROPPED] = len(resource) - len(kept)
    return kept


def _spans(request: Any, transport: str, limits: Limits) -> Iterator[ReceivedSpan]:
    for resource, scope, span in _entries(request, "resource_spans", "scope_spans", "spans", limits):
        cut = _Cut()
        events = [
            {**attributes(event.attributes, limits, cut), "name": _cut_text(event.name, limits.value_chars)}
            for event in span.events[: limits.events]
        ]
        yield ReceivedSpan(
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            name=_cut_text(span.name, limits.value_chars),
            kind=span.kind,
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            status=STATUS_NAMES.get(span.status.code, str(span.status.code)),
            status_message=_cut_text(span.status.message, limits.value_chars),
            attributes=attributes(span.attributes, limits, cut),
            resource=resource,
            scope=_cut_text(scope.name, limits.name_chars),
            events=events,
            transport=transport,
            dropped_attributes=cut.attributes + span.dropped_attributes_count,
            dropped_events=max(0, len(span.events) - limits.events) + span.dropped_events_count,
        )


_METRIC_KINDS = {"sum", "gauge", "histogram", "exponential_histogram", "summary"}


def _points(request: Any, transport: str, limits: Limits) -> Iterator[ReceivedPoint]:
    for resource, scope, metric in _entries(request, "resource_metrics", "scope_metrics", "metrics", limits):
        kind = metric.WhichOneof("data")
        if kind not in _METRIC_KINDS:
            continue
        data = getattr(metric, kind)
        name = _cut_text(metric.name, limits.name_chars)
        unit = _cut_text(metric.unit, limits.name_chars)
        description = _cut_text(metric.description, limits.value_chars)
        temporality = getattr(data, "aggregation_temporality", 0)
        monotonic = bool(getattr(data, "is_monotonic", False))
        scope_name = _cut_text(scope.name, limits.name_chars)
        for point in data.data_points:
            # Sums and gauges carry a number; histograms carry a count.
            number = point.WhichOneof("value") if kind in ("sum", "gauge") else None
            value = getattr(point, number) if number else None
            histogram = kind == "histogram"
            yield ReceivedPoint(
                metric=name,
                resource=resource,
                attributes=attributes(point.attributes, limits),
                value=value,
                count=getattr(point, "count", None),
                transport=transport,
                kind=kind,
                unit=unit,
                description=description,
                temporality=temporality,
                monotonic=monotonic,
                start_ns=getattr(point, "start_time_unix_nano", 0),
                time_ns=point.time_unix_nano,
                sum=point.sum if hasattr(point, "sum") else None,
                bucket_counts=list(point.bucket_counts) if histogram else [],
                bounds=list(point.explicit_bounds) if histogram else [],
                min=point.min if histogram and point.HasField("min") else None,
                max=point.max if histogram and point.HasField("max") else None,
                scope=scope_name,
                flags=point.flags,
            )


def _logs(request: Any, transport: str, limits: Limits) -> Iterator[ReceivedLog]:
    for resource, scope, record in _entries(request, "resource_logs", "scope_logs", "log_records", limits):
        cut = _Cut()
        yield ReceivedLog(
            body=any_value(record.body, limits),
            severity=_cut_text(record.severity_text, limits.name_chars),
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes=attributes(record.attributes, limits, cut),
            resource=resource,
            transport=transport,
            severity_number=record.severity_number,
            time_ns=record.time_unix_nano,
            observed_ns=record.observed_time_unix_nano,
            flags=record.flags,
            scope=_cut_text(scope.name, limits.name_chars),
            dropped_attributes=cut.attributes + record.dropped_attributes_count,
        )


def decoded(signal: str, request: Any, transport: str, limits: Limits = EVERYTHING) -> Iterator[list]:
    """The items of one export request, decoded lazily in batches of at most :data:`BATCH`, so that
    a request of many small items never holds them all decoded at once."""
    items = _SIGNAL_SERVICES[signal][2](request, transport, limits)
    while batch := list(itertools.islice(items, BATCH)):
        yield batch


def decode_spans(request: Any, transport: str, limits: Limits = EVERYTHING) -> list[ReceivedSpan]:
    return list(_spans(request, transport, limits))


def count_items(request: Any, signal: str) -> int:
    """How many spans, metric points or log records one export request holds, without decoding them."""
    if signal == "traces":
        return sum(len(scope.spans) for entry in request.resource_spans for scope in entry.scope_spans)
    if signal == "logs":
        return sum(len(scope.log_records) for entry in request.resource_logs for scope in entry.scope_logs)
    total = 0
    for entry in request.resource_metrics:
        for scope in entry.scope_metrics:
            for metric in scope.metrics:
                data = metric.WhichOneof("data")
                total += len(getattr(metric, data).data_points) if data else 0
    return total


def value_size(value: Any) -> int:
    """About the bytes a decoded value holds in memory (its text plus Python's per-object cost)."""
    if isinstance(value, (str, bytes)):
        return 50 + len(value)
    if isinstance(value, dict):
        return 100 + sum(100 + len(key) + value_size(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return 60 + sum(10 + value_size(item) for item in value)
    return 32


def span_size(span: ReceivedSpan) -> int:
    """About the bytes a decoded span holds in memory, its resource aside (shared by the spans of
    one export's resource: :func:`value_size` of it is charged once per trace that holds it)."""
    text = len(span.name) + len(span.status_message) + len(span.scope)
    return 700 + text + value_size(span.attributes) + sum(value_size(event) for event in span.events)


# -- checking spans ---------------------------------------------------------------------------

INT64_MAX = 2**63 - 1
FUTURE_NS = 24 * 3600 * 10**9  # a span may start at most a day after the receiver's clock


@dataclass
class Rejected:
    """Spans (or points, records) an export had that were not kept, and why: OTLP's partial success."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    noun: str = "span"  # what was refused: "span", "metric point", "log record"

    def add(self, reason: str, count: int = 1) -> None:
        self.count += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    def merge(self, other: Rejected | None) -> Rejected:
        for reason, count in (other.reasons if other else {}).items():
            self.add(reason, count)
        return self

    @property
    def message(self) -> str:
        shown = "; ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"{self.count} {self.noun}{'s' if self.count != 1 else ''} refused: {shown}"[:400]


def _is_id(hex_id: str, size: int) -> bool:
    return len(hex_id) == 2 * size and hex_id.strip("0") != ""


def check_spans(spans: list[ReceivedSpan], now_ns: int | None = None) -> tuple[list[ReceivedSpan], Rejected]:
    """The spans a viewer can keep, and the rest counted by reason: ids of the wrong size or zero
    (the spec makes them invalid; a zero parent id is read as none), times that cannot be (unset,
    end before start, beyond 2262, more than a day ahead), a span that is its own parent, a span
    id twice in one export."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    kept, rejected, seen = [], Rejected(), set()
    for span in spans:
        if len(span.parent_span_id) == 16 and not span.parent_span_id.strip("0"):
            span.parent_span_id = ""  # an all-zero parent id means no parent, as the Collector reads it
        reason = _refusal(span.trace_id, span.span_id, span.parent_span_id, span.start_ns, span.end_ns, now_ns)
        if reason is None and (span.trace_id, span.span_id) in seen:
            reason = "sent twice in one export"
        if reason is None:
            seen.add((span.trace_id, span.span_id))
            kept.append(span)
        else:
            rejected.add(reason)
    return kept, rejected


def _refusal(trace_id: str, span_id: str, parent_id: str, start_ns: int, end_ns: int, now_ns: int) -> str | None:
    """Why :func:`check_spans` refuses a span on its own, or None."""
    if not _is_id(trace_id, 16) or not _is_id(span_id, 8):
        return "with an invalid trace or span id"
    if parent_id and not _is_id(parent_id, 8):
        return "with an invalid parent span id"
    if parent_id == span_id:
        return "their own parent"
    if not (0 < start_ns <= end_ns <= INT64_MAX) or start_ns > now_ns + FUTURE_NS:
        return "with impossible times (unset, end before start, or far in the future)"
    return None


def closes_cycle(span_id: str, parent_id: str, parent_of: dict[str, str]) -> bool:
    """Whether making ``parent_id`` the parent of ``span_id`` closes a loop of parents."""
    seen = {span_id}
    current = parent_id
    while current:
        if current in seen:
            return True
        seen.add(current)
        current = parent_of.get(current, "")
    return False


class Export:
    """One export request as a callback gets it: iterating it decodes its items lazily, in batches
    of at most :data:`BATCH`; with ``check``, the spans :func:`check_spans` refuses are left out and
    counted in ``rejected``. :meth:`trace_ids_from_last` reads trace ids without decoding."""

    def __init__(self, signal: str, request: Any, transport: str, limits: Limits, check: bool = False) -> None:
        self.signal, self.request, self.transport, self.limits = signal, request, transport, limits
        self.check = check and signal == "traces"
        self.rejected = Rejected()

    def __iter__(self) -> Iterator[list]:
        for batch in decoded(self.signal, self.request, self.transport, self.limits):
            if self.check:
                batch, refused = check_spans(batch)
                self.rejected.merge(refused)
            if batch:
                yield batch

    def trace_ids_from_last(self) -> Iterator[str]:
        """The trace id of every span (that :func:`check_spans` would keep, with ``check``), the last
        span first, in hex: a store keeps the newest traces."""
        now_ns = time.time_ns()
        for entry in reversed(self.request.resource_spans):
            for scope in reversed(entry.scope_spans):
                for span in reversed(scope.spans):
                    trace_id = span.trace_id.hex()
                    if self.check:
                        parent = span.parent_span_id.hex()
                        parent = "" if len(parent) == 16 and not parent.strip("0") else parent
                        start, end = span.start_time_unix_nano, span.end_time_unix_nano
                        if _refusal(trace_id, span.span_id.hex(), parent, start, end, now_ns):
                            continue
                    yield trace_id


# -- the receiver ---------------------------------------------------------------------------

# signal -> (request message, response message, item decoder, partial success field, gRPC service)
_SIGNAL_SERVICES: dict[str, tuple[Any, Any, Callable[..., Iterator], str, str]] = {
    "traces": (
        trace_pb.ExportTraceServiceRequest,
        trace_pb.ExportTraceServiceResponse,
        _spans,
        "rejected_spans",
        trace_pb.DESCRIPTOR.services_by_name["TraceService"].full_name,
    ),
    "metrics": (
        metrics_pb.ExportMetricsServiceRequest,
        metrics_pb.ExportMetricsServiceResponse,
        _points,
        "rejected_data_points",
        metrics_pb.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    ),
    "logs": (
        logs_pb.ExportLogsServiceRequest,
        logs_pb.ExportLogsServiceResponse,
        _logs,
        "rejected_log_records",
        logs_pb.DESCRIPTOR.services_by_name["LogsService"].full_name,
    ),
}

_NOUNS = {"traces": "span", "metrics": "metric point", "logs": "log record"}
# HTTP status -> the gRPC code a collector answers with for the same refusal.
_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
# HTTP status -> google.rpc.Code in the refusal's Status body.
_RPC_CODES = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    405: 12,
    408: 4,
    411: 3,
    413: 8,
    415: 3,
    431: 8,
    500: 13,
    501: 12,
    503: 14,
}
_ENCODINGS = {"": None, "identity": None, "gzip": 31, "deflate": 15}  # zlib wbits; deflate is zlib-wrapped


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding; refuses one that inflates beyond ``limit`` bytes, is
    cut short, or has bytes after its end (gzip members one after another are one body)."""
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        return body
    parts, total = [], 0
    while True:
        inflater = zlib.decompressobj(wbits=wbits)
        part = inflater.decompress(body, limit - total + 1)
        total += len(part)
        if total > limit:
            raise ValueError(f"inflates beyond {limit} bytes")
        if not inflater.eof:
            raise ValueError(f"the {encoding} body is cut short")
        parts.append(part)
        body = inflater.unused_data
        if not body:
            return b"".join(parts)
        if encoding != "gzip":
            raise ValueError(f"bytes after the end of the {encoding} body")


class OTLPReceiver:
    """Receives OTLP over gRPC and HTTP; records what arrives; calls back per request.

    Port 0 picks a free port; read ``grpc_port`` / ``http_port`` after :meth:`start`.
    ``on_receive(signal, export)`` is called for every export request of a signal in
    ``signals``, on a server thread, one request at a time, with an :class:`Export` (its items
    decoded as it is iterated, in batches); it may return a :class:`Rejected`. With ``check``, the
    spans :func:`check_spans` refuses never reach it and are answered as refused too.
    ``keep=False`` keeps nothing: with a callback, items are decoded within ``limits`` for it
    only; without one, exports are only counted (``counts``), as a forwarding collector costs,
    so that benchmarks do not compete with decoding for the CPU.
    """

    def __init__(
        self,
        grpc_port: int | None = 0,
        http_port: int | None = 0,
        host: str = "127.0.0.1",
        on_receive: Callable[[str, Export], Rejected | None] | None = None,
        keep: bool = True,
        answer_status: int | None = None,
        partial_success: tuple[int, str] | None = None,
        max_request_bytes: int = 64 * MiB,
        limits: Limits | None = None,
        signals: tuple[str, ...] = tuple(_SIGNAL_SERVICES),
        allowed_host: Callable[[str | None], bool] | None = None,
        max_connections: int = 128,
        header_timeout: float = 60.0,
        body_timeout: float = 30.0,
        grpc_workers: int = 4,
        check: bool = False,
    ) -> None:
        self.host = host
        self.check = check
        self.answer_status = answer_status
        self.partial_success = partial_success
        self.max_request_bytes = max_request_bytes
        self.limits = limits or (EVERYTHING if keep else VIEWER_LIMITS)
        self.signals = signals
        self.allowed_host = allowed_host
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.grpc_workers = grpc_workers
        self.refused: dict[str, int] = {}  # reason -> requests refused (bad, too large, answer_status)
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.on_receive = on_receive
        self.keep = keep
        self.counts: dict[str, int] = {signal: 0 for signal in _SIGNAL_SERVICES}
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []
        self.logs: list[ReceivedLog] = []
        self.requests: dict[tuple[str, str], int] = {}
        self._changed = threading.Condition()
        self._decoding = threading.Lock()  # one export parsed and decoded at a time: memory holds one, not many
        self._grpc_server: grpc.Server | None = None
        self._http_server: BoundedHTTPServer | None = None

    @classmethod
    def viewer(
        cls,
        on_receive: Callable[[str, Export], Rejected | None],
        host: str,
        grpc_port: int,
        http_port: int,
        signals: tuple[str, ...],
        local_only: bool,
    ) -> OTLPReceiver:
        """The receiver ``tail`` and ``ui`` run: nothing kept, items within :data:`VIEWER_LIMITS`,
        requests up to :data:`REQUEST_BYTES`, the spans :func:`check_spans` refuses answered as a
        partial success beside the callback's own refusals; with ``local_only``, OTLP/HTTP answers
        a loopback ``Host`` only."""
        return cls(
            grpc_port=grpc_port,
            http_port=http_port,
            host=host,
            on_receive=on_receive,
            check=True,
            keep=False,
            limits=VIEWER_LIMITS,
            signals=signals,
            max_request_bytes=REQUEST_BYTES,
            allowed_host=is_loopback_host if local_only else None,
        )

    # -- recording -------------------------------------------------------------------------

    def record(self, signal: str, transport: str, request: Any) -> Rejected | None:
        """Count, keep and hand on one export (parsed); what was refused, if anything."""
        rejected, kept = Rejected(noun=_NOUNS[signal]), []
        if self.keep:
            kept = [item for batch in Export(signal, request, transport, self.limits) for item in batch]
        if self.on_receive is not None and signal in self.signals:
            export = Export(signal, request, transport, self.limits, self.check)
            rejected.merge(self.on_receive(signal, export))
            rejected.merge(export.rejected)
        with self._changed:
            {"traces": self.spans, "metrics": self.points, "logs": self.logs}[signal].extend(kept)
            self.counts[signal] += count_items(request, signal)
            key = (transport, signal)
            self.requests[key] = self.requests.get(key, 0) + 1
            self._changed.notify_all()
        return rejected if rejected.count else None

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 15.0) -> bool:
        """Wait until ``predicate(self)`` holds, at most ``timeout`` seconds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def clear(self) -> None:
        with self._changed:
            self.spans.clear()
            self.points.clear()
            self.logs.clear()
            self.requests.clear()
            self.counts = dict.fromkeys(self.counts, 0)

    def _refuse(self, reason: str) -> None:
        with self._changed:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            self._changed.notify_all()

    def response(self, signal: str, rejected: Rejected | None = None) -> Any:
        """The export response: empty, or a partial success (configured, or what the callback rejected)."""
        response = _SIGNAL_SERVICES[signal][1]()
        count, messages = 0, []
        if self.partial_success is not None:
            count, messages = self.partial_success[0], [self.partial_success[1]]
        if rejected is not None and rejected.count:
            count += rejected.count
            messages.append(rejected.message)
        if count or messages:
            setattr(response.partial_success, _SIGNAL_SERVICES[signal][3], count)
            response.partial_success.error_message = "; ".join(messages)
        return response

    def _export(self, signal: str, transport: str, body: bytes, encoding: str = "") -> tuple[int, bytes | str]:
        """Decompress, parse, record and answer one export: ``(200, the response's bytes)``, or
        ``(status, why)`` when it was refused (400: it does not decode; 500: the callback failed)."""
        with self._decoding:
            message = _SIGNAL_SERVICES[signal][0]()
            try:
                message.ParseFromString(_decompress(body, encoding, self.max_request_bytes))
            except Exception as exc:  # noqa: BLE001 - any undecodable body is the client's error
                return 400, f"cannot decode the request: {type(exc).__name__}: {str(exc)[:100]}"
            try:
                rejected = self.record(signal, transport, message)
            except Exception as exc:  # noqa: BLE001 - said on stderr once; the caller sees 'internal'
                sys.stderr.write(
                    f"otel-launch: receiver: an export could not be handled: {type(exc).__name__}: {exc}"[:300] + "\n"
                )
                return 500, f"the receiver could not handle it: {type(exc).__name__}"
            return 200, self.response(signal, rejected).SerializeToString()

    # -- serving ---------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{shown_host(self.host)}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{shown_host(self.host)}:{self.http_port}"

    def start(self) -> OTLPReceiver:
        """Listen on both ports; raises OSError with one line (``cannot listen for OTLP/...``) when a port is taken."""
        if self.grpc_port is not None:
            self._start_grpc()
        if self.http_port is not None:
            self._start_http()
        return self

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.stop()
            self._http_server = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- OTLP/gRPC -------------------------------------------------------------------------

    def _grpc_handler(self, signal: str) -> grpc.GenericRpcHandler:
        """The service's Export method on the request's bytes: parsed under the decoding lock."""

        def export(body: bytes, context: grpc.ServicerContext) -> bytes:
            if self.answer_status is not None:
                self._refuse(f"status {self.answer_status}")
                code = _GRPC_CODES.get(self.answer_status, grpc.StatusCode.UNAVAILABLE)
                context.abort(code, f"refused by the receiver ({self.answer_status})")
            status, answer = self._export(signal, "grpc", body)
            if status != 200:
                self._refuse("error" if status == 500 else "bad")
                context.abort(grpc.StatusCode.INTERNAL, str(answer))
            return answer  # type: ignore[return-value]

        handler = grpc.unary_unary_rpc_method_handler(export)  # no (de)serializers: bytes in and out
        return grpc.method_handlers_generic_handler(_SIGNAL_SERVICES[signal][4], {"Export": handler})

    def _start_grpc(self) -> None:
        if self.grpc_port:  # gRPC logs a line of its own before failing: check the port first
            error = port_free(self.host, self.grpc_port)
            if error is not None:
                raise OSError(f"cannot listen for OTLP/gRPC on {self.host}:{self.grpc_port}: {error.strerror}")
        # SO_REUSEPORT off: a second receiver on a port in use fails instead of splitting the traffic.
        # (gRPC sets SO_REUSEADDR on its listening sockets itself: restartable at once.)
        # No BDP probing: a call waiting for a reader keeps its flow-control window of 64 KiB, instead
        # of gRPC buffering megabytes of it (96 calls of 19 MB at once: ui's peak 855 MB, 402 without).
        options = [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_connection_age_ms", int(GRPC_CONNECTION_AGE * 1000)),
            ("grpc.max_connection_age_grace_ms", int(GRPC_AGE_GRACE * 1000)),
            ("grpc.http2.bdp_probe", 0),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.grpc_workers, thread_name_prefix="otlp-grpc"),
            handlers=[self._grpc_handler(signal) for signal in _SIGNAL_SERVICES],
            options=options,
            maximum_concurrent_rpcs=self.max_connections,
        )
        try:
            port = server.add_insecure_port(f"{shown_host(self.host)}:{self.grpc_port}")
        except RuntimeError:  # grpc's way of saying the bind failed
            port = 0
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.host}:{self.grpc_port}")
        server.start()
        self.grpc_port, self._grpc_server = port, server

    # -- OTLP/HTTP -------------------------------------------------------------------------

    def _start_http(self) -> None:
        try:
            sock = listening_socket(self.host, self.http_port or 0)
        except OSError as exc:
            raise OSError(f"cannot listen for OTLP/HTTP on {self.host}:{self.http_port}: {exc.strerror}") from None
        server = BoundedHTTPServer(
            sock,
            self._http_export,
            self._http_screen,
            self._http_refusal,
            max_body=self.max_request_bytes,
            max_connections=self.max_connections,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
        )
        server.start()
        self.http_port, self._http_server = sock.getsockname()[1], server

    def _http_refusal(self, status: int, message: str, reason: str | None = None) -> Response:
        self._refuse(reason or {413: "too large", 503: "busy", 500: "error"}.get(status, "bad"))
        body = status_pb2.Status(code=_RPC_CODES.get(status, 2), message=message).SerializeToString()
        return Response(status, body)

    def _http_screen(self, request: Request) -> Response | None:
        """A refusal decided from the request's head, or None to read its body."""
        path, method = request.path, request.method
        if not path.startswith("/v1/") or path[4:] not in _SIGNAL_SERVICES:
            return self._http_refusal(
                404, f"no such path {path[:80]!r}; OTLP/HTTP takes /v1/traces, /v1/metrics, /v1/logs"
            )
        if method != "POST":
            refusal = self._http_refusal(405, f"{method[:20]} is not supported; OTLP/HTTP takes POST")
            refusal.headers["Allow"] = "POST"
            return refusal
        if self.allowed_host is not None and not self.allowed_host(request.header("host")):
            return self._http_refusal(403, f"Host {request.header('host')[:80]!r} is not this machine")
        content_types = request.values("content-type")
        if len(content_types) > 1:
            return self._http_refusal(400, "more than one Content-Type")
        content_type = request.header("content-type")
        if content_type.split(";")[0].strip().lower() != "application/x-protobuf":
            return self._http_refusal(
                415, f"unsupported media type {content_type[:80]!r}; supported: [application/x-protobuf]"
            )
        encoding = request.header("content-encoding").strip().lower()
        if encoding not in _ENCODINGS:
            return self._http_refusal(
                415, f"unsupported Content-Encoding {encoding[:40]!r}; supported: [gzip, deflate, identity]"
            )
        return None

    def _http_export(self, request: Request) -> Response:
        if self.answer_status is not None:
            return self._http_refusal(self.answer_status, "refused by the receiver", f"status {self.answer_status}")
        body, request.body = request.body, b""
        encoding = request.header("content-encoding").strip().lower()
        status, answer = self._export(request.path[4:], "http", body, encoding)
        del body
        if status != 200:
            return self._http_refusal(status, str(answer), "error" if status == 500 else "bad")
        return Response(200, answer)  # type: ignore[arg-type]
