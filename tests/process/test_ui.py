"""``otel-launch ui`` as a process: OTLP in (gRPC and HTTP), the JSON API out, bad exports refused."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from tests.conftest import clean_env, kill_group, launcher, run, start

pytestmark = pytest.mark.process
UI_ARGS = ["ui", "--port", "0", "--grpc-port", "0", "--http-port", "0", "--db", ":memory:"]


class UI:
    def __init__(self, process: subprocess.Popen, line: str):
        self.process = process
        found = re.search(
            r"(http://127\.0\.0\.1:\d+)/ .*OTLP/gRPC on 127\.0\.0\.1:(\d+), OTLP/HTTP on [\d.]+:(\d+)", line
        )
        assert found, line
        self.url, self.grpc_port, self.http_port = found.group(1), int(found.group(2)), int(found.group(3))

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())

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


@pytest.fixture
def ui(workdir: Path):
    process = start([*launcher(), *UI_ARGS, "--max-traces", "5"], clean_env(), workdir)
    try:
        yield UI(process, process.stdout.readline())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                kill_group(process)
        assert process.returncode == 0, process.stderr.read()


def provider(exporter, service: str) -> TracerProvider:
    made = TracerProvider(resource=Resource.create({"service.name": service}))
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


def wait_for(check, what: str, timeout: float = 10):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout}s")


def test_spans_from_two_processes_and_transports_are_one_trace_in_the_api(ui: UI):
    web = provider(GrpcExporter(endpoint=f"http://127.0.0.1:{ui.grpc_port}", insecure=True), "shop-web")
    worker = provider(HttpExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/traces"), "shop-worker")
    post = web.get_tracer("t").start_span("POST /orders/", kind=SpanKind.SERVER, attributes={"http.status_code": 201})
    publish = web.get_tracer("t").start_span("apply_async/fulfil", set_span_in_context(post), SpanKind.PRODUCER)
    trace_id = format(post.get_span_context().trace_id, "032x")
    # the worker's run span arrives first, over HTTP; its trace has no root yet
    run_span = worker.get_tracer("t").start_span("run/fulfil", set_span_in_context(publish), SpanKind.CONSUMER)
    run_span.record_exception(ValueError("card declined"))
    run_span.set_status(Status(StatusCode.ERROR, "card declined"))
    run_span.end()
    wait_for(lambda: ui.get("/api/traces")[1]["traces"], "the run span stored")
    publish.end()
    post.end()
    web.shutdown()
    worker.shutdown()
    listed = wait_for(
        lambda: [t for t in ui.get("/api/traces")[1]["traces"] if t["span_count"] == 3], "the whole trace listed"
    )
    (summary,) = listed
    assert summary["trace_id"] == trace_id and summary["root_name"] == "POST /orders/"
    assert summary["services"] == ["shop-web", "shop-worker"] and summary["error_count"] == 1
    status, trace = ui.get(f"/api/traces/{trace_id}")
    by_name = {span["name"]: span for span in trace["spans"]}
    assert by_name["run/fulfil"]["parent_span_id"] == by_name["apply_async/fulfil"]["span_id"]
    assert by_name["apply_async/fulfil"]["parent_span_id"] == by_name["POST /orders/"]["span_id"]
    assert by_name["POST /orders/"]["attributes"] == {"http.status_code": 201}
    assert by_name["run/fulfil"]["events"][0]["exception.message"] == "card declined"
    assert by_name["run/fulfil"]["resource"]["service.name"] == "shop-worker"
    assert by_name["run/fulfil"]["status"] == "ERROR" and by_name["run/fulfil"]["kind"] == "consumer"
    # the filters as query parameters
    assert ui.get("/api/traces?status=error")[1]["traces"][0]["trace_id"] == trace_id
    assert ui.get("/api/traces?status=ok")[1]["traces"] == []
    assert ui.get("/api/traces?service=shop-worker&q=fulfil")[1]["traces"][0]["trace_id"] == trace_id
    assert ui.get("/api/traces?min_duration_ms=100000")[1]["traces"] == []


def test_broken_and_huge_exports_are_refused_and_the_server_keeps_serving(ui: UI):
    status, body = ui.post_otlp(b"\xff\xff not protobuf")
    assert status == 400 and b"cannot decode" in body  # a google.rpc.Status
    status, body = ui.post_otlp(b"", **{"Content-Length": str(1 << 40)})
    assert status == 413
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024 + 1), compresslevel=1)
    status, body = ui.post_otlp(bomb, **{"Content-Encoding": "gzip"})
    assert status == 400 and b"inflates beyond" in body
    assert ui.get("/api/traces")[0] == 200 and ui.process.poll() is None
    exporter = HttpExporter(endpoint=f"http://127.0.0.1:{ui.http_port}/v1/traces")
    provider(exporter, "after").get_tracer("t").start_span("still works").end()
    wait_for(lambda: ui.get("/api/traces")[1]["traces"], "a span stored after the bad requests")


def test_the_store_is_bounded(ui: UI):
    made = provider(GrpcExporter(endpoint=f"http://127.0.0.1:{ui.grpc_port}", insecure=True), "svc")
    for index in range(8):
        made.get_tracer("t").start_span(f"trace {index}").end()
    made.shutdown()
    listed = wait_for(lambda: (r := ui.get("/api/traces")[1]) and "trace 7" in str(r) and r, "the last trace stored")
    assert listed["stored"] == 5 and [t["root_name"] for t in listed["traces"]] == [
        f"trace {i}" for i in range(7, 2, -1)
    ]


def test_bad_query_and_unknown_trace(ui: UI):
    for path, code in (
        ("/api/traces?min_duration_ms=nan", 400),
        ("/api/traces?status=x", 400),
        ("/api/traces/ab", 404),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            ui.get(path)
        assert refused.value.code == code


def test_without_the_extra_one_line_says_what_to_install(workdir: Path):
    blocker = workdir / "blocked" / "starlette"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named starlette')\n")
    env = clean_env(PYTHONPATH=str(workdir / "blocked"))
    result = run([*launcher(), *UI_ARGS], env, workdir, timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "pip install 'otel-launch[ui]'" in result.stderr, result.stderr


def test_bad_values_one_line_exit_2(workdir: Path):
    for args in (["--port", "70000"], ["--max-traces", "0"], ["--http-port", "x"]):
        result = run([*launcher(), "ui", *args], clean_env(), workdir, timeout=30)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and args[0] in result.stderr, result.stderr


def test_loopback_by_default(ui: UI):
    assert ui.url.startswith("http://127.0.0.1:")
    assert "-h" not in UI_ARGS
    help_text = run([*launcher(), "ui", "-h"], clean_env(), Path.cwd(), timeout=30).stdout
    assert "--all-interfaces" in help_text and "0.0.0.0" in help_text
