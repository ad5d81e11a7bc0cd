"""Trace trees printed by otel-launch tail."""

from __future__ import annotations

from otel_launch._receiver import ReceivedSpan
from otel_launch._tail import TraceAssembler, render_trace


def span(name, span_id, parent="", start=0, end=1_000_000, service="web", status="UNSET", trace="t1", message=""):
    return ReceivedSpan(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=1,
        start_ns=start,
        end_ns=end,
        status=status,
        status_message=message,
        attributes={},
        resource={"service.name": service},
        scope="s",
    )


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
        "  web  GET /orders/<int:pk>/  12.3 ms  UNSET",
        "    web  SELECT  0.4 ms  UNSET",
        "    web  publish add  1.0 ms  UNSET",
        "      worker  run/add  2.0 ms  ERROR: boom",
    ]


def test_span_whose_parent_is_elsewhere_is_a_root():
    assert render_trace("t1", [span("remote child", "x", parent="not-here")])[1] == "  web  remote child  1.0 ms  UNSET"


def test_trace_prints_once_quiet_and_late_spans_print_as_continuation():
    printed = []
    assembler = TraceAssembler(settle=1.0, emit=printed.append)
    assembler.add([span("root", "a")])
    assembler.release(now=0.0)
    assert printed == []  # not quiet long enough
    import time

    now = time.monotonic()
    assembler.release(now=now + 1.5)
    assert printed[0][0].startswith("trace t1  1 span,")
    assembler.add([span("late", "b", parent="a")])
    assembler.release(now=time.monotonic() + 1.5)
    assert printed[1][0].endswith("(continued)")
