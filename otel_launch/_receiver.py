"""A real OTLP receiver: gRPC and HTTP/protobuf, on the generated ``opentelemetry-proto`` stubs.

Tests use it as their collector: with ``keep=True`` (the default) it records every span,
metric point and log record it receives, decoded into plain dataclasses, exactly as sent
(``receiver.wait_for(...)``). ``otel-launch tail`` and ``ui`` pass ``keep=False`` and an
``on_receive`` callback: each export is decoded with :data:`VIEWER_LIMITS` (long values cut
and marked), handed to the callback, and forgotten. Benchmarks pass ``keep=False`` alone:
exports are counted, never decoded. It listens on 127.0.0.1 unless told otherwise.

The callback may return a :class:`Rejected`: the export is then answered with OTLP's
``partial_success`` (rejected count and message), over HTTP and gRPC alike. A callback that
raises makes the export fail (HTTP 500, gRPC INTERNAL) with one line on stderr, never a
traceback, and the receiver keeps serving.

OTLP/HTTP takes ``application/x-protobuf`` only, plain, gzip or deflate (415 otherwise, as the
OpenTelemetry Collector answers), on a bounded server (``_receiver_http``); ``allowed_host``
refuses requests whose ``Host`` it does not accept (403). gRPC takes at most
``max_connections`` calls at once (RESOURCE_EXHAUSTED beyond) and reads ``grpc_workers`` of them
at a time. One export is decoded at a time, so that memory holds one decoded export, not many.
Every listening socket is restartable at once and never shared (``_listen``).

Options used by ``otel-launch doctor``'s tests: ``answer_status`` makes every export fail as a
collector refusing it would (HTTP status, and the matching gRPC code), ``partial_success``
answers with an OTLP partial success, and ``max_request_bytes`` refuses larger requests (413,
read-and-drop so that the client sees the answer; gRPC RESOURCE_EXHAUSTED). A request that
does not decode is refused (HTTP 400 with a ``google.rpc.Status`` body, gRPC INTERNAL) without
disturbing the server.
"""

from __future__ import annotations

import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import grpc
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2 as metrics_pb,
)
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2_grpc as metrics_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

from otel_launch._listen import listening_socket, shown_host
from otel_launch._receiver_http import BoundedHTTPServer, Request, Response

STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}
MiB = 1024 * 1024


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


VIEWER_LIMITS = Limits()


def truncation_mark(total: int) -> str:
    return f"... [truncated: {total} characters]"


class _Cut:
    """Counts what one decode dropped."""

    __slots__ = ("attributes", "events")

    def __init__(self) -> None:
        self.attributes = 0
        self.events = 0


def any_value(value: Any, limits: Limits | None = None, depth: int = 0) -> Any:
    """An OTLP AnyValue as a Python value (within ``limits`` when given)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        items = value.array_value.values
        if limits is None:
            return [any_value(item) for item in items]
        if depth >= limits.depth:
            return f"[array of {len(items)} values, nested too deep]"
        kept = [any_value(item, limits, depth + 1) for item in items[: limits.array_items]]
        if len(items) > limits.array_items:
            kept.append(f"... [truncated: {len(items)} values]")
        return kept
    if kind == "kvlist_value":
        if limits is None:
            return attributes(value.kvlist_value.values)
        if depth >= limits.depth:
            return f"{{list of {len(value.kvlist_value.values)} values, nested too deep}}"
        return _limited_attributes(value.kvlist_value.values, limits, _Cut(), depth + 1)
    plain = getattr(value, kind)
    if limits is not None and kind in ("string_value", "bytes_value"):
        return _cut_text(plain, limits.value_chars)
    return plain


def _cut_text(text: Any, cap: int) -> Any:
    if len(text) <= cap:
        return text
    if isinstance(text, bytes):
        return text[:cap] + truncation_mark(len(text)).encode()
    return text[:cap] + truncation_mark(len(text))


def attributes(key_values: Any) -> dict[str, Any]:
    return {item.key: any_value(item.value) for item in key_values}


def _limited_attributes(key_values: Any, limits: Limits, cut: _Cut, depth: int = 0) -> dict[str, Any]:
    kept = {}
    for item in key_values[: limits.attributes]:
        kept[_cut_text(item.key, 256)] = any_value(item.value, limits, depth)
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
    # Attributes and events the sender's SDK or the viewer's limits dropped (decoded with limits only).
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
    metric: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    value: float | None  # sums and gauges; histogram points carry count instead
    count: int | None
    transport: str = ""


@dataclass
class ReceivedLog:
    body: Any
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    transport: str = ""


def _entries(
    request: Any, resources: str, scopes: str, items: str, limits: Limits | None = None
) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """(resource attributes, scope, item) for every item of an OTLP export request."""
    for resource_entry in getattr(request, resources):
        raw = resource_entry.resource.attributes
        resource = attributes(raw) if limits is None else _limited_attributes(raw, limits, _Cut())
        for scope_entry in getattr(resource_entry, scopes):
            for item in getattr(scope_entry, items):
                yield resource, scope_entry.scope, item


def decode_spans(request: Any, transport: str, limits: Limits | None = None) -> list[ReceivedSpan]:
    if limits is not None:
        entries = _entries(request, "resource_spans", "scope_spans", "spans", limits)
        return [_limited_span(span, resource, scope, transport, limits) for resource, scope, span in entries]
    return [
        ReceivedSpan(
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            name=span.name,
            kind=span.kind,
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            status=STATUS_NAMES.get(span.status.code, str(span.status.code)),
            status_message=span.status.message,
            attributes=attributes(span.attributes),
            resource=resource,
            scope=scope.name,
            events=[{"name": e.name, **attributes(e.attributes)} for e in span.events],
            transport=transport,
        )
        for resource, scope, span in _entries(request, "resource_spans", "scope_spans", "spans")
    ]


def _limited_span(span: Any, resource: dict[str, Any], scope: Any, transport: str, limits: Limits) -> ReceivedSpan:
    cut = _Cut()
    events = []
    for event in span.events[: limits.events]:
        decoded = _limited_attributes(event.attributes, limits, cut)
        events.append({**decoded, "name": _cut_text(event.name, limits.value_chars)})
    cut.events = max(0, len(span.events) - limits.events)
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=_cut_text(span.name, limits.value_chars),
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=STATUS_NAMES.get(span.status.code, str(span.status.code)),
        status_message=_cut_text(span.status.message, limits.value_chars),
        attributes=_limited_attributes(span.attributes, limits, cut),
        resource=resource,
        scope=_cut_text(scope.name, 256),
        events=events,
        transport=transport,
        dropped_attributes=cut.attributes + span.dropped_attributes_count,
        dropped_events=cut.events + span.dropped_events_count,
    )


def decode_points(request: Any, transport: str, limits: Limits | None = None) -> list[ReceivedPoint]:
    points = []
    for resource, _, metric in _entries(request, "resource_metrics", "scope_metrics", "metrics", limits):
        data = metric.WhichOneof("data")
        for point in getattr(metric, data).data_points if data else ():
            # Sums and gauges carry a number; histograms carry a count.
            number = point.WhichOneof("value") if hasattr(point, "as_int") else None
            points.append(
                ReceivedPoint(
                    metric=metric.name if limits is None else _cut_text(metric.name, 256),
                    resource=resource,
                    attributes=attributes(point.attributes)
                    if limits is None
                    else _limited_attributes(point.attributes, limits, _Cut()),
                    value=getattr(point, number) if number else None,
                    count=getattr(point, "count", None),
                    transport=transport,
                )
            )
    return points


def decode_logs(request: Any, transport: str, limits: Limits | None = None) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            body=any_value(record.body, limits),
            severity=record.severity_text if limits is None else _cut_text(record.severity_text, 64),
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes=attributes(record.attributes)
            if limits is None
            else _limited_attributes(record.attributes, limits, _Cut()),
            resource=resource,
            transport=transport,
        )
        for resource, _, record in _entries(request, "resource_logs", "scope_logs", "log_records", limits)
    ]


def count_items(request: Any, signal: str) -> int:
    """How many spans, metric points or log records one export request holds, without decoding them."""
    if signal == "traces":
        return sum(len(scope.spans) for entry in request.resource_spans for scope in entry.scope_spans)
    if signal == "logs":
        return sum(len(scope.log_records) for entry in request.resource_logs for scope in entry.scope_logs)
    total = 0
    for _, _, metric in _entries(request, "resource_metrics", "scope_metrics", "metrics"):
        data = metric.WhichOneof("data")
        total += len(getattr(metric, data).data_points) if data else 0
    return total


def span_size(span: ReceivedSpan) -> int:
    """About the bytes a decoded span holds in memory (its text plus Python's per-object cost),
    for the viewers' byte bounds."""

    def size(value: Any) -> int:
        if isinstance(value, (str, bytes)):
            return 50 + len(value)
        if isinstance(value, dict):
            return 100 + sum(100 + len(key) + size(item) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return 60 + sum(10 + size(item) for item in value)
        return 32

    text = len(span.name) + len(span.status_message) + len(span.scope)
    return 700 + text + size(span.attributes) + sum(size(event) for event in span.events)


# -- checking spans ---------------------------------------------------------------------------

INT64_MAX = 2**63 - 1
FUTURE_NS = 24 * 3600 * 10**9  # a span may start at most a day after the receiver's clock


@dataclass
class Rejected:
    """Spans (or points, records) an export had that were not kept, and why: OTLP's partial success."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

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
        return f"{self.count} span{'s' if self.count != 1 else ''} refused: {shown}"[:400]


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
        if not _is_id(span.trace_id, 16) or not _is_id(span.span_id, 8):
            rejected.add("with an invalid trace or span id")
        elif span.parent_span_id and not _is_id(span.parent_span_id, 8):
            rejected.add("with an invalid parent span id")
        elif span.parent_span_id == span.span_id:
            rejected.add("their own parent")
        elif not (0 < span.start_ns <= span.end_ns <= INT64_MAX) or span.start_ns > now_ns + FUTURE_NS:
            rejected.add("with impossible times (unset, end before start, or far in the future)")
        elif (span.trace_id, span.span_id) in seen:
            rejected.add("sent twice in one export")
        else:
            seen.add((span.trace_id, span.span_id))
            kept.append(span)
    return kept, rejected


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


# -- the receiver ---------------------------------------------------------------------------

# signal -> (request message, response message, decoder, partial success field)
_SIGNALS: dict[str, tuple[Any, Any, Callable[..., list], str]] = {
    "traces": (
        trace_pb.ExportTraceServiceRequest,
        trace_pb.ExportTraceServiceResponse,
        decode_spans,
        "rejected_spans",
    ),
    "metrics": (
        metrics_pb.ExportMetricsServiceRequest,
        metrics_pb.ExportMetricsServiceResponse,
        decode_points,
        "rejected_data_points",
    ),
    "logs": (logs_pb.ExportLogsServiceRequest, logs_pb.ExportLogsServiceResponse, decode_logs, "rejected_log_records"),
}

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
    """The body without its Content-Encoding, refusing one that inflates beyond ``limit`` bytes."""
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        return body
    inflater = zlib.decompressobj(wbits=wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise ValueError(f"inflates beyond {limit} bytes")
    return out


class OTLPReceiver:
    """Receives OTLP over gRPC and HTTP; records what arrives; calls back per request.

    Port 0 picks a free port; read ``grpc_port`` / ``http_port`` after :meth:`start`.
    ``on_receive(signal, items)`` is called for every export request of a signal in
    ``signals``, on a server thread, one request at a time; it may return a :class:`Rejected`.
    ``keep=False`` keeps nothing: with a callback, items are decoded within ``limits`` for it
    only; without one, exports are only counted (``counts``), as a forwarding collector costs,
    so that benchmarks do not compete with decoding for the CPU.
    """

    def __init__(
        self,
        grpc_port: int | None = 0,
        http_port: int | None = 0,
        host: str = "127.0.0.1",
        on_receive: Callable[[str, list], Rejected | None] | None = None,
        keep: bool = True,
        answer_status: int | None = None,
        partial_success: tuple[int, str] | None = None,
        max_request_bytes: int = 64 * MiB,
        limits: Limits | None = None,
        signals: tuple[str, ...] = tuple(_SIGNALS),
        allowed_host: Callable[[str | None], bool] | None = None,
        max_connections: int = 128,
        header_timeout: float = 60.0,
        body_timeout: float = 30.0,
        grpc_workers: int = 4,
    ) -> None:
        self.host = host
        self.answer_status = answer_status
        self.partial_success = partial_success
        self.max_request_bytes = max_request_bytes
        self.limits = limits
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
        self.counts: dict[str, int] = {signal: 0 for signal in _SIGNALS}
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []
        self.logs: list[ReceivedLog] = []
        self.requests: dict[tuple[str, str], int] = {}
        self._changed = threading.Condition()
        self._decoding = threading.Lock()  # one export decoded at a time: memory holds one, not many
        self._grpc_server: grpc.Server | None = None
        self._http_server: BoundedHTTPServer | None = None

    # -- recording -------------------------------------------------------------------------

    def record(self, signal: str, transport: str, request: Any) -> Rejected | None:
        """Count, keep and hand on one export; what the callback rejected, if anything."""
        rejected = None
        decode = self.keep or (self.on_receive is not None and signal in self.signals)
        if decode:
            with self._decoding:
                items = _SIGNALS[signal][2](request, transport, None if self.keep else self.limits)
                count = len(items)
                if self.on_receive is not None and signal in self.signals:
                    rejected = self.on_receive(signal, items)
        else:
            items, count = [], count_items(request, signal)
        with self._changed:
            if self.keep:
                {"traces": self.spans, "metrics": self.points, "logs": self.logs}[signal].extend(items)
            self.counts[signal] += count
            key = (transport, signal)
            self.requests[key] = self.requests.get(key, 0) + 1
            self._changed.notify_all()
        return rejected

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
        response = _SIGNALS[signal][1]()
        count, messages = 0, []
        if self.partial_success is not None:
            count, messages = self.partial_success[0], [self.partial_success[1]]
        if rejected is not None and rejected.count:
            count += rejected.count
            messages.append(rejected.message)
        if count or messages:
            setattr(response.partial_success, _SIGNALS[signal][3], count)
            response.partial_success.error_message = "; ".join(messages)
        return response

    def _ingest(self, signal: str, transport: str, request: Any) -> Any:
        """Record one export and make its response; raises only for the transport to answer 'internal'."""
        try:
            rejected = self.record(signal, transport, request)
        except Exception as exc:
            sys.stderr.write(f"otel-launch: receiver: an export could not be handled: {type(exc).__name__}: {exc}\n")
            raise
        return self.response(signal, rejected)

    # -- serving ---------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{shown_host(self.host)}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{shown_host(self.host)}:{self.http_port}"

    def start(self) -> OTLPReceiver:
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

    def _start_grpc(self) -> None:
        receiver = self

        def servicer(base: type, signal: str) -> Any:
            class Servicer(base):  # type: ignore[misc, valid-type]
                def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the generated name
                    if receiver.answer_status is not None:
                        receiver._refuse(f"status {receiver.answer_status}")
                        code = _GRPC_CODES.get(receiver.answer_status, grpc.StatusCode.UNAVAILABLE)
                        context.abort(code, f"refused by the test receiver ({receiver.answer_status})")
                    try:
                        return receiver._ingest(signal, "grpc", request)
                    except Exception as exc:  # noqa: BLE001 - said on stderr once; the caller sees INTERNAL
                        receiver._refuse("error")
                        context.abort(grpc.StatusCode.INTERNAL, f"the receiver could not handle it: {exc}"[:200])

            return Servicer()

        # SO_REUSEPORT off: a second receiver on a port in use fails instead of splitting the traffic.
        # (gRPC sets SO_REUSEADDR on its listening sockets itself: restartable at once.)
        options = [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_request_bytes),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.grpc_workers, thread_name_prefix="otlp-grpc"),
            options=options,
            maximum_concurrent_rpcs=self.max_connections,
        )
        trace_grpc.add_TraceServiceServicer_to_server(servicer(trace_grpc.TraceServiceServicer, "traces"), server)
        metrics_grpc.add_MetricsServiceServicer_to_server(
            servicer(metrics_grpc.MetricsServiceServicer, "metrics"), server
        )
        logs_grpc.add_LogsServiceServicer_to_server(servicer(logs_grpc.LogsServiceServicer, "logs"), server)
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

    def _http_screen(self, method: str, path: str, headers: Message) -> Response | None:
        """A refusal decided from the request's head, or None to read its body."""
        if not path.startswith("/v1/") or path[4:] not in _SIGNALS:
            return self._http_refusal(
                404, f"no such path {path[:80]!r}; OTLP/HTTP takes /v1/traces, /v1/metrics, /v1/logs"
            )
        if method != "POST":
            refusal = self._http_refusal(405, f"{method[:20]} is not supported; OTLP/HTTP takes POST")
            refusal.headers["Allow"] = "POST"
            return refusal
        if self.allowed_host is not None and not self.allowed_host(headers.get("Host")):
            return self._http_refusal(403, f"Host {headers.get('Host', '')[:80]!r} is not this machine")
        content_type = headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/x-protobuf":
            return self._http_refusal(
                415, f"unsupported media type {content_type[:80]!r}; supported: [application/x-protobuf]"
            )
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding not in _ENCODINGS:
            return self._http_refusal(
                415, f"unsupported Content-Encoding {encoding[:40]!r}; supported: [gzip, deflate, identity]"
            )
        return None

    def _http_export(self, request: Request) -> Response:
        if self.answer_status is not None:
            return self._http_refusal(self.answer_status, "refused by the receiver", f"status {self.answer_status}")
        signal = request.path[4:]
        message = _SIGNALS[signal][0]()
        try:
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            body = _decompress(request.body, encoding, self.max_request_bytes)
            message.ParseFromString(body)
        except Exception as exc:  # noqa: BLE001 - any undecodable body is the client's error
            return self._http_refusal(400, f"cannot decode the request: {type(exc).__name__}: {str(exc)[:100]}")
        del body
        try:
            response = self._ingest(signal, "http", message)
        except Exception as exc:  # noqa: BLE001 - said on stderr once; the caller sees 500
            return self._http_refusal(500, f"the receiver could not handle it: {type(exc).__name__}", "error")
        return Response(200, response.SerializeToString())
