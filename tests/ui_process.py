"""What the tests of ``otel-launch ui`` as a process share: start it, read its API, send it spans."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.helpers import clean_env, kill_group, launcher, start

UI_ARGS = ["ui", "--port", "0", "--grpc-port", "0", "--http-port", "0", "--db", ":memory:"]


class UI:
    def __init__(self, process: subprocess.Popen, line: str):
        self.process, self.line = process, line
        found = re.search(
            r"(http://127\.0\.0\.1:(\d+))/ .*OTLP/gRPC on 127\.0\.0\.1:(\d+), OTLP/HTTP on [\d.]+:(\d+)", line
        )
        assert found, line
        self.url, self.port = found.group(1), int(found.group(2))
        self.grpc_port, self.http_port = int(found.group(3)), int(found.group(4))

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())

    def raw_get(self, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        """GET with this ``Host`` header, as a browser on a rebinding name would send it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest("GET", path, skip_host=True)
            connection.putheader("Host", host)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def trace_ids(self, limit: int = 1000) -> list[str]:
        """The stored traces, newest first."""
        return [trace["trace_id"] for trace in self.get(f"/api/traces?limit={limit}")[1]["traces"]]

    def post_otlp(self, body: bytes, **headers: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            connection.request(
                "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf", **headers}
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


@contextlib.contextmanager
def running_ui(workdir: Path, *args: str):
    """A running ui; on leaving, stopped by SIGTERM and checked: exit 0, nothing on stderr."""
    process = start([*launcher(), *UI_ARGS, *args], clean_env(), workdir)
    try:
        line = process.stdout.readline()
        if not line.startswith("otel-launch ui:"):
            kill_group(process)
            pytest.fail(f"ui did not start: {line!r} {process.stderr.read()}")
        yield UI(process, line)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                kill_group(process)
    stderr = process.stderr.read()
    assert process.returncode == 0 and "Traceback" not in stderr, stderr


def provider(exporter, service: str) -> TracerProvider:
    made = TracerProvider(resource=Resource.create({"service.name": service}))
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


def wait_for(check, what: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout}s")
