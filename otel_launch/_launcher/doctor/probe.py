"""The doctor's OTLP client: one test span, metric point and log record sent with the configured
protocol, endpoint, headers, TLS and compression, and the collector's answer.

Delivery is probed with a small client of our own on the same transports the SDK's
exporters use (grpc, requests), not with the exporters themselves: they turn every answer
into "failure" plus a log line, and the point here is to tell 401 from a TLS failure from a
timeout, and to show a partial success's message.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from otel_launch._core.masking import header_values
from otel_launch._launcher.config import Config
from otel_launch._version import __version__

SIGNALS = ("traces", "metrics", "logs")


class Answer(NamedTuple):
    accepted: bool
    text: str


def _request(signal: str, service: str) -> Any:
    """One test span, metric point or log record, as an OTLP export request."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    now = time.time_ns()
    resource = {"attributes": [KeyValue(key="service.name", value=AnyValue(string_value=service))]}
    scope = {"name": "otel-launch doctor", "version": __version__}
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        span = {
            "trace_id": os.urandom(16),
            "span_id": os.urandom(8),
            "name": "otel-launch doctor",
            "kind": 1,
            "start_time_unix_nano": now - 1_000_000,
            "end_time_unix_nano": now,
        }
        body: Any = {"resource": resource, "scope_spans": [{"scope": scope, "spans": [span]}]}  # protobuf takes dicts
        return ExportTraceServiceRequest(resource_spans=[body])
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        point = {"time_unix_nano": now, "as_int": 1}
        metric = {"name": "otel_launch.doctor", "unit": "1", "gauge": {"data_points": [point]}}
        body = {"resource": resource, "scope_metrics": [{"scope": scope, "metrics": [metric]}]}
        return ExportMetricsServiceRequest(resource_metrics=[body])
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    record = {"time_unix_nano": now, "severity_text": "INFO", "body": AnyValue(string_value="otel-launch doctor")}
    body = {"resource": resource, "scope_logs": [{"scope": scope, "log_records": [record]}]}
    return ExportLogsServiceRequest(resource_logs=[body])


def _response(signal: str) -> Any:
    """An empty export response of the signal's service, for the collector's answer."""
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        return ExportTraceServiceResponse()
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

        return ExportMetricsServiceResponse()
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    return ExportLogsServiceResponse()


def _partial(response: Any) -> Answer:
    partial = response.partial_success
    rejected = next(
        (
            getattr(partial, f)
            for f in ("rejected_spans", "rejected_data_points", "rejected_log_records")
            if hasattr(partial, f)
        ),
        0,
    )
    if rejected:
        return Answer(False, f"partial success: {rejected} rejected: {partial.error_message or '(no message)'}")
    if partial.error_message:
        return Answer(True, f"accepted, with a warning: {partial.error_message}")
    return Answer(True, "accepted")


class Transport(NamedTuple):
    """The export settings as the SDK's exporters read them from the process environment."""

    protocol: str
    endpoint: str
    headers: dict[str, str]
    certificate: str | None
    client_key: str | None
    client_certificate: str | None
    compression: str
    insecure: bool
    timeout: float

    @classmethod
    def from_env(cls, config: Config, env: Mapping[str, str], timeout: float) -> Transport:
        protocol = config.protocol
        default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
        return cls(
            protocol=protocol,
            endpoint=config.endpoint or default,
            headers=dict(config.headers or {}),
            certificate=env.get("OTEL_EXPORTER_OTLP_CERTIFICATE") or None,
            client_key=env.get("OTEL_EXPORTER_OTLP_CLIENT_KEY") or None,
            client_certificate=env.get("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE") or None,
            compression=(env.get("OTEL_EXPORTER_OTLP_COMPRESSION") or "none").strip().lower(),
            insecure=(env.get("OTEL_EXPORTER_OTLP_INSECURE") or "").strip().lower() == "true",
            timeout=timeout,
        )

    def url(self, signal: str, env: Mapping[str, str]) -> str:
        specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        if specific:
            return specific
        if self.protocol == "grpc":
            return self.endpoint
        return self.endpoint.rstrip("/") + f"/v1/{signal}"

    def headers_for(self, signal: str, config: Config) -> dict[str, str]:
        """The headers an exporter of this signal sends: its own variable's
        (``OTEL_EXPORTER_OTLP_TRACES_HEADERS``...) in place of the general ones, as the SDK does."""
        specific = _signal_headers(config, signal)
        return self.headers if specific is None else specific

    def send(self, signal: str, url: str, service: str, headers: dict[str, str] | None = None) -> Answer:
        request = _request(signal, service)
        headers = self.headers if headers is None else headers
        try:
            if self.protocol == "grpc":
                return self._grpc(signal, url, request, headers)
            return self._http(signal, url, request, headers)
        except Exception as exc:  # noqa: BLE001 - any failure is an answer to report, not a crash
            return Answer(False, f"failed: {type(exc).__name__}: {exc}")

    def _http(self, signal: str, url: str, request: Any, headers: dict[str, str]) -> Answer:
        import requests
        from google.rpc import status_pb2

        body = request.SerializeToString()
        headers = {**headers, "Content-Type": "application/x-protobuf"}
        if self.compression == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        elif self.compression == "deflate":
            body, headers["Content-Encoding"] = zlib.compress(body), "deflate"
        cert: str | tuple[str, str] | None = self.client_certificate or None
        if self.client_certificate and self.client_key:
            cert = (self.client_certificate, self.client_key)
        try:
            response = requests.post(
                url, data=body, headers=headers, timeout=self.timeout, verify=self.certificate or True, cert=cert
            )
        except requests.exceptions.SSLError as exc:
            return Answer(False, f"TLS failure: {_reason(exc)}")
        except requests.exceptions.Timeout:
            return Answer(False, f"timeout: no answer within {self.timeout:g} s")
        except requests.exceptions.ConnectionError as exc:
            return Answer(False, f"unreachable: {_reason(exc)}")
        if response.status_code == 200:
            parsed = _response(signal)
            parsed.ParseFromString(response.content)
            return _partial(parsed)
        message = ""
        try:
            message = status_pb2.Status.FromString(response.content).message
        except Exception:  # noqa: BLE001 - a body that is not a google.rpc.Status
            message = response.text[:200]
        what = {401: "401 unauthorized (check the headers' token)", 403: "403 forbidden (the token lacks rights)"}
        shown = what.get(response.status_code, f"refused: HTTP {response.status_code} {response.reason}")
        return Answer(False, shown + (f": {message}" if message else ""))

    def _grpc(self, signal: str, url: str, request: Any, headers: dict[str, str]) -> Answer:
        from urllib.parse import urlsplit

        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        parts = urlsplit(url if "://" in url else f"http://{url}")
        target = parts.netloc.rpartition("@")[2] or "localhost:4317"
        secure = parts.scheme == "https" or (parts.scheme not in ("http", "https") and not self.insecure)
        if secure:
            read = lambda path: Path(path).read_bytes() if path else None  # noqa: E731
            credentials = grpc.ssl_channel_credentials(
                read(self.certificate), read(self.client_key), read(self.client_certificate)
            )
            channel = grpc.secure_channel(target, credentials)
        else:
            channel = grpc.insecure_channel(target)
        stub: Any = {
            "traces": trace_service_pb2_grpc.TraceServiceStub,
            "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
            "logs": logs_service_pb2_grpc.LogsServiceStub,
        }[signal](channel)
        compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(self.compression)
        metadata_ = [(key.lower(), value) for key, value in headers.items()]
        try:
            response = stub.Export(request, metadata=metadata_, timeout=self.timeout, compression=compression)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return Answer(False, f"401 unauthenticated (check the headers' token): {details}")
            if code == grpc.StatusCode.PERMISSION_DENIED:
                return Answer(False, f"403 permission denied (the token lacks rights): {details}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Answer(False, f"timeout: no answer within {self.timeout:g} s")
            if code == grpc.StatusCode.UNAVAILABLE:
                lowered = details.lower()
                if any(word in lowered for word in ("ssl", "tls", "handshake", "certificate")):
                    return Answer(False, f"TLS failure: {details}")
                return Answer(False, f"unreachable: {details}")
            return Answer(False, f"refused: {code.name}: {details}")
        finally:
            channel.close()
        return _partial(response)


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without its object reprs."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc)
    return text.rpartition(": ")[2][:200] if ": " in text else text[:200]


def _signal_headers(config: Config, signal: str) -> dict[str, str] | None:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`` as the configuration parsed it (environment or
    env file); None when unset. Set but empty, it sends no headers (the SDK reads
    ``environ.get(signal's, environ.get(general))``)."""
    name = f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS"
    checked = config.checked_values.get(name)
    if checked:
        return dict(checked[0] or {})
    return {} if name in config.environ or name in config.env_file_passthrough else None


def _all_header_values(config: Config) -> list[str]:
    """Every header value the doctor may send, general and per signal, and the configuration
    file's: hidden wherever a line (a collector's or a library's message) would repeat one."""
    values = list((config.headers or {}).values())
    for signal in SIGNALS:
        values += (_signal_headers(config, signal) or {}).values()
    if config.config_file is not None:
        values += header_values(file_data=config.config_file.data)
    return values


def _file_delivery(config: Config, signal: str, timeout: float) -> tuple[Transport, str, dict[str, str]] | str:
    """The transport, URL and headers of a signal's first OTLP exporter in the configuration
    file, or the reason nothing of this signal is sent."""
    from otel_launch._launcher.config_file import otlp_exporter

    found = otlp_exporter(config.config_file.data, signal)
    if found is None:
        return f"delivery: {signal}: not sent (the configuration file has no otlp_grpc/otlp_http exporter for it)"
    transport = Transport(found.protocol, found.url, found.headers, None, None, None, found.compression, False, timeout)
    return transport, found.url, found.headers
