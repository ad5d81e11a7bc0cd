"""``otel-launch tail`` as a user runs it: bad values refused in one line, ports that cannot be shared, one tree."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from otel_launch._receiver import OTLPReceiver
from tests.conftest import clean_env, kill_group, launcher, run, start

pytestmark = pytest.mark.process


def tail(workdir: Path, *args: str, timeout: float = 20):
    return run([*launcher(), "tail", *args], clean_env(), workdir, timeout=timeout)


def started_tail(workdir: Path, *args: str):
    """A running tail on free ports, and its gRPC port read from its first line."""
    process = start([*launcher(), "tail", "--grpc-port", "0", "--http-port", "0", *args], clean_env(), workdir)
    line = process.stdout.readline() if "--json" not in args else process.stderr.readline()
    found = re.search(r"OTLP/gRPC on 127\.0\.0\.1:(\d+)", line)
    if not found:
        kill_group(process)
        pytest.fail(f"tail did not start: {line!r}")
    return process, int(found.group(1))


@pytest.mark.parametrize(
    "args, named",
    [
        (["--http-port", "70000"], "--http-port"),
        (["--grpc-port", "70000"], "--grpc-port"),
        (["--grpc-port", "-1"], "--grpc-port"),
        (["--settle", "-1"], "--settle"),
        (["--settle", "nan"], "--settle"),
        (["--settle", "inf"], "--settle"),
        (["--wait", "0"], "--wait"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(workdir: Path, args: list[str], named: str):
    result = tail(workdir, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("otel-launch: error:") and named in result.stderr
    assert result.stdout == ""


def test_short_help_works_like_the_launchers(workdir: Path):
    result = tail(workdir, "-h")
    assert result.returncode == 0 and "--grpc-port" in result.stdout and "--json" in result.stdout


def test_a_second_receiver_cannot_share_the_grpc_port():
    with OTLPReceiver(grpc_port=0, http_port=None) as first:
        second = OTLPReceiver(grpc_port=first.grpc_port, http_port=None)
        with pytest.raises(OSError):
            second.start()
        second.stop()


def test_two_tails_on_one_grpc_port_the_second_refuses_in_one_line(workdir: Path):
    first, port = started_tail(workdir)
    try:
        result = tail(workdir, "--grpc-port", str(port), "--http-port", "0")
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # no raw gRPC log line before ours
        assert f"cannot listen for OTLP/gRPC on 127.0.0.1:{port}" in result.stderr
    finally:
        kill_group(first)


def exporter_provider(port: int, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def finish(process) -> str:
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=20)
    except Exception:
        kill_group(process)
        raise
    assert process.returncode == 0, err
    return out


def test_worker_spans_arriving_after_the_webs_print_as_one_tree_rooted_at_the_post(workdir: Path):
    process, port = started_tail(workdir, "--settle", "0.3", "--wait", "8", "--no-metrics")
    try:
        web, worker = exporter_provider(port, "shop-web"), exporter_provider(port, "shop-worker")
        tracer = web.get_tracer("t")
        post = tracer.start_span("POST /orders/", kind=SpanKind.SERVER, attributes={"http.status_code": 201})
        publish = tracer.start_span("publish orders.fulfil", set_span_in_context(post), SpanKind.PRODUCER)
        publish.end()
        post.end()
        web.force_flush()
        time.sleep(1.0)  # the worker's batch comes well after the tail's settle time, as it does in real life
        worker_tracer = worker.get_tracer("t")
        worker_tracer.start_span("run/orders.fulfil", set_span_in_context(publish), SpanKind.CONSUMER).end()
        worker.force_flush()
        web.shutdown()
        worker.shutdown()
        # the trace prints on its own, once complete and quiet, before any exit flush
        deadline = time.monotonic() + 10
        lines = []
        while time.monotonic() < deadline and len(lines) < 4:
            lines.append(process.stdout.readline().rstrip("\n"))
    finally:
        output = finish(process) if process.poll() is None else ""
    trace_id = format(post.get_span_context().trace_id, "032x")
    assert lines[0] == f"trace {trace_id}  3 spans, " + lines[0].split(", ")[1], lines
    assert "(" not in lines[0], lines  # neither "continued" nor "updated" nor "incomplete"
    assert lines[1].startswith("  shop-web  POST /orders/") and "  201" in lines[1], lines
    assert lines[2].startswith("    shop-web  publish orders.fulfil"), lines
    assert lines[3].startswith("      shop-worker  run/orders.fulfil"), lines
    assert trace_id not in output  # printed once


def test_json_prints_one_object_per_span(workdir: Path):
    process, port = started_tail(workdir, "--json")
    try:
        provider = exporter_provider(port, "svc")
        provider.get_tracer("t").start_span("one", kind=SpanKind.SERVER, attributes={"http.status_code": 200}).end()
        provider.shutdown()
        line = process.stdout.readline()
    finally:
        finish(process)
    span = json.loads(line)
    assert span["name"] == "one" and span["kind"] == "server" and span["service"] == "svc"
    assert span["attributes"] == {"http.status_code": 200}


def test_port_probe_sees_a_plain_listener(workdir: Path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        result = tail(workdir, "--grpc-port", "0", "--http-port", str(held.getsockname()[1]))
    assert result.returncode == 1 and "cannot listen for OTLP/HTTP" in result.stderr
    assert result.stderr.count("\n") == 1
