"""The package's OTLP receiver as a server: bounded, timed, framed as HTTP/1.1 says; decoding within
the viewers' limits; the spans a viewer refuses, answered as OTLP's partial success."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from otel_launch.local.listen import is_loopback_address, is_loopback_host, listening_socket, port_free
from otel_launch.local.receiver import (
    VIEWER_LIMITS,
    Limits,
    OTLPReceiver,
    ReceivedSpan,
    Rejected,
    check_spans,
    closes_cycle,
    decode_spans,
)
from tests.otlp_requests import grpc_export, kv, span, trace_request


def raw(port: int, data: bytes, timeout: float = 10.0, shut: bool = False) -> bytes:
    """Send bytes on a fresh connection and read the answer until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and not shut:
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-protobuf", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


BODY = trace_request([span(0xAB, 1, name="one")]).SerializeToString()
TWO = trace_request([span(0xAB, 1, name="one"), span(0xAB, 2, parent=1, name="two")]).SerializeToString()


def _cut_at_a_flush() -> bytes:
    """A gzip stream of two requests one after the other (one request of two resources), cut just
    after the first was flushed: it inflates to a whole request, but the stream has no end."""
    first = trace_request([span(0xAC, 1, name="first")]).SerializeToString()
    deflater = zlib.compressobj(wbits=31)
    return deflater.compress(first) + deflater.flush(zlib.Z_FULL_FLUSH)


AT_A_FLUSH = _cut_at_a_flush()


# -- HTTP/1.1 as a server must ----------------------------------------------------------------


def test_a_chunked_body_is_received():
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:7], BODY[7:])) + b"0\r\n\r\n"
    with OTLPReceiver(grpc_port=None) as receiver:
        answer = raw(receiver.http_port, post("/v1/traces", chunked, "Transfer-Encoding: chunked"))
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert [s.name for s in receiver.spans] == ["one"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ([], b"411"),  # no length: the body cannot be framed
        (["Content-Length: 5", "Transfer-Encoding: chunked"], b"400"),
        (["Content-Length: 5", "Content-Length: 6"], b"400"),
        (["Content-Length: -1"], b"400"),
        (["Transfer-Encoding: gzip, chunked"], b"501"),
    ],
)
def test_bodies_that_cannot_be_framed_are_refused(headers: list[str], status: bytes):
    with OTLPReceiver(grpc_port=None) as receiver:
        answer = raw(receiver.http_port, post("/v1/traces", b"", *headers), shut=True)
        assert answer.startswith(b"HTTP/1.1 " + status), answer
        assert receiver.spans == []


@pytest.mark.parametrize(
    "head, body, status",
    [
        (["Content-Length: \u00b2"], b"", b"400"),  # (latin-1) a digit to str.isdigit(), not to int()
        (["Content-Length: " + "9" * 5000], b"", b"400"),  # more digits than int() takes
        (["Transfer-Encoding: chunked"], b"1" * 70_000 + b"\r\n", b"400"),  # a chunk size of 70,000 digits
        (["Transfer-Encoding: chunked"], b"1" * 2**20 + b"\r\n", b"431"),  # a line h11 holds over 64 KiB
        (["Transfer-Encoding: chunked"], b"0\r\nX: " + b"y" * 2**20 + b"\r\n\r\n", b"431"),  # a trailer too
        # a whole request, but for the two bytes after its chunk (h11 before 0.16 skipped them unread)
        (["Transfer-Encoding: chunked"], b"%x\r\n%sXY0\r\n\r\n" % (len(BODY), BODY), b"400"),
        (["Host: second.example", f"Content-Length: {len(BODY)}"], BODY, b"400"),  # two Host headers
        (["Content-Type: text/plain", f"Content-Length: {len(BODY)}"], BODY, b"400"),  # two Content-Types
    ],
    # Named: the body's times are the run's, so ids made of it would differ between pytest-xdist's workers.
    ids=[
        "length-not-int",
        "length-5000-digits",
        "chunk-size-70000-digits",
        "chunk-line-over-64k",
        "trailer-over-64k",
        "bytes-after-chunk",
        "two-hosts",
        "two-content-types",
    ],
)
def test_malformed_requests_are_answered_not_crashed_on(capfd, head: list[str], body: bytes, status: bytes):
    with OTLPReceiver(grpc_port=None) as receiver:
        lines = ["POST /v1/traces HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/x-protobuf", *head]
        answer = raw(receiver.http_port, "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body, shut=True)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
        assert receiver.spans == []
        assert raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}")).startswith(
            b"HTTP/1.1 200"
        )
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("method", ["HEAD", "GET", "PUT"])
def test_other_methods_are_405_a_head_request_answered_without_a_body(capfd, method: str):
    with OTLPReceiver(grpc_port=None) as receiver:
        answer = raw(receiver.http_port, f"{method} /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405") and b"Allow: POST" in head, answer
        assert (body == b"") == (method == "HEAD"), answer
    assert capfd.readouterr().err == ""


def test_a_413_is_read_by_a_client_that_sends_its_whole_body_first():
    """Most clients write the whole body before reading: the server answers, then drains."""
    with OTLPReceiver(grpc_port=None, max_request_bytes=1024 * 1024) as receiver:
        big = b"\0" * (16 * 1024 * 1024)  # more than the sockets buffer: the server must read it
        answer = raw(receiver.http_port, post("/v1/traces", big, f"Content-Length: {len(big)}"))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"at most 1048576" in answer


def test_a_client_that_asks_first_gets_its_413_without_sending():
    with OTLPReceiver(grpc_port=None, max_request_bytes=1024) as receiver:
        answer = raw(receiver.http_port, post("/v1/traces", b"", "Content-Length: 5000", "Expect: 100-continue"))
        assert answer.startswith(b"HTTP/1.1 413"), answer


def test_expect_continue_then_the_body():
    with OTLPReceiver(grpc_port=None) as receiver, socket.create_connection(("127.0.0.1", receiver.http_port)) as sock:
        sock.settimeout(10)
        sock.sendall(post("/v1/traces", b"", f"Content-Length: {len(BODY)}", "Expect: 100-continue"))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        assert sock.recv(1000).startswith(b"HTTP/1.1 200")
        assert len(receiver.spans) == 1


def test_one_connection_carries_several_exports():
    with OTLPReceiver(grpc_port=None) as receiver, socket.create_connection(("127.0.0.1", receiver.http_port)) as sock:
        sock.settimeout(10)
        for _ in range(3):
            sock.sendall(post("/v1/traces", BODY, f"Content-Length: {len(BODY)}"))
            assert sock.recv(1000).startswith(b"HTTP/1.1 200")
        assert len(receiver.spans) == 3


def test_a_body_that_never_comes_is_answered_408_and_costs_no_thread():
    with OTLPReceiver(grpc_port=None, body_timeout=0.5) as receiver:
        threads = threading.active_count()
        sockets = [socket.create_connection(("127.0.0.1", receiver.http_port)) for _ in range(50)]
        try:
            for sock in sockets:
                sock.sendall(post("/v1/traces", b"", "Content-Length: 1000"))
            assert threading.active_count() <= threads + 2  # the handler's pool, never one per connection
            for sock in sockets:
                sock.settimeout(10)
                assert sock.recv(1000).startswith(b"HTTP/1.1 408")
        finally:
            for sock in sockets:
                sock.close()


def test_bodies_announced_and_never_sent_hold_no_budget():
    """Two connections announce the largest body allowed and send nothing: the next export goes through."""
    with OTLPReceiver(grpc_port=None, max_request_bytes=1024 * 1024, body_timeout=30) as receiver:
        stalled = [socket.create_connection(("127.0.0.1", receiver.http_port)) for _ in range(3)]
        try:
            for sock in stalled:
                sock.sendall(post("/v1/traces", b"", f"Content-Length: {1024 * 1024}"))
            # well under the 30 s a stalled body may take: an answer at once, not after their time-out
            answer = raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}"), timeout=10)
            assert answer.startswith(b"HTTP/1.1 200"), answer
        finally:
            for sock in stalled:
                sock.close()


def test_a_grpc_call_that_never_sends_holds_its_reader_for_the_connections_age_only(monkeypatch):
    import otel_launch.local.receiver as receiver_module

    monkeypatch.setattr(receiver_module, "GRPC_CONNECTION_AGE", 1.0)
    monkeypatch.setattr(receiver_module, "GRPC_AGE_GRACE", 1.0)
    hold = threading.Event()

    def never():
        hold.wait(60)
        yield from ()

    with OTLPReceiver(http_port=None, grpc_workers=1) as receiver:
        channel = grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
            export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            stalled = channel.stream_unary(export, request_serializer=bytes, response_deserializer=bytes)
            call = stalled.future(never(), timeout=60)
            # the one reader is held until the stalled call's connection is closed, a few seconds on;
            # an export that waited that long may be cut with its own connection: exporters retry it
            for _ in range(10):
                try:
                    grpc_export(receiver.grpc_port, trace_request([span(0xAD, 1)]), timeout=30)
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            else:
                pytest.fail("no export went through")
            assert call.exception(timeout=30).code() == grpc.StatusCode.UNAVAILABLE
            assert receiver.counts["traces"] == 1
        finally:
            hold.set()
            channel.close()


def test_connections_beyond_the_bound_are_answered_503_and_the_server_keeps_serving():
    with OTLPReceiver(grpc_port=None, max_connections=4) as receiver:
        idle = [socket.create_connection(("127.0.0.1", receiver.http_port)) for _ in range(4)]
        try:
            deadline = time.monotonic() + 10
            answer = b""
            while not answer.startswith(b"HTTP/1.1 503") and time.monotonic() < deadline:
                answer = raw(receiver.http_port, b"", timeout=2)  # accepted once the 4 are counted
            assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer, answer
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 10
        while not answer.startswith(b"HTTP/1.1 200") and time.monotonic() < deadline:  # once the 4 are gone
            answer = raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}"))
        assert answer.startswith(b"HTTP/1.1 200"), answer


def test_an_idle_connection_is_closed_after_the_header_time_out():
    with OTLPReceiver(grpc_port=None, header_timeout=0.3) as receiver:
        sock = socket.create_connection(("127.0.0.1", receiver.http_port), timeout=10)
        with sock:
            assert sock.recv(100) == b""  # closed by the server, without an answer


def test_tls_to_the_plain_port_is_refused_at_once():
    with OTLPReceiver(grpc_port=None) as receiver:
        answer = raw(receiver.http_port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        assert answer.startswith(b"HTTP/1.1 400"), answer


@pytest.mark.parametrize(
    "content_type, encoding, status",
    [
        ("application/x-protobuf", "", 200),
        ("application/x-protobuf; charset=binary", "identity", 200),
        ("text/plain", "", 415),
        ("application/json", "", 415),
        ("application/x-www-form-urlencoded", "", 415),
        ("application/x-protobuf", "br", 415),
    ],
)
def test_only_protobuf_plain_gzip_or_deflate(content_type: str, encoding: str, status: int):
    with OTLPReceiver(grpc_port=None) as receiver:
        headers = [f"Content-Length: {len(BODY)}", f"Content-Type: {content_type}"]
        headers += [f"Content-Encoding: {encoding}"] if encoding else []
        lines = ["POST /v1/traces HTTP/1.1", "Host: 127.0.0.1", *headers]
        answer = raw(receiver.http_port, ("\r\n".join(lines) + "\r\n\r\n").encode() + BODY)
        assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer
        assert len(receiver.spans) == (1 if status == 200 else 0)


def test_a_host_check_refuses_other_names():
    with OTLPReceiver(grpc_port=None, allowed_host=is_loopback_host) as receiver:
        foreign = post("/v1/traces", BODY, f"Content-Length: {len(BODY)}").replace(b"127.0.0.1", b"evil.example")
        assert raw(receiver.http_port, foreign).startswith(b"HTTP/1.1 403")
        assert raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}")).startswith(
            b"HTTP/1.1 200"
        )


@pytest.mark.parametrize(
    "body, encoding, names",
    [
        (gzip.compress(TWO)[:-21], "gzip", None),  # cut short: the trailer and some data missing
        (AT_A_FLUSH, "gzip", None),  # cut where what came so far is a whole request of one span
        (gzip.compress(TWO)[:10], "gzip", None),  # the header only
        (b"", "gzip", None),  # nothing at all
        (zlib.compress(TWO) + b"more", "deflate", None),  # bytes after the end
        (gzip.compress(TWO[:40]) + gzip.compress(TWO[40:]), "gzip", ["one", "two"]),  # two members: one body
    ],
    ids=["cut", "cut at a flush", "header only", "empty", "trailing bytes", "two members"],
)
def test_compressed_bodies_are_taken_whole_or_refused(body: bytes, encoding: str, names):
    with OTLPReceiver(grpc_port=None) as receiver:
        answer = raw(
            receiver.http_port,
            post("/v1/traces", body, f"Content-Length: {len(body)}", f"Content-Encoding: {encoding}"),
        )
        if names is None:
            assert answer.startswith(b"HTTP/1.1 400"), answer
            assert receiver.spans == []
        else:
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert [s.name for s in receiver.spans] == names


# -- what the front ends get and answer -------------------------------------------------------


def test_a_viewer_keeps_nothing_and_answers_its_rejections_as_partial_success():
    handed: list[list[ReceivedSpan]] = []

    def on_receive(signal, batches):
        handed.append([span for batch in batches for span in batch])
        rejected = Rejected()
        rejected.add("not wanted", 2)
        return rejected

    with OTLPReceiver(keep=False, on_receive=on_receive, limits=VIEWER_LIMITS) as receiver:
        http = raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}"))
        answer = trace_pb.ExportTraceServiceResponse.FromString(http.partition(b"\r\n\r\n")[2])
        assert answer.partial_success.rejected_spans == 2
        assert answer.partial_success.error_message == "2 spans refused: 2 not wanted"
        answer = grpc_export(receiver.grpc_port, trace_request([span(0xAC, 1)]))
        assert answer.partial_success.rejected_spans == 2
        assert receiver.spans == [] and receiver.counts["traces"] == 2
        assert [[s.name for s in items] for items in handed] == [["one"], ["span"]]


def test_a_callback_that_raises_fails_the_export_in_one_line_and_the_server_goes_on(capfd):
    calls = []

    def on_receive(signal, items):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("store is broken")

    with OTLPReceiver(keep=False, on_receive=on_receive, limits=VIEWER_LIMITS) as receiver:
        assert raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}")).startswith(
            b"HTTP/1.1 500"
        )
        with pytest.raises(grpc.RpcError) as failed:
            grpc_export(receiver.grpc_port, trace_request([span(0xAC, 1)]))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        assert raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}")).startswith(
            b"HTTP/1.1 200"
        )
    err = capfd.readouterr().err
    assert err.count("otel-launch: receiver: an export could not be handled: RuntimeError: store is broken") == 2
    assert "Traceback" not in err


def test_without_a_callback_nothing_is_decoded():
    with OTLPReceiver(grpc_port=None, keep=False) as receiver:
        raw(receiver.http_port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}"))
        assert receiver.spans == [] and receiver.counts["traces"] == 1


# -- decoding within limits ------------------------------------------------------------------


def test_long_values_are_cut_and_marked_and_counts_are_capped():
    limits = Limits(value_chars=10, attributes=3, events=2, array_items=2, depth=2)
    hostile = span(0xA, 1, name="n" * 50, attributes={f"k{i}": "v" * 20 for i in range(5)})
    hostile.events.add(name="e", attributes=[kv("message", "m" * 30)])
    hostile.events.add(name="e2")
    hostile.events.add(name="e3")
    nested = hostile.attributes.add(key="a")
    nested.value.array_value.values.add().string_value = "x"
    nested.value.array_value.values.add().array_value.values.add().array_value.values.add().string_value = "deep"
    nested.value.array_value.values.add().string_value = "third"
    hostile.dropped_attributes_count = 7
    (decoded,) = decode_spans(trace_request([hostile]), "http", limits)
    assert decoded.name == "n" * 10 + "... [truncated: 50 characters]"
    assert decoded.attributes == {f"k{i}": "v" * 10 + "... [truncated: 20 characters]" for i in range(3)}
    assert decoded.dropped_attributes == 7 + 3  # the sender's, plus two attributes and the array over the cap
    assert decoded.events[0] == {"name": "e", "message": "m" * 10 + "... [truncated: 30 characters]"}
    assert len(decoded.events) == 2 and decoded.dropped_events == 1
    exact = decode_spans(trace_request([hostile]), "http")[0]  # the tests' receiver: exactly as sent
    assert exact.name == "n" * 50 and len(exact.attributes) == 6 and len(exact.events) == 3


def test_nested_values_stop_at_the_depth_and_arrays_at_their_cap():
    limits = Limits(array_items=2, depth=2)
    made = span(0xA, 1)
    value = made.attributes.add(key="a").value
    for item in ("x", "y", "z"):
        value.array_value.values.add().string_value = item
    deep = made.attributes.add(key="b").value
    deep.array_value.values.add().array_value.values.add().array_value.values.add().string_value = "deep"
    (decoded,) = decode_spans(trace_request([made]), "http", limits)
    assert decoded.attributes["a"] == ["x", "y", "... [truncated: 3 values]"]
    assert decoded.attributes["b"] == [["[array of 1 values, nested too deep]"]]


def test_doubles_that_are_not_finite_read_as_strings():
    made = span(0xA, 1)
    for key, number in (("nan", float("nan")), ("inf", float("inf")), ("minus", float("-inf")), ("pi", 3.14)):
        made.attributes.add(key=key).value.double_value = number
    made.attributes.add(key="list").value.array_value.values.add().double_value = float("nan")
    (decoded,) = decode_spans(trace_request([made]), "http", VIEWER_LIMITS)
    assert decoded.attributes == {"nan": "NaN", "inf": "Infinity", "minus": "-Infinity", "pi": 3.14, "list": ["NaN"]}


def test_a_resource_keeps_what_fits_in_its_bytes_service_name_first():
    request = trace_request([span(0xA, 1)], service="shop")
    resource = request.resource_spans[0].resource
    for index in range(40):
        resource.attributes.append(kv(f"r{index:02}", "v" * 1000))
    resource.attributes.append(kv("service.name", "shop"))  # a second one, last: the last value wins
    (decoded,) = decode_spans(request, "http", Limits(resource_bytes=8 * 1024))
    kept = decoded.resource
    assert list(kept)[0] == "service.name" and kept["service.name"] == "shop"
    assert 5 <= len(kept) - 2 <= 8 and kept["otel_launch.resource.dropped_attributes"] == 41 - (len(kept) - 1)
    assert list(kept)[1:-1] == [f"r{index:02}" for index in range(len(kept) - 2)]  # in the order sent
    (exact,) = decode_spans(request, "http")
    assert len(exact.resource) == 41


def test_an_export_is_handed_over_in_batches():
    from otel_launch.local.receiver import BATCH, decoded

    request = trace_request([span(0xA, index + 1) for index in range(2 * BATCH + 7)])
    assert [len(batch) for batch in decoded("traces", request, "http", VIEWER_LIMITS)] == [BATCH, BATCH, 7]
    sizes = []

    def on_receive(signal, batches):
        sizes.extend(len(batch) for batch in batches)

    with OTLPReceiver(grpc_port=None, keep=False, on_receive=on_receive) as receiver:
        answer = raw(
            receiver.http_port, post("/v1/traces", body := request.SerializeToString(), f"Content-Length: {len(body)}")
        )
        assert answer.startswith(b"HTTP/1.1 200") and sizes == [BATCH, BATCH, 7]
        assert receiver.counts["traces"] == 2 * BATCH + 7


# -- which spans a viewer keeps ----------------------------------------------------------------

NOW = 1_700_000_000 * 10**9


def received(span_id="00000000000000aa", parent="", start=NOW, end=NOW + 1, trace="0" * 31 + "1") -> ReceivedSpan:
    return ReceivedSpan(trace, span_id, parent, "n", 1, start, end, "UNSET", "", {}, {}, "s")


@pytest.mark.parametrize(
    "bad, reason",
    [
        (received(trace="0" * 32), "invalid trace or span id"),
        (received(span_id="abc"), "invalid trace or span id"),
        (received(parent="00"), "invalid parent span id"),
        (received(parent="00000000000000aa"), "their own parent"),
        (received(start=0), "impossible times"),
        (received(end=NOW - 1), "impossible times"),
        (received(end=2**63), "impossible times"),
        (received(start=NOW + 2 * 24 * 3600 * 10**9, end=NOW + 3 * 24 * 3600 * 10**9), "impossible times"),
    ],
)
def test_spans_that_cannot_be_are_refused_one_by_one(bad: ReceivedSpan, reason: str):
    good = received(span_id="00000000000000bb")
    kept, rejected = check_spans([good, bad], now_ns=NOW)
    assert kept == [good] and rejected.count == 1 and reason in rejected.message, rejected.message


def test_a_zero_parent_id_means_a_root():
    kept, rejected = check_spans([received(parent="0" * 16)], now_ns=NOW)
    assert rejected.count == 0 and kept[0].parent_span_id == ""


def test_a_span_twice_in_one_export_is_kept_once():
    kept, rejected = check_spans([received(), received()], now_ns=NOW)
    assert len(kept) == 1 and rejected.reasons == {"sent twice in one export": 1}


def test_loops_of_parents():
    assert closes_cycle("a", "b", {"b": "c", "c": "a"})
    assert closes_cycle("a", "a", {})
    assert not closes_cycle("a", "b", {"b": "c", "c": ""})
    assert closes_cycle("a", "b", {"b": "c", "c": "d", "d": "c"})  # a loop above it: refused too, and the walk ends


# -- listening and Host checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header, local",
    [
        ("127.0.0.1:16686", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("localhost:16686", True),
        ("LOCALHOST", True),
        ("[::1]:16686", True),
        ("[::1]", True),
        ("[::ffff:127.0.0.1]:80", True),
        ("evil.example", False),
        ("evil.example:16686", False),
        ("127.0.0.1.nip.io:16686", False),
        ("localhost.evil.example", False),
        ("localhost:", False),
        ("localhost:80x", False),
        ("[::1]x", False),
        ("10.0.0.1:16686", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(header, local):
    assert is_loopback_host(header) is local


def test_loopback_addresses():
    assert is_loopback_address("127.0.0.1") and is_loopback_address("::1") and is_loopback_address("localhost")
    assert not is_loopback_address("0.0.0.0") and not is_loopback_address("::")


def test_a_port_the_server_closed_connections_on_listens_again_at_once_and_is_never_shared():
    with OTLPReceiver(grpc_port=None) as first:
        port = first.http_port
        for _ in range(5):  # connections the server closes: TIME_WAIT on its side
            assert raw(port, post("/v1/traces", BODY, f"Content-Length: {len(BODY)}", "Connection: close"))
        assert port_free("127.0.0.1", port) is not None
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", port).close()
    assert port_free("127.0.0.1", port) is None
    with OTLPReceiver(grpc_port=None, http_port=port) as again:
        assert again.http_port == port
