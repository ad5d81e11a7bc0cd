"""Trace trees printed by otel-launch tail."""

from __future__ import annotations

import json

from otel_launch.local.receiver import span_size, value_size
from otel_launch.local.tail import TraceAssembler, compact_name, missing_parts, render_trace, span_json, terminal_safe
from tests.helpers import received_span as span

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


def test_tree_nests_children_under_parents_in_start_order():
    spans = [
        span(
            "run/add", "c", parent="b", start=3_000_000, end=5_000_000, service="worker", status="ERROR", message="boom"
        ),
        span("GET /orders/<int:pk>/", "a", end=12_300_000),
        span("publish add", "b", parent="a", start=1_000_000, end=2_000_000),
        span("SELECT", "d", parent="a", start=500_000, end=900_000),
    ]
    assert render_trace("t1", spans) == [
        "trace t1  4 spans, 12.3 ms",
        "  web  GET /orders/<int:pk>/  12.3 ms",
        "    web  SELECT  0.4 ms",
        "    web  publish add  1.0 ms",
        "      worker  run/add  2.0 ms  ERROR: boom",
    ]


def test_span_whose_parent_is_elsewhere_is_marked():
    line = render_trace("t1", [span("remote child", "x", parent="not-here")])[1]
    assert line == "  web  remote child  1.0 ms  (parent not received)"


def test_the_real_root_comes_first_even_when_an_orphan_started_earlier():
    spans = [span("orphan", "x", parent="gone", start=0), span("POST /orders/", "a", start=5)]
    lines = render_trace("t1", spans)
    assert lines[1].startswith("  web  POST /orders/")


def test_status_route_statement_and_queue_time_per_kind():
    spans = [
        span("POST orders/", "a", kind=SERVER, end=9_000_000, http__status_code=201, http__route="orders/"),
        span("SELECT", "b", parent="a", kind=CLIENT, db__statement="SELECT * FROM orders_order WHERE id = ?"),
        span("publish fulfil", "c", parent="a", kind=PRODUCER, start=1_000_000, end=2_000_000),
        span(
            "run/fulfil", "d", parent="c", kind=CONSUMER, start=7_000_000, end=8_000_000, celery__task__queue_time=0.005
        ),
        span("GET x/", "e", trace="t2", kind=SERVER, **{"otel_launch.n_plus_one.statement": "SELECT 1", "x": 1}),
    ]
    lines = render_trace("t1", spans[:4])
    assert lines[1] == "  web  POST orders/  9.0 ms  201"  # the route is in the name already
    assert lines[2] == "    web  SELECT  1.0 ms  statement=SELECT * FROM orders_order WHERE id = ?"
    assert lines[4] == "      web  run/fulfil  1.0 ms  queued=5.0 ms  gap after publish 5.0 ms"
    assert "n+1 statement=SELECT 1" in render_trace("t2", spans[4:])[1]


def test_redis_pipelines_read_compactly():
    assert compact_name("LLEN LLEN LLEN LLEN") == "LLEN x4"
    assert compact_name("MULTI SET SET EXEC") == "MULTI SET x2 EXEC"
    assert compact_name("GET /orders/") == "GET /orders/"
    pipeline = span("LLEN LLEN LLEN", "p", kind=CLIENT, db__statement="LLEN ?\nLLEN ?\nLLEN ?", db__system="redis")
    assert render_trace("t1", [pipeline])[1] == "  web  LLEN x3  1.0 ms"


def test_json_line_per_span():
    decoded = json.loads(span_json(span("POST orders/", "a", kind=SERVER, http__status_code=201)))
    assert decoded["kind"] == "server" and decoded["attributes"] == {"http.status_code": 201}
    assert decoded["parent_span_id"] is None and decoded["service"] == "web"


def test_complete_trace_prints_once_quiet():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    assembler.add([span("root", "a")], now=0.0)
    assembler.release(now=0.5)
    assert printed == []  # not quiet long enough
    assembler.release(now=1.5)
    assert printed == [["trace t1  1 span, 1.0 ms", "  web  root  1.0 ms"]]
    assembler.release(now=30)
    assert len(printed) == 1


def test_publish_without_its_run_waits_for_the_worker_then_prints_one_tree():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    assembler.add([span("POST /orders/", "a", kind=SERVER), span("publish f", "b", parent="a", kind=PRODUCER)], now=0)
    assembler.release(now=5)
    assert printed == []  # the run span is still to come
    assembler.add([span("run/f", "c", parent="b", kind=CONSUMER, service="worker")], now=6)
    assembler.release(now=7.5)
    assert printed == [
        [
            "trace t1  3 spans, 1.0 ms",
            "  web  POST /orders/  1.0 ms",
            "    web  publish f  1.0 ms",
            "      worker  run/f  1.0 ms  gap after publish -1.0 ms",
        ]
    ]


def test_worker_spans_first_wait_for_their_root():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    assembler.add([span("run/f", "c", parent="b", kind=CONSUMER, service="worker")], now=0)
    assembler.release(now=3)
    assert printed == []
    assembler.add([span("POST /orders/", "a", kind=SERVER), span("publish f", "b", parent="a", kind=PRODUCER)], now=4)
    assembler.release(now=5.5)
    assert [line.strip().split("  ")[0] for line in printed[0][1:]] == ["web", "web", "worker"]


def test_incomplete_trace_prints_after_wait_marked_and_late_spans_reprint_it_whole():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    assembler.add([span("POST /orders/", "a", kind=SERVER), span("publish f", "b", parent="a", kind=PRODUCER)], now=0)
    assembler.release(now=10.5)
    assert printed[0][0].endswith("(incomplete: no run span of publish f)")
    assembler.add([span("run/f", "c", parent="b", kind=CONSUMER, service="worker")], now=20)
    assembler.release(now=21.5)
    assert printed[1][0] == "trace t1  3 spans, 1.0 ms  (updated: re-printed whole with 1 late span)"
    assert len(printed[1]) == 4


def test_everything_pending_prints_at_exit():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    assembler.add([span("run/f", "c", parent="b", kind=CONSUMER)], now=0)
    assembler.release(now=0, everything=True)
    assert "incomplete: no root span, no parent of 1 span" in printed[0][0]


# -- terminal-safe ---------------------------------------------------------------------------


def test_every_control_character_is_escaped():
    text = "".join(chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)])
    safe = terminal_safe(text)
    assert all(0x20 <= ord(char) < 0x7F for char in safe), safe
    assert safe.startswith("\\x00\\x01") and "\\x1b" in safe and "\\x9b" in safe and "\\n" in safe and "\\t" in safe
    assert terminal_safe("caf\u00e9 \u20ac ok") == "caf\u00e9 \u20ac ok"  # printable text untouched
    assert terminal_safe("a\u202eb\u2066c") == "a\\u202eb\\u2066c"  # bidi overrides reorder the line


def test_a_cut_value_never_splits_an_escape():
    """Values are cut to their cap before they are escaped: an escape is always whole."""
    statement = "SELECT " + "\x1b" * 200
    hostile = span("q", "a", kind=CLIENT, db__statement=statement, db__system="postgresql")
    (line,) = [terminal_safe(line) for line in render_trace("t1", [hostile])[1:]]
    shown = line.split("statement=")[1]
    assert shown.endswith("\\x1b...") and "\x1b" not in line
    assert shown.removesuffix("...").removeprefix("SELECT ").replace("\\x1b", "") == ""


def test_names_and_messages_are_capped_on_one_line():
    long = span("n" * 5000, "a", status="ERROR", message="m\nm" * 3000, service="s" * 500)
    line = render_trace("t1", [long])[1]
    assert len(line) < 700 and "\n" not in line


# -- bounded ---------------------------------------------------------------------------------


def test_over_its_bound_tail_prints_the_oldest_unfinished_traces_early():
    printed = []
    publishes = [span("publish", "b", trace=f"t{index}", kind=PRODUCER) for index in range(5)]
    one = span_size(publishes[0]) + value_size(publishes[0].resource)  # each trace holds its resource too
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10, max_bytes=one * 3)
    for publish in publishes:  # five unfinished traces: a publish each, no run span yet
        assembler.add([publish], now=0)
    assert [lines[0].split()[1] for lines in printed] == ["t0", "t1"]
    assert all("(printed early: tail holds at most" in lines[0] for lines in printed), printed
    assert assembler.held_bytes <= assembler.max_bytes


def test_printed_traces_are_let_go_after_wait_and_late_spans_print_as_a_continuation():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=5)
    assembler.add([span("POST /orders/", "a", kind=SERVER)], now=0)
    assembler.release(now=1.5)
    assert assembler.held_bytes > 0  # held for --wait, for a late span's re-print
    assembler.release(now=7)
    assert assembler.held_bytes == 0
    assembler.add([span("late", "z", parent="a")], now=8)
    assembler.release(now=20)
    assert printed[1][0] == "trace t1  1 span, 1.0 ms  (continued: 1 late span of a trace printed before with 1)"
    assert printed[1][1] == "  web  late  1.0 ms  (parent not received)"


def test_spans_over_the_per_trace_cap_are_counted():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, max_spans_per_trace=2)
    assembler.add([span("root", "a"), span("b", "b", parent="a"), span("c", "c", parent="a")], now=0)
    assembler.release(now=2)
    assert printed[0][0] == "trace t1  2 spans, 1.0 ms  (1 more spans not kept (at most 2 a trace))"


def test_a_span_that_closes_a_loop_is_refused_and_its_trace_prints():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10)
    rejected = assembler.add([span("a", "a", parent="b"), span("b", "b", parent="a")], now=0)
    assert rejected.count == 1 and "loop of parents" in rejected.message
    assembler.release(now=0, everything=True)
    assert printed[0][1] == "  web  a  1.0 ms  (parent not received)"


def test_a_trace_whose_every_span_was_refused_prints_nothing():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append)
    assert assembler.add([span("self", "a", parent="a")], now=0).count == 1
    assembler.release(now=0, everything=True)
    assert printed == [] and assembler.held_bytes == 0


def test_spans_over_the_per_trace_cap_are_refused_with_the_reason():
    assembler = TraceAssembler(settle=1.0, emit=[].append, max_spans_per_trace=2)
    rejected = assembler.add([span("root", "a"), span("b", "b", parent="a"), span("c", "c", parent="a")], now=0)
    assert rejected.reasons == {"beyond the 2 spans a trace holds": 1}


def test_each_resource_counts_in_the_bound_once_a_trace():
    """A resource is shared by the spans of one export: counted once in each trace that holds it."""
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append, wait=10, max_bytes=4 * 1024 * 1024)
    for index in range(8):  # unfinished traces (their parents missing), a 1 MB resource each
        lonely = span("run", "a", parent="gone", trace=f"t{index}")
        lonely.resource = {"service.name": "w", "big": "x" * 1024 * 1024}
        assembler.add([lonely], now=0)
    assert assembler.held_bytes <= 4 * 1024 * 1024
    assert [lines[0].split()[1] for lines in printed] == ["t0", "t1", "t2", "t3", "t4"]
    shared = {"service.name": "w", "big": "x" * 1024 * 1024}
    spans = [span(f"s{i}", f"{i}", parent="gone", trace="one") for i in range(50)]
    for made in spans:
        made.resource = shared
    again = TraceAssembler(settle=1.0, emit=printed.append, max_bytes=4 * 1024 * 1024)
    again.add(spans, now=0)
    assert 1024 * 1024 < again.held_bytes < 2 * 1024 * 1024  # fifty spans, one resource


def test_a_chain_of_any_depth_prints_its_indent_capped():
    chain = [span(f"s{i}", f"{i}", parent=f"{i - 1}" if i else "", start=i) for i in range(5000)]
    lines = render_trace("t1", chain)
    assert len(lines) == 5001
    assert lines[33].startswith(" " * 66 + "web  s32") and lines[34].startswith(" " * 66 + "[depth 33] web  s33")
    assert lines[-1] == " " * 66 + "[depth 4999] web  s4999  1.0 ms"


def test_a_trace_that_cannot_print_costs_one_line_and_the_others_print(monkeypatch):
    import otel_launch.local.tail as tail_module

    real = tail_module.render_trace

    def fails_for_t1(trace_id, spans, note=""):
        if trace_id == "t1":
            raise ValueError("cannot")
        return real(trace_id, spans, note)

    monkeypatch.setattr(tail_module, "render_trace", fails_for_t1)
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append)
    assembler.add([span("a", "a", trace="t1"), span("b", "b", trace="t2", start=5)], now=0)
    assembler.release(now=0, everything=True)
    assert printed[0] == ["trace t1  could not be printed: ValueError: cannot"]
    assert printed[1][1] == "  web  b  1.0 ms"


def test_every_field_is_capped_and_line_separators_escaped():
    hostile = span(
        "run",
        "a",
        kind=CONSUMER,
        celery__task__queue_time="q" * 5000,
        **{f"otel_launch.n_plus_one.{'k' * 3000}{i}": "v" for i in range(10)},
    )
    publishes = [span(f"{i:02}" + "p" * 3000, f"p{i}", parent="a", kind=PRODUCER) for i in range(20)]
    lines = render_trace("t1", [hostile, *publishes], "incomplete: no " + ", no ".join(missing_parts(publishes)))
    assert all(len(line) < 1200 for line in lines), [len(line) for line in lines]
    assert "+6 more n+1 flags" in lines[1] and "and 17 more" in lines[0]
    assert terminal_safe("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
