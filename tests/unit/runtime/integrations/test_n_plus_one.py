"""N+1 detection's API, as the SQL path and the Celery integration call it (an SDK span, in-process)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext

from otel_launch._runtime.integrations.django import n_plus_one


@pytest.fixture
def threshold(monkeypatch):
    def set_to(value: int) -> None:
        monkeypatch.setattr(n_plus_one, "_threshold", value)

    set_to(5)
    return set_to


def _span():
    return TracerProvider().get_tracer("test").start_span("run/task")


def _run(span, statements: list[str]) -> None:
    watch = n_plus_one.begin(span)
    for statement in statements:
        n_plus_one.count(statement)
    n_plus_one.end(watch)
    span.end()


def test_the_most_repeated_statement_at_the_threshold_marks_the_span(threshold):
    span = _span()
    _run(span, ["SELECT a WHERE id = %s"] * 5 + ["SELECT b WHERE id = %s"] * 7 + ["SELECT c"])
    mark = {n_plus_one.STATEMENT: "SELECT b WHERE id = %s", n_plus_one.COUNT: 7}
    assert {k: span.attributes[k] for k in mark} == mark
    assert [(e.name, dict(e.attributes)) for e in span.events] == [("n_plus_one", mark)]


def test_below_the_threshold_or_off_nothing_is_marked(threshold):
    below = _span()
    _run(below, ["SELECT a WHERE id = %s"] * 4)
    threshold(0)
    off = _span()
    _run(off, ["SELECT a WHERE id = %s"] * 50)
    assert [dict(s.attributes) for s in (below, off)] == [{}, {}]
    assert [list(s.events) for s in (below, off)] == [[], []]


def test_nothing_is_counted_for_a_span_that_does_not_record_nor_outside_a_watch(threshold):
    assert n_plus_one.begin(NonRecordingSpan(SpanContext(1, 1, False))) is None
    n_plus_one.count("SELECT 1")  # no watch: a no-op
    assert n_plus_one._counts.get() is None


def test_watches_nest_and_restore_the_outer_count(threshold):
    outer, inner = _span(), _span()
    outer_watch = n_plus_one.begin(outer)
    n_plus_one.count("SELECT outer")
    _run(inner, ["SELECT inner"] * 6)
    for _ in range(4):
        n_plus_one.count("SELECT outer")
    n_plus_one.end(outer_watch)
    assert inner.attributes[n_plus_one.COUNT] == 6
    assert outer.attributes[n_plus_one.COUNT] == 5
    assert n_plus_one._counts.get() is None
