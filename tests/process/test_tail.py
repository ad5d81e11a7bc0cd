"""``otel-launch tail`` as a user runs it: bad values refused in one line, ports that cannot be shared, one tree;
terminal-safe output, bounded memory, one bad span costing only itself, restartable at once."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from otel_launch.local.receiver import OTLPReceiver
from tests.helpers import clean_env, free_port, kill_group, launcher, run, start
from tests.otlp_requests import (
    NOW,
    HttpClient,
    grpc_export,
    heavy_resource_request,
    log_request,
    many_minimal_spans,
    memory,
    one_kb_rounds,
    restarts_at_once,
    span,
    trace_request,
)

pytestmark = pytest.mark.process
# The tests marked `once` hold the local tools' bounds under volume: the same on every release (their own
# code, protobuf, the store), so the matrix runs them in its full cell only.


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
        (["--max-bytes", "10K"], "--max-bytes"),
        (["--max-bytes", "lots"], "--max-bytes"),
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


# -- terminal-safe -----------------------------------------------------------------------------

# A title change (OSC 0 ... BEL), a screen clear (CSI 2J), a hyperlink (OSC 8), a clipboard write
# (OSC 52), the 8-bit CSI (C1, U+009B) and a bidi override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\link\x1b]52;c;cHduZWQ=\x07\x9b31m\u202e"


def binary_tail(workdir: Path, *args: str) -> tuple[subprocess.Popen, int, int]:
    """A tail whose output is read as bytes (text mode would hide what reaches the terminal)."""
    process = subprocess.Popen(
        [*launcher(), "tail", "--grpc-port", "0", "--http-port", "0", *args],
        env=clean_env(),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    line = (process.stderr if "--json" in args else process.stdout).readline().decode()
    found = re.search(r"OTLP/gRPC on 127\.0\.0\.1:(\d+), OTLP/HTTP on 127\.0\.0\.1:(\d+)", line)
    if not found:
        kill_group(process)
        pytest.fail(f"tail did not start: {line!r}")
    return process, int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["tree", "json"])
def test_hostile_span_and_log_text_reaches_the_terminal_escaped(workdir: Path, mode: list[str]):
    process, grpc_port, http_port = binary_tail(workdir, "--settle", "0.2", *mode)
    try:
        attributes = {"http.status_code": HOSTILE, "http.route": "/r" + HOSTILE, "db.system": "postgresql"}
        attributes["db.statement"] = "SELECT " + HOSTILE
        spans = [
            span(0xC1, 1, name="GET " + HOSTILE, attributes=attributes, kind=3),
            span(0xC1, 2, parent=1, name="child" + HOSTILE, status={"code": 2, "message": "boom" + HOSTILE}),
        ]
        client = HttpClient(http_port)
        client.export(trace_request(spans, service="svc" + HOSTILE))
        grpc_export(grpc_port, log_request("log" + HOSTILE, service="svc" + HOSTILE, severity="WARN" + HOSTILE))
        client.close()
    finally:  # SIGINT prints every trace still held
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert b"svc" in out and (b"\\u001b" if mode else b"\\x1b") in out, out  # printed, escaped
    for raw in (b"\x1b", b"\x07", "\x9b".encode(), "\u202e".encode()):
        assert raw not in out, (raw, out)
    if not mode:
        assert b"\\x1b]0;pwned\\x07" in out and b"\\x9b31m" in out and b"\\u202e" in out, out
        assert b"log  svc" in out, out


# -- one bad span never costs the others -----------------------------------------------------


def test_a_loop_of_parents_beside_three_normal_traces_is_refused_alone(workdir: Path):
    process, port = started_tail(workdir, "--settle", "0.2", "--no-metrics")
    try:
        normal = [part for trace in (0xD1, 0xD2, 0xD3) for part in (span(trace, 1), span(trace, 2, parent=1))]
        hostile = [span(0xD4, 10, parent=11), span(0xD4, 11, parent=10), span(0xD5, 12, parent=12)]
        response = grpc_export(port, trace_request(normal[:3] + hostile + normal[3:]))
        assert response.partial_success.rejected_spans == 2, response
        assert "loop of parents" in response.partial_success.error_message
        assert "their own parent" in response.partial_success.error_message
        headers = [line for line in read_lines(process, 9) if line.startswith("trace ")]
    finally:
        finish(process)
    for trace in (0xD1, 0xD2, 0xD3):
        assert any(line.startswith(f"trace {trace:032x}  2 spans") for line in headers), headers


def read_lines(process, count: int, timeout: float = 15) -> list[str]:
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline and len(lines) < count:
        lines.append(process.stdout.readline().rstrip("\n"))
    return lines


def test_a_text_plain_post_is_refused_and_prints_nothing(workdir: Path):
    process, _, http_port = binary_tail(workdir, "--settle", "0.2", "--no-metrics")
    try:
        client = HttpClient(http_port)
        body = trace_request([span(0xE1, 1, name="from a web page")]).SerializeToString()
        assert client.post("/v1/traces", body, **{"Content-Type": "text/plain"})[0] == 415
        client = HttpClient(http_port)  # a refusal closes the connection
        client.export(trace_request([span(0xE2, 1, name="from the app")]))
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert b"from the app" in out and b"from a web page" not in out, out


# -- bounded -----------------------------------------------------------------------------------

RSS_ROUNDS = 3
RSS_BOUND = 16 * 1024 * 1024  # docs: "flat within 16 MiB of the first round" (a small --max-bytes)
# The default --max-bytes (64M) is not always reached in the first round: how much of it is held
# depends on how far the exports run ahead of the printing. docs: the peak stays within twice the
# cap over tail's RSS at start (measured: 80-86 MiB over it); keeping every span reached 419 MB.
DEFAULT_CAP_BOUND = 2 * 64 * 1024 * 1024


@pytest.mark.once
@pytest.mark.parametrize("cap", [[], ["--max-bytes", "8M"]], ids=["default", "small cap"])
def test_memory_is_flat_across_rounds_of_60000_one_kb_spans(workdir: Path, cap: list[str]):
    process, grpc_port, http_port = binary_tail(workdir, "--settle", "0.2", "--wait", "1", "--no-metrics", *cap)
    printed, changed = [0], threading.Condition()

    def count_traces() -> None:
        for line in process.stdout:
            if line.startswith(b"trace "):
                with changed:
                    printed[0] += 1
                    changed.notify_all()

    threading.Thread(target=count_traces, daemon=True).start()
    after, (idle, _) = [], memory(process.pid)
    try:
        client = HttpClient(http_port)
        for number in range(1, RSS_ROUNDS + 1):
            for index, body in enumerate(one_kb_rounds(number, 60_000)):
                if index % 2:
                    assert client.post("/v1/traces", body)[0] == 200
                else:
                    grpc_export(grpc_port, trace_request([]).FromString(body))
            with changed:
                assert changed.wait_for(lambda number=number: printed[0] >= 6000 * number, 120), printed
            after.append(memory(process.pid))
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)
        kill_group(process)
    rss, peak = after[0]
    shown = [(r // 2**20, p // 2**20) for r, p in after]  # MiB: (VmRSS, VmHWM) after each round
    print(f"MiB at start {idle // 2**20}, (VmRSS, VmHWM) after each round: {shown}")  # -rP shows it
    if not cap:
        assert all(later_peak <= idle + DEFAULT_CAP_BOUND for _, later_peak in after), (idle // 2**20, shown)
        return
    for later_rss, later_peak in after[1:]:
        assert later_rss <= rss + RSS_BOUND and later_peak <= peak + RSS_BOUND, shown


# -- restart at once ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["stopped", "crashed"])
def test_restarts_on_the_same_ports_at_once_after_exports_and_a_held_connection(workdir: Path, stop: int):
    ports = [free_port(), free_port()]
    args = [*launcher(), "tail", "--grpc-port", str(ports[0]), "--http-port", str(ports[1]), "--no-metrics"]
    restarts_at_once(workdir, args, ports[0], ports[1], stop)


# -- what one export can cost ------------------------------------------------------------------

# README: one export, however its 20 MiB are made, raises the peak by at most 160 MiB (measured: about
# 105 MiB for 430,000 spans of 48 bytes, most of it the parsed protobuf message).
GROWTH_BOUND = 160 * 1024 * 1024


def test_a_chain_of_1000_spans_prints_whole(workdir: Path):
    process, _, http_port = binary_tail(workdir, "--settle", "0.2", "--no-metrics")
    try:
        chain = [span(0xF1, index + 1, parent=index, start=NOW + index) for index in range(1000)]
        client = HttpClient(http_port)
        client.export(trace_request(chain))
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and b"Traceback" not in err, err[-2000:]
    lines = out.decode().splitlines()
    assert lines[0].startswith(f"trace {0xF1:032x}  1000 spans"), lines[:2]
    assert len(lines) == 1001 and lines[-1].startswith(" " * 66 + "[depth 999] svc  span"), lines[-1]


def exports_in_a_row(http_port: int, bodies, **headers: str) -> list[trace_pb.ExportTraceServiceResponse]:
    client, answers = HttpClient(http_port), []
    for body in bodies:
        status, answer = client.post("/v1/traces", body, **headers)
        assert status == 200, (status, answer[:300])
        answers.append(trace_pb.ExportTraceServiceResponse.FromString(answer))
    client.close()
    return answers


def unfinished_traces_under_their_own_resource(count: int, values: int, size: int) -> Iterator[bytes]:
    """Exports of one span whose parent never comes (its trace stays unfinished), each under a
    resource of its own of ``values`` values of ``size`` characters, gzipped."""
    for number in range(count):
        request = heavy_resource_request([span(0x1000 + number, 1, parent=7)], values=values, size=size)
        yield gzip.compress(request.SerializeToString())


def test_each_resource_counts_in_the_bound(workdir: Path):
    """Resources of 12 KiB under 300 one-span traces: over 1 MiB only when they count."""
    process, _, http_port = binary_tail(workdir, "--wait", "60", "--max-bytes", "1M", "--no-metrics")
    try:
        exports_in_a_row(http_port, unfinished_traces_under_their_own_resource(300, 60, 200), **GZIP)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert out.count(b"(printed early: tail holds at most 1 MiB of spans") > 200, out[-1000:]


@pytest.mark.once
def test_exports_of_megabyte_resources_leave_memory_flat(workdir: Path):
    """Resources of 127 values of 16 KiB (2 MiB; a few kilobytes gzipped) under 300 unfinished traces."""
    process, _, http_port = binary_tail(workdir, "--wait", "60", "--max-bytes", "8M", "--no-metrics")
    try:
        rss, _ = memory(process.pid)
        exports_in_a_row(http_port, unfinished_traces_under_their_own_resource(300, 127, 16384), **GZIP)
        _, peak = memory(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert peak - rss < GROWTH_BOUND, ((rss >> 20), (peak >> 20))  # MiB
    assert out.count(b"  heavy  span") == 300


@pytest.mark.once
def test_an_export_of_430000_tiny_spans_in_one_trace_holds_5000_and_says_so(workdir: Path):
    process, _, http_port = binary_tail(workdir, "--wait", "60", "--max-bytes", "8M", "--no-metrics")
    try:
        rss, _ = memory(process.pid)
        (answer,) = exports_in_a_row(http_port, [many_minimal_spans(430_000, one_trace=True)], **GZIP)
        _, peak = memory(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert answer.partial_success.rejected_spans == 425_000, answer
    assert "425000 beyond the 5000 spans a trace holds" in answer.partial_success.error_message
    assert peak - rss < GROWTH_BOUND, ((rss >> 20), (peak >> 20))  # MiB
    # printed once quiet (while the rest of the export was refused), then whole again with late ones
    assert out.startswith(b"trace %032x  5000 spans" % 1), out[:500]


GZIP = {"Content-Encoding": "gzip"}


def test_calls_that_never_send_do_not_stall_an_export(workdir: Path):
    process, grpc_port, _ = binary_tail(workdir, "--no-metrics")
    hold, channels = threading.Event(), []

    def never():
        hold.wait(30)
        yield from ()

    try:
        for _ in range(2):  # as many as tail read at a time before
            channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
            grpc.channel_ready_future(channel).result(timeout=10)  # connected: the call starts at once
            stalled = channel.stream_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=bytes,
                response_deserializer=bytes,
            )
            channels.append((channel, stalled.future(never(), timeout=30)))
        answer = grpc_export(grpc_port, trace_request([span(0xF2, 1)]), timeout=10)
        assert answer.partial_success.rejected_spans == 0
    finally:
        hold.set()
        for channel, _ in channels:
            channel.close()
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def test_json_lines_hold_no_bare_nan(workdir: Path):
    process, _, http_port = binary_tail(workdir, "--json")
    try:
        made = span(0xF3, 1)
        made.attributes.add(key="ratio").value.double_value = float("nan")
        made.attributes.add(key="limit").value.double_value = float("inf")
        exports_in_a_row(http_port, [trace_request([made]).SerializeToString()])
        line = process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)

    def refuse(constant: str):
        raise ValueError(f"bare {constant} in a JSON line")

    assert json.loads(line, parse_constant=refuse)["attributes"] == {"ratio": "NaN", "limit": "Infinity"}
