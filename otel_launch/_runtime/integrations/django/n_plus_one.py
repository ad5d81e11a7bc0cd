"""N+1 detection: the same statement run again and again while one server or task run span is current.

A view that loads a list and then one row per item runs one statement text (parameters are
placeholders, so the text repeats) once per item. While a watch is open (see :func:`begin`),
the SQL path counts each statement text in a dict; when the watch ends, a statement that ran
``OTEL_LAUNCH_N_PLUS_ONE_THRESHOLD`` times or more (default 5, 0 turns it off) marks the span
with ``otel_launch.n_plus_one.statement`` and ``otel_launch.n_plus_one.count`` and one span
event ``n_plus_one`` with the same attributes (the most repeated statement if several).

Cost: one dict a recording server/run span and one ``dict.get`` a query; no watch, no dict and
nothing counted when the span is not recording (tracing off or the request not sampled).

For task runs (the Celery integration calls it)::

    token = n_plus_one.begin(span)    # when the run span has started and is current
    ...                               # the task runs its queries
    n_plus_one.end(token)             # before the run span ends
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from typing import Any

STATEMENT = "otel_launch.n_plus_one.statement"
COUNT = "otel_launch.n_plus_one.count"
EVENT = "n_plus_one"

_counts: ContextVar[dict[str, int] | None] = ContextVar("otel_launch_n_plus_one", default=None)
_threshold: int | None = None


def threshold() -> int:
    """The setting, read once a process (0: off)."""
    global _threshold
    if _threshold is None:
        from otel_launch._core.settings import read_setting

        _threshold = read_setting("n_plus_one_threshold", os.environ)
    return _threshold


class _Watch:
    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Token) -> None:
        self.span, self.token = span, token


def begin(span: Any) -> _Watch | None:
    """Start counting statements for ``span`` in the current context; None when there is
    nothing to watch (detection off, or a span that records nothing)."""
    if not threshold() or not span.is_recording():
        return None
    return _Watch(span, _counts.set({}))


def end(watch: _Watch | None) -> None:
    """Stop counting; mark the span if one statement reached the threshold."""
    if watch is None:
        return
    counts = _counts.get()
    try:
        _counts.reset(watch.token)
    except ValueError:  # ended in another context than it began (an async hop): just clear it
        _counts.set(None)
    if not counts:
        return
    statement, count = max(counts.items(), key=lambda item: item[1])
    if count >= threshold():
        attributes = {STATEMENT: statement, COUNT: count}
        watch.span.set_attributes(attributes)
        watch.span.add_event(EVENT, attributes)


def count(statement: str) -> None:
    """Called by the SQL path for each statement run (its text, without parameter values)."""
    counts = _counts.get()
    if counts is not None:
        counts[statement] = counts.get(statement, 0) + 1
