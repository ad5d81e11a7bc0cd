"""``otel-launch doctor`` against real receivers: accepted, unreachable, 401, partial success, TLS, timeout."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from otel_launch.local.receiver import OTLPReceiver
from tests.helpers import clean_env, closed_port, launcher, run

pytestmark = pytest.mark.process
TOKEN = "s3cr3t-t0ken-value"


def doctor(workdir: Path, *args: str, **env: str):
    environment = clean_env(**env)
    environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environment.get("PATH", "")
    result = run([*launcher(), "doctor", "--no-env-file", "--timeout", "3", *args], environment, workdir, timeout=60)
    assert TOKEN not in result.stdout + result.stderr  # secrets masked everywhere
    return result


def delivery(result, signal: str) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"delivery: {signal}")]
    return line


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_accepted_by_the_packages_receiver_exit_0(workdir: Path, protocol: str):
    with OTLPReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        args = ["--protocol", protocol, "--endpoint", endpoint, "--headers", f"authorization=Bearer%20{TOKEN}"]
        result = doctor(workdir, *args, "--service-name", "checkout", OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
        assert receiver.wait_for(lambda r: r.spans and r.points, timeout=5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert delivery(result, "traces").endswith(": accepted") and delivery(result, "metrics").endswith(": accepted")
    assert "compression gzip" in delivery(result, "traces") and "headers authorization" in delivery(result, "traces")
    assert "delivery: logs: not sent" in result.stdout
    assert [span.name for span in receiver.spans] == ["otel-launch doctor"]
    assert receiver.spans[0].service == "checkout" and receiver.spans[0].transport == protocol.split("/")[0]
    assert [point.metric for point in receiver.points] == ["otel_launch.doctor"]
    assert "OTEL_EXPORTER_OTLP_HEADERS=authorization=" in result.stdout  # the name shown, never the value
    assert "versions: otel-launch" in result.stdout and "opentelemetry-sdk 1." in result.stdout
    assert "integrations: django: loads" in result.stdout
    # The catalogue's too: jinja2's instrumentation is installed by the test extra.
    assert "jinja2: loads when jinja2 is imported" in result.stdout


def test_a_closed_port_is_unreachable_exit_1(workdir: Path):
    result = doctor(workdir, "--endpoint", f"http://127.0.0.1:{closed_port()}")
    assert result.returncode == 1
    assert "unreachable" in delivery(result, "traces") and "unreachable" in delivery(result, "metrics")


def test_401_over_http_exit_1(workdir: Path):
    with OTLPReceiver(grpc_port=None, answer_status=401) as receiver:
        args = ["--protocol", "http/protobuf", "--endpoint", receiver.http_endpoint]
        result = doctor(workdir, *args, OTEL_EXPORTER_OTLP_HEADERS=f"api-key={TOKEN}")
    assert result.returncode == 1
    assert ": 401 unauthorized" in delivery(result, "traces") and ": 401" in delivery(result, "metrics")


def test_401_over_grpc_exit_1(workdir: Path):
    with OTLPReceiver(http_port=None, answer_status=401) as receiver:
        result = doctor(workdir, "--endpoint", receiver.grpc_endpoint)
    assert result.returncode == 1 and ": 401 unauthenticated" in delivery(result, "traces")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_with_its_message_exit_1(workdir: Path, protocol: str):
    with OTLPReceiver(partial_success=(1, "span too old")) as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        result = doctor(workdir, "--protocol", protocol, "--endpoint", endpoint)
    assert result.returncode == 1
    assert delivery(result, "traces").endswith(": partial success: 1 rejected: span too old")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_tls_to_a_plain_server_is_a_tls_failure(workdir: Path, protocol: str):
    with OTLPReceiver() as receiver:
        port = receiver.grpc_port if protocol == "grpc" else receiver.http_port
        result = doctor(workdir, "--protocol", protocol, "--endpoint", f"https://127.0.0.1:{port}")
    assert result.returncode == 1 and "TLS failure" in delivery(result, "traces")
    assert result.stderr == ""  # gRPC's own log lines are not printed over the answer


def test_a_collector_that_never_answers_is_a_timeout(workdir: Path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nothing ever answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = doctor(workdir, "--protocol", "http/protobuf", "--endpoint", endpoint, "--timeout", "0.5")
    assert result.returncode == 1 and "timeout: no answer within 0.5 s" in delivery(result, "traces")


def test_bad_settings_exit_2_in_one_line(workdir: Path):
    result = doctor(workdir, "--protocol", "carrier-pigeon")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--protocol" in result.stderr


def test_the_apps_interpreter_and_missing_instrumentations(workdir: Path):
    result = doctor(workdir, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--", "python")
    assert f"runs {os.path.dirname(sys.executable)}" in result.stdout and ": this one" in result.stdout
    script = doctor(workdir, "--traces-exporter", "none", "--metrics-exporter", "none", "--", "gunicorn")
    assert f"gunicorn runs {sys.executable}: this one" in script.stdout  # read from its #! line
    assert script.returncode == 0 and "delivery: traces: not sent" in script.stdout
    if os.path.exists("/usr/bin/python3") and not sys.prefix.startswith("/usr"):
        other = doctor(workdir, "--endpoint", f"http://127.0.0.1:{closed_port()}", "--", "/usr/bin/python3")
        assert "NOT this one" in other.stdout
    # click is installed here (the launcher needs it); its instrumentation is not
    assert "click " in result.stdout and "pip install" in result.stdout
    assert "'opentelemetry-instrumentation-click==" in result.stdout
    # requests' instrumentation comes with otel-launch: never listed as missing
    assert "'opentelemetry-instrumentation-requests==" not in result.stdout


class _HeaderRecorder:
    """An HTTP collector that records the headers of each export and accepts it (an empty body
    is an empty Export*ServiceResponse): what the doctor sends, as it arrives."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received[self.path] = {k.lower(): v for k, v in self.headers.items()}
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _HeaderRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


SIGNAL_TOKEN = "traces-0nly-t0ken-value"


def test_per_signal_headers_are_sent_in_place_of_the_general_ones(workdir: Path):
    with _HeaderRecorder() as collector:
        result = doctor(
            workdir,
            *("--protocol", "http/protobuf", "--endpoint", collector.endpoint, "--logs-exporter", "otlp"),
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-traces-key={SIGNAL_TOKEN},x-team=web",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SIGNAL_TOKEN not in result.stdout + result.stderr
    sent = collector.received
    assert sent["/v1/traces"]["x-traces-key"] == SIGNAL_TOKEN and "authorization" not in sent["/v1/traces"]
    for signal in ("metrics", "logs"):
        assert (
            sent[f"/v1/{signal}"]["authorization"] == f"Bearer {TOKEN}" and "x-traces-key" not in sent[f"/v1/{signal}"]
        )
    assert "headers x-traces-key,x-team" in delivery(result, "traces")
    assert "headers authorization" in delivery(result, "metrics")
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-traces-key=***,x-team=***" in result.stdout


def test_with_a_configuration_file_the_files_exporters_are_checked(workdir: Path):
    pytest.importorskip("opentelemetry.configuration", reason="the config extra (contrib 0.65b0 and newer)")
    with _HeaderRecorder() as collector:
        config = workdir / "otel.yaml"
        config.write_text(
            'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
            f"          otlp_http:\n            endpoint: {collector.endpoint}/v1/traces\n"
            f'            headers_list: "x-file-key={TOKEN}"\n'
        )
        result = doctor(
            workdir,
            *("--config-file", str(config)),
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",  # ignored: the file configures it
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert collector.received["/v1/traces"]["x-file-key"] == TOKEN
    assert "delivery: traces (from the file: http/protobuf to " in delivery(result, "traces")
    assert "headers x-file-key" in delivery(result, "traces")
    for signal in ("metrics", "logs"):
        assert "not sent (the configuration file has no otlp_grpc/otlp_http exporter" in delivery(result, signal)


def test_an_empty_per_signal_headers_variable_sends_no_headers(workdir: Path):
    with _HeaderRecorder() as collector:
        result = doctor(
            workdir,
            *("--protocol", "http/protobuf", "--endpoint", collector.endpoint),
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "authorization" not in collector.received["/v1/traces"]  # as the SDK: the signal's own, empty
    assert collector.received["/v1/metrics"]["authorization"] == f"Bearer {TOKEN}"
    assert "headers none" in delivery(result, "traces")
