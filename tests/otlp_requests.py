"""OTLP export requests built by hand (the generated stubs), for what an SDK would never send:
hostile text, loops of parents, impossible times, and load in bulk. Plus the clients that send them."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

NOW = time.time_ns()


def kv(key: str, value) -> common_pb2.KeyValue:
    item = common_pb2.KeyValue(key=key)
    if isinstance(value, bool):
        item.value.bool_value = value
    elif isinstance(value, int):
        item.value.int_value = value
    else:
        item.value.string_value = str(value)
    return item


def span(
    trace: int,
    span_id: int,
    parent: int = 0,
    name: str = "span",
    start: int = NOW,
    end: int | None = None,
    attributes: dict | None = None,
    **fields,
) -> trace_pb2.Span:
    made = trace_pb2.Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=fields.pop("kind", 2 if not parent else 1),
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000 if end is None else end,
        attributes=[kv(key, value) for key, value in (attributes or {}).items()],
        **fields,
    )
    return made


def trace_request(spans: list[trace_pb2.Span], service: str = "svc") -> trace_pb.ExportTraceServiceRequest:
    request = trace_pb.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def log_request(body: str, service: str = "svc", severity: str = "INFO") -> logs_pb.ExportLogsServiceRequest:
    request = logs_pb.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", service))
    record = resource_logs.scope_logs.add().log_records.add()
    record.body.string_value = body
    record.severity_text = severity
    record.time_unix_nano = NOW
    return request


def logs_request(bodies: list[str], service: str = "svc", severity: int = 9) -> logs_pb.ExportLogsServiceRequest:
    """One export of a record for each body, a nanosecond apart, in order."""
    request = logs_pb.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", service))
    records = resource_logs.scope_logs.add().log_records
    for index, body in enumerate(bodies):
        record = records.add(time_unix_nano=time.time_ns() + index, severity_number=severity)
        record.body.string_value = body
    return request


def gauge_request(points: list[tuple[dict, float]], name: str = "g", service: str = "svc", at: int | None = None):
    """One export of gauge points, each (attributes, value), all at ``at`` (now by default)."""
    request = metrics_pb.ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(kv("service.name", service))
    metric = resource_metrics.scope_metrics.add().metrics.add(name=name, unit="1")
    for attributes, value in points:
        metric.gauge.data_points.add(
            time_unix_nano=at or time.time_ns(),
            as_double=value,
            attributes=[kv(key, item) for key, item in attributes.items()],
        )
    return request


def histogram_request(bounds: list[float], counts: list[int], name: str = "h", service: str = "svc"):
    """One export of one cumulative histogram point with these bounds and bucket counts."""
    request = metrics_pb.ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(kv("service.name", service))
    metric = resource_metrics.scope_metrics.add().metrics.add(name=name, unit="s")
    metric.histogram.aggregation_temporality = 2
    now = time.time_ns()
    metric.histogram.data_points.add(
        start_time_unix_nano=now - 10**9,
        time_unix_nano=now,
        count=sum(counts),
        sum=1.0,
        bucket_counts=counts,
        explicit_bounds=bounds,
    )
    return request


def one_kb_rounds(round_number: int, spans: int, per_trace: int = 10, per_request: int = 1000) -> Iterator[bytes]:
    """``spans`` spans of about one kilobyte each (a 900-character URL), ``per_trace`` to a trace (a
    root and its children), serialized ``per_request`` to an export."""
    batch: list[trace_pb2.Span] = []
    for index in range(spans):
        trace = (round_number << 64) | (index // per_trace + 1)
        position = index % per_trace
        url = f"https://shop.example/items/{index}?" + "q" * 900
        batch.append(
            span(
                trace,
                (round_number << 40) | (index + 1),
                parent=0 if position == 0 else (round_number << 40) | (index - position + 1),
                name=f"GET /items/{position}",
                start=NOW + index * 1000,
                attributes={"http.url": url, "http.status_code": 200},
            )
        )
        if len(batch) == per_request:
            yield trace_request(batch).SerializeToString()
            batch = []
    if batch:
        yield trace_request(batch).SerializeToString()


class HttpClient:
    """One keep-alive connection to an OTLP/HTTP port."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def post(self, path: str, body: bytes, **headers: str) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/x-protobuf", **headers}
        self.connection.request("POST", path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def export(self, request) -> trace_pb.ExportTraceServiceResponse:
        status, body = self.post("/v1/traces", request.SerializeToString())
        assert status == 200, (status, body)
        return trace_pb.ExportTraceServiceResponse.FromString(body)

    def export_metrics(self, request) -> metrics_pb.ExportMetricsServiceResponse:
        status, body = self.post("/v1/metrics", request.SerializeToString())
        assert status == 200, (status, body)
        return metrics_pb.ExportMetricsServiceResponse.FromString(body)

    def export_logs(self, request) -> logs_pb.ExportLogsServiceResponse:
        status, body = self.post("/v1/logs", request.SerializeToString())
        assert status == 200, (status, body)
        return logs_pb.ExportLogsServiceResponse.FromString(body)

    def close(self) -> None:
        self.connection.close()


def grpc_export(port: int, request, timeout: float = 30) -> trace_pb.ExportTraceServiceResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        if isinstance(request, logs_pb.ExportLogsServiceRequest):
            return logs_grpc.LogsServiceStub(channel).Export(request, timeout=timeout)
        return trace_grpc.TraceServiceStub(channel).Export(request, timeout=timeout)


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def file_bytes(path: Path) -> int:
    """A SQLite database and its write-ahead log, on disk."""
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def many_minimal_spans(count: int, one_trace: bool) -> bytes:
    """One export of ``count`` spans with nothing but ids and times (about 48 bytes each), all in one
    trace or each in its own, gzipped: what the smallest request that decodes to the most objects is."""
    request = trace_pb.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", "tiny"))
    spans = resource_spans.scope_spans.add().spans
    for index in range(count):
        spans.add(
            trace_id=(1 if one_trace else index + 1).to_bytes(16, "big"),
            span_id=(index + 1).to_bytes(8, "big"),
            start_time_unix_nano=NOW,
            end_time_unix_nano=NOW + 1,
        )
    return gzip.compress(request.SerializeToString(), compresslevel=6)


def heavy_resource_request(spans: list[trace_pb2.Span], values: int = 127, size: int = 16384):
    """An export whose one resource has ``values`` attributes of ``size`` characters: megabytes of
    resource for the few kilobytes the request takes gzipped."""
    request = trace_request(spans, service="heavy")
    for index in range(values):
        request.resource_spans[0].resource.attributes.append(kv(f"r{index:03}", "a" * size))
    return request


class Peak:
    """Samples, on a thread of its own, the largest value of ``measure()`` until stopped (a file
    that grows and shrinks within a request: a short peak between samples can be missed)."""

    def __init__(self, measure, every: float = 0.01) -> None:
        import threading

        self.measure, self.every, self.value = measure, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # a file not there yet
                self.value = max(self.value, self.measure())
            self._stop.wait(self.every)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def restarts_at_once(workdir: Path, args: list[str], grpc_port: int, http_port: int, stop: int, hold=list) -> None:
    """Start ``args``, send a burst of exports (connections the server closes: TIME_WAIT on its
    side), keep an exporter's connection and whatever ``hold()`` opens, stop it by ``stop``; then the
    same command must start at once on the same ports, and a third must fail in one line."""
    import signal

    from tests.helpers import clean_env, kill_group, run, start

    first = start(args, clean_env(), workdir)
    held = []
    try:
        started = first.stdout.readline()
        assert started.startswith("otel-launch "), first.stderr.read()
        for trace in range(1, 20):
            exporter = HttpClient(http_port)
            exporter.export(trace_request([span(trace, 1)]))
            body = trace_request([span(0x80 + trace, 1)]).SerializeToString()
            assert exporter.post("/v1/traces", body, Connection="close")[0] == 200  # the server closes it
            exporter.close()
            grpc_export(grpc_port, trace_request([span(0x100 + trace, 1)]))
        held += list(hold())
        exporter = HttpClient(http_port)
        exporter.export(trace_request([span(0x200, 1)]))
        held.append(exporter.connection)  # kept open across the stop
        first.send_signal(stop)
        first.wait(15)
    finally:
        kill_group(first)
    second = start(args, clean_env(), workdir)
    try:
        line = second.stdout.readline()
        assert line.split("(")[0] == started.split("(")[0], (line, started, second.stderr.read())  # the same ports
        third = run(args, clean_env(), workdir, timeout=30)  # two instances still cannot share a port
        assert third.returncode == 1 and third.stderr.count("\n") == 1 and "cannot listen" in third.stderr
    finally:
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=15)
        for connection in held:
            connection.close()
    assert second.returncode == 0, second.returncode
