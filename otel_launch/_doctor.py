"""``otel-launch doctor``: what a launch would do here, and proof that the collector accepts it.

Run with the same flags, variables and env file as a launch. One line each: the resolved
settings (secrets masked), the versions that matter and the integrations they enable,
whether the app's interpreter is this one, the installed libraries that have a contrib
instrumentation this environment lacks (from the contrib's own table,
``opentelemetry.instrumentation.bootstrap_gen``), then one test span and one metric point
sent with the configured protocol, endpoint, headers, TLS and compression, and the
collector's answer. Exit 0 when every signal that is on was accepted, 1 otherwise, 2 on
bad settings.

Delivery is probed with a small client of our own on the same transports the SDK's
exporters use (grpc, requests), not with the exporters themselves: they turn every answer
into "failure" plus a log line, and the point here is to tell 401 from a TLS failure from a
timeout, and to show a partial success's message.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import click

from otel_launch._config import _AUTO, Config, ConfigError
from otel_launch._masking import mask_text, mask_url, secret_values
from otel_launch._settings import SETTINGS
from otel_launch._version import __version__

SIGNALS = ("traces", "metrics", "logs")
VERSIONS = (
    "opentelemetry-sdk",
    "opentelemetry-api",
    "opentelemetry-instrumentation",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "django",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "psycopg2",
)
# otel-launch's integrations (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names) -> the distribution they need.
INTEGRATION_LIBRARIES = {
    "django": "django",
    "celery": "celery",
    "redis": "redis",
    "sqlite3": None,  # the standard library
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "threading": None,  # the trace context carried into threads and thread pools
}


class Answer(NamedTuple):
    accepted: bool
    text: str


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# -- what is here ---------------------------------------------------------------------------------


def version_line() -> str:
    found = [f"{name} {_version(name) or '(not installed)'}" for name in VERSIONS]
    python = f"python {sys.version.split()[0]} ({sys.executable})"
    return f"versions: otel-launch {__version__}, {python}, " + ", ".join(found)


def integrations_line(config: Config) -> str:
    disabled = set(config.disabled_instrumentations or ())
    parts = []
    for name, distribution in INTEGRATION_LIBRARIES.items():
        version = "stdlib" if distribution is None else _version(distribution)
        if name in disabled:
            parts.append(f"{name}: off (disabled)")
        elif version is None:
            parts.append(f"{name}: not loaded ({distribution} not installed)")
        else:
            parts.append(f"{name}: loads ({'standard library' if distribution is None else version})")
    # The catalogue: every other installed instrumentation, run when its library is imported.
    from otel_launch._runtime.integrations import _catalogue

    for entry in _catalogue.entries():
        when = "off (disabled)" if entry.name in disabled or "*" in disabled else "loads"
        parts.append(f"{entry.name}: {when} when {' or '.join(entry.triggers)} is imported")
    return "integrations: " + "; ".join(parts)


def missing_instrumentations() -> list[tuple[str, str]]:
    """(library with version, instrumentation requirement) for each installed library of the contrib's
    table whose instrumentation package is not installed."""
    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from packaging.requirements import Requirement

    missing = []
    for entry in libraries:
        library = Requirement(entry["library"])
        installed = _version(library.name)
        if installed is None or not library.specifier.contains(installed, prereleases=True):
            continue
        instrumentation = Requirement(entry["instrumentation"])
        if _version(instrumentation.name) is None:
            missing.append((f"{library.name} {installed}", entry["instrumentation"]))
    return sorted(set(missing))


def _shebang_python(path: str) -> str | None:
    """The Python interpreter a script's ``#!`` line names, if it names one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n")[0].decode(errors="replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [word for word in words[1:] if not word.startswith("-")]
    if not words or not os.path.basename(words[0]).startswith("python"):
        return None
    return shutil.which(words[0]) or words[0]


def interpreter_line(command: tuple[str, ...]) -> str:
    """Whether the app's interpreter (the command's, else ``python`` on PATH) is this one."""
    program = command[0] if command else "python"
    found = shutil.which(program)
    if found is None:
        return f"interpreter: {program!r} not found on PATH; the app cannot be launched as given"
    # A script names its interpreter in its #! line; a python (or a pyenv/asdf shim) is asked.
    interpreter = _shebang_python(found)
    if interpreter is None:
        if not os.path.basename(found).startswith("python"):
            return f"interpreter: {program} ({found}) is not a Python script; cannot tell which Python it runs"
        interpreter = found
    try:
        answer = subprocess.run(
            [interpreter, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, timeout=15
        )
        prefix = answer.stdout.strip() if answer.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        prefix = ""
    if prefix and os.path.realpath(prefix) == os.path.realpath(sys.prefix):
        return f"interpreter: {program} runs {interpreter}: this one (sys.prefix {sys.prefix})"
    return (
        f"interpreter: {program} runs {interpreter} (prefix {prefix or 'unknown'}), NOT this one ({sys.executable}):"
        " install otel-launch in the app's environment, or telemetry will not load there"
    )


# -- proving delivery ------------------------------------------------------------------------------


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

        from otel_launch._receiver import _SIGNALS

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
            parsed = _SIGNALS[signal][1]()
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
    checked = config.checked.get(name)
    if checked:
        return dict(checked[0] or {})
    return {} if name in config.environ or name in config.passthrough else None


def _all_header_values(config: Config) -> list[str]:
    """Every header value the doctor may send, general and per signal, and the configuration
    file's: hidden wherever a line (a collector's or a library's message) would repeat one."""
    values = list((config.headers or {}).values())
    for signal in SIGNALS:
        values += (_signal_headers(config, signal) or {}).values()
    if config.config_file is not None:
        from otel_launch._runtime._declarative import header_values

        values += header_values(config.config_file.data)
    return values


def _file_delivery(config: Config, signal: str, timeout: float) -> tuple[Transport, str, dict[str, str]] | str:
    """The transport, URL and headers of a signal's first OTLP exporter in the configuration
    file, or the reason nothing of this signal is sent."""
    from otel_launch._config_file import otlp_exporter

    found = otlp_exporter(config.config_file.data, signal)
    if found is None:
        return f"delivery: {signal}: not sent (the configuration file has no otlp_grpc/otlp_http exporter for it)"
    transport = Transport(found.protocol, found.url, found.headers, None, None, None, found.compression, False, timeout)
    return transport, found.url, found.headers


def _scrub(text: str, secrets: tuple[str, ...], settings_row: bool = False) -> str:
    return mask_text(text, values=secrets, settings_row=settings_row)


# -- the command ------------------------------------------------------------------------------------


def run_doctor(config: Config, command: tuple[str, ...], timeout: float, out: Any = None) -> int:
    """Print the report; the exit status: 0 when every signal that is on was accepted, else 1."""
    out = out or sys.stdout
    # gRPC's C core logs its own lines (TLS handshakes, connection errors) on stderr: the answer
    # is reported here, once. Read when grpc is first imported, which happens below.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")

    def say(line: str, settings_row: bool = False) -> None:
        out.write(_scrub(line, secrets, settings_row) + "\n")
        out.flush()

    env = config.child_env()
    secrets = secret_values(_all_header_values(config))
    say(f"otel-launch doctor {__version__}: settings are flags > environment > env file > defaults")
    for flag, variable, value, source in config.rows():
        origin = source if source.startswith("derived") else f"from {source}"
        say(f"setting: {variable}={value}  ({flag or 'pass-through'}, {origin})", settings_row=True)
    for warning in config.warnings:
        say(f"warning: {warning}")
    say(version_line())
    say(integrations_line(config))
    say(interpreter_line(command))
    missing = missing_instrumentations()
    if missing:
        names = ", ".join(f"{library} ({requirement})" for library, requirement in missing)
        say(f"not instrumented: {names}; installed, each loads when its library is imported")
        say("  pip install " + " ".join(f"'{requirement}'" for _, requirement in missing))
    else:
        say("not instrumented: none (every library of the contrib's table that is installed has its instrumentation)")
    transport = Transport.from_env(config, env, timeout)
    service = config.service_name or "otel-launch-doctor"
    exporters = {"traces": config.traces_exporter, "metrics": config.metrics_exporter, "logs": config.logs_exporter}
    status = 0
    tls = "TLS" if transport.endpoint.startswith("https") else "no TLS"
    for signal in SIGNALS:
        if config.config_file is not None:  # the file's exporters, not the variables it replaces
            chosen = _file_delivery(config, signal, timeout)
            if isinstance(chosen, str):
                say(chosen)
                continue
            transport, url, headers = chosen
            answer = transport.send(signal, url, service, headers)
            status = status if answer.accepted else 1
            tls = "TLS" if url.startswith("https") else "no TLS"
            described = f"{transport.protocol} to {mask_url(url)}, {tls}, compression {transport.compression}"
            names = ",".join(headers) or "none"
            say(f"delivery: {signal} (from the file: {described}, headers {names}): {answer.text}")
            continue
        if "otlp" not in (exporters[signal] or ()):
            say(f"delivery: {signal}: not sent (the {signal} exporter is {','.join(exporters[signal]) or 'none'})")
            continue
        url = transport.url(signal, env)
        headers = transport.headers_for(signal, config)
        answer = transport.send(signal, url, service, headers)
        status = status if answer.accepted else 1
        described = f"{transport.protocol} to {mask_url(url)}, {tls}, compression {transport.compression}"
        header_names = ",".join(headers) or "none"
        say(f"delivery: {signal} ({described}, headers {header_names}): {answer.text}")
    say("result: " + ("every signal that is on was accepted" if status == 0 else "NOT every signal was accepted"))
    return status


def _command() -> click.Command:
    def doctor(command: tuple[str, ...], env_file: str | None, no_env_file: bool, timeout: float, **settings: Any):
        """Check the configuration and prove delivery: otel-launch doctor [OPTIONS] [-- COMMAND]."""
        if env_file is not None and no_env_file:
            raise _usage("--env-file and --no-env-file cannot be used together")
        chosen = None if no_env_file else (env_file if env_file is not None else _AUTO)
        try:
            config = Config(env_file=chosen, command=command, **{k: v for k, v in settings.items() if v is not None})
        except ConfigError as exc:
            raise _usage(str(exc)) from None
        return run_doctor(config, command, timeout)

    decorated: Any = click.argument("command", nargs=-1, type=click.UNPROCESSED)(doctor)
    decorated = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 120),
        default=5.0,
        show_default=True,
        help="Seconds to wait for the collector's answer, per signal.",
    )(decorated)
    decorated = click.option("--no-env-file", is_flag=True, help="Do not read ./.env.")(decorated)
    decorated = click.option("--env-file", metavar="PATH", default=None, help="Read OTEL_* settings from this file.")(
        decorated
    )
    for setting in reversed(SETTINGS):
        decorated = click.option(*setting.flags, setting.name, default=None, metavar="TEXT", help=setting.help)(
            decorated
        )
    return click.command(name="doctor", context_settings={"help_option_names": ["-h", "--help"]})(decorated)


class _UsageError(click.ClickException):
    exit_code = 2


def _usage(message: str) -> click.ClickException:
    return _UsageError(message)


doctor_command = _command()
