"""A real OTLP receiver: gRPC and HTTP/protobuf, on the generated ``opentelemetry-proto`` stubs.

It records every span, metric point and log record it receives, decoded into plain
dataclasses, for tests (``receiver.wait_for(...)``) and for ``otel-launch tail``.
It listens on 127.0.0.1 unless told otherwise.

Options used by ``otel-launch doctor``'s tests and the UI: ``answer_status`` makes every
export fail as a collector refusing it would (HTTP status, and the matching gRPC code),
``partial_success`` answers with an OTLP partial success, and ``max_request_bytes`` refuses
larger requests with the OTLP error status instead of reading them. A request that does
not decode is refused (HTTP 400 with a ``google.rpc.Status`` body, gRPC INTERNAL) without
disturbing the server.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    return {item.key: any_value(item.value) for item in key_values}


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


def _entries(request: Any, resources: str, scopes: str, items: str) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """(resource attributes, scope, item) for every item of an OTLP export request."""
    for resource_entry in getattr(request, resources):
        resource = attributes(resource_entry.resource.attributes)
        for scope_entry in getattr(resource_entry, scopes):
            for item in getattr(scope_entry, items):
                yield resource, scope_entry.scope, item


def decode_spans(request: Any, transport: str) -> list[ReceivedSpan]:
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


def decode_points(request: Any, transport: str) -> list[ReceivedPoint]:
    points = []
    for resource, _, metric in _entries(request, "resource_metrics", "scope_metrics", "metrics"):
        data = metric.WhichOneof("data")
        for point in getattr(metric, data).data_points if data else ():
            # Sums and gauges carry a number; histograms carry a count.
            number = point.WhichOneof("value") if hasattr(point, "as_int") else None
            points.append(
                ReceivedPoint(
                    metric=metric.name,
                    resource=resource,
                    attributes=attributes(point.attributes),
                    value=getattr(point, number) if number else None,
                    count=getattr(point, "count", None),
                    transport=transport,
                )
            )
    return points


def decode_logs(request: Any, transport: str) -> list[ReceivedLog]:
    return [
        ReceivedLog(
            body=any_value(record.body),
            severity=record.severity_text,
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes=attributes(record.attributes),
            resource=resource,
            transport=transport,
        )
        for resource, _, record in _entries(request, "resource_logs", "scope_logs", "log_records")
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


# signal -> (request message, response message, decoder)
_SIGNALS: dict[str, tuple[Any, Any, Callable[[Any, str], list]]] = {
    "traces": (trace_pb.ExportTraceServiceRequest, trace_pb.ExportTraceServiceResponse, decode_spans),
    "metrics": (metrics_pb.ExportMetricsServiceRequest, metrics_pb.ExportMetricsServiceResponse, decode_points),
    "logs": (logs_pb.ExportLogsServiceRequest, logs_pb.ExportLogsServiceResponse, decode_logs),
}


# HTTP status -> the gRPC code a collector answers with for the same refusal.
_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding, refusing one that inflates beyond ``limit`` bytes."""
    if encoding not in ("gzip", "deflate"):
        return body
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        raise ValueError(f"inflates beyond {limit} bytes")
    return out


class OTLPReceiver:
    """Receives OTLP over gRPC and HTTP; records what arrives; calls back per request.

    Port 0 picks a free port; read ``grpc_port`` / ``http_port`` after :meth:`start`.
    ``on_receive(signal, items)`` is called for every export request, on a server thread.
    ``keep=False`` only counts what arrives (``counts``), as a forwarding collector costs:
    benchmarks use it so that decoding into Python objects does not compete for the CPU.
    """

    def __init__(
        self,
        grpc_port: int | None = 0,
        http_port: int | None = 0,
        host: str = "127.0.0.1",
        on_receive: Callable[[str, list], None] | None = None,
        keep: bool = True,
        answer_status: int | None = None,
        partial_success: tuple[int, str] | None = None,
        max_request_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.answer_status = answer_status
        self.partial_success = partial_success
        self.max_request_bytes = max_request_bytes
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
        self._grpc_server: grpc.Server | None = None
        self._http_server: ThreadingHTTPServer | None = None

    # -- recording -------------------------------------------------------------------------

    def record(self, signal: str, transport: str, request: Any) -> None:
        items = _SIGNALS[signal][2](request, transport) if self.keep else []
        count = len(items) if self.keep else count_items(request, signal)
        with self._changed:
            {"traces": self.spans, "metrics": self.points, "logs": self.logs}[signal].extend(items)
            self.counts[signal] += count
            key = (transport, signal)
            self.requests[key] = self.requests.get(key, 0) + 1
            self._changed.notify_all()
        if self.on_receive is not None:
            self.on_receive(signal, items)

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

    def response(self, signal: str) -> Any:
        """The export response: empty, or a partial success when configured."""
        response = _SIGNALS[signal][1]()
        if self.partial_success is not None:
            rejected, message = self.partial_success
            field_name = {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}
            setattr(response.partial_success, field_name[signal], rejected)
            response.partial_success.error_message = message
        return response

    # -- serving ---------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> OTLPReceiver:
        if self.grpc_port is not None:
            self._start_grpc()
        if self.http_port is not None:
            self._start_http()
        return self

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
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
                    receiver.record(signal, "grpc", request)
                    return receiver.response(signal)

            return Servicer()

        # SO_REUSEPORT off: a second receiver on a port in use fails instead of splitting the traffic.
        options = [
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self.max_request_bytes),
        ]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        trace_grpc.add_TraceServiceServicer_to_server(servicer(trace_grpc.TraceServiceServicer, "traces"), server)
        metrics_grpc.add_MetricsServiceServicer_to_server(
            servicer(metrics_grpc.MetricsServiceServicer, "metrics"), server
        )
        logs_grpc.add_LogsServiceServicer_to_server(servicer(logs_grpc.LogsServiceServicer, "logs"), server)
        try:
            port = server.add_insecure_port(f"{self.host}:{self.grpc_port}")
        except RuntimeError:  # grpc's way of saying the bind failed
            port = 0
        if port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.host}:{self.grpc_port}")
        server.start()
        self.grpc_port, self._grpc_server = port, server

    def _start_http(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                signal = self.path.split("?")[0].removeprefix("/v1/")
                if signal not in _SIGNALS or not self.path.startswith("/v1/"):
                    self._reply(404, b"")
                    return
                if "json" in self.headers.get("Content-Type", ""):
                    self._reply(415, b"OTLP/HTTP JSON is not supported; use application/x-protobuf")
                    return
                try:
                    length = int(self.headers.get("Content-Length", 0))
                except ValueError:
                    length = -1
                if length < 0:
                    self._refuse(400, "bad", "Content-Length is not a number of bytes")
                    return
                if length > receiver.max_request_bytes:
                    self.close_connection = True  # the body is not read
                    self._refuse(413, "too large", f"request of {length} bytes; at most {receiver.max_request_bytes}")
                    return
                body = self.rfile.read(length)
                if receiver.answer_status is not None:
                    self._refuse(receiver.answer_status, f"status {receiver.answer_status}", "refused by the receiver")
                    return
                request = _SIGNALS[signal][0]()
                try:
                    body = _decompress(body, self.headers.get("Content-Encoding", ""), receiver.max_request_bytes)
                    request.ParseFromString(body)
                except Exception as exc:  # noqa: BLE001 - any undecodable body is the client's error
                    self._refuse(400, "bad", f"cannot decode the request: {type(exc).__name__}: {str(exc)[:100]}")
                    return
                receiver.record(signal, "http", request)
                self._reply(200, receiver.response(signal).SerializeToString())

            def _refuse(self, status: int, reason: str, message: str) -> None:
                receiver._refuse(reason)
                code = 8 if status == 413 else (16 if status == 401 else 7 if status == 403 else 3)
                self._reply(status, status_pb2.Status(code=code, message=message).SerializeToString())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: no access log
                pass

        server = ThreadingHTTPServer((self.host, self.http_port), Handler)
        server.daemon_threads = True
        self.http_port, self._http_server = server.server_address[1], server
        threading.Thread(target=server.serve_forever, name="otlp-http", daemon=True).start()
