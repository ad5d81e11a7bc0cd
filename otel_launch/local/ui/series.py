"""Pure arithmetic over stored metric points: deltas from cumulative points, steps, percentiles.

A counter or histogram is exported cumulative (each point the total since ``start``) or delta
(each point the change since the last export). :func:`deltas` turns the points of one
stream (one process, one attribute set) into changes: a cumulative point minus the one before
it; a point whose start moved, or whose value fell (a restarted process that kept its start,
an SDK that reset), is a reset: the new total counts whole, as Prometheus' ``increase`` reads a
counter reset. The first point of a stream counts whole only when its stream began inside the
window (its start is in it); otherwise it is the baseline the next point is measured from.

Each change covers an interval: from the point before to this one (from its start, for the first
point of a stream or a reset, and for a delta point). :func:`spread` shares it out over the steps
that interval overlaps, in proportion to the time of each step it covers, as Prometheus' ``rate``
reads a counter (the increase between two samples went on throughout the time between them): a
chart whose steps (10 s over 15 minutes) are shorter than the SDK's export interval (60 s by
default) shows the rate it covers in each step, not a zero in five of six steps and a spike in the
sixth.

Percentiles are computed as Prometheus' ``histogram_quantile`` does: the rank ``q * count``
falls in one bucket of the exported explicit bounds, and the value is interpolated linearly
between that bucket's lower and upper bound (the first bucket's lower bound is 0 when its upper
bound is positive; a rank in the last, unbounded bucket answers the largest finite bound).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)
MAX_POINTS = 120  # a chart's points over its window, when no step is asked for
SEVERITIES = (("TRACE", 1), ("DEBUG", 5), ("INFO", 9), ("WARN", 13), ("ERROR", 17), ("FATAL", 21))
_SEVERITY_BY_NAME = {name: number for name, number in SEVERITIES} | {"WARNING": 13, "CRITICAL": 21}


def default_step(window_s: float, max_points: int = MAX_POINTS) -> int:
    """The smallest round step (seconds) that gives the window at most ``max_points`` points."""
    for step in STEPS:
        if window_s / step <= max_points:
            return step
    return STEPS[-1]


def severity_name(number: int) -> str:
    """OTLP's severity number (1-24) as its short name; '' for unset."""
    if number <= 0:
        return ""
    for name, lowest in reversed(SEVERITIES):
        if number >= lowest:
            return name
    return ""


def severity_number(text: str) -> int:
    """The lowest number of a severity name (``warning`` and ``critical`` as Python names them);
    0 for an unknown one."""
    return _SEVERITY_BY_NAME.get(text.strip().upper(), 0)


@dataclass
class Point:
    """One stored point of a stream, as :func:`deltas` reads it: ``value`` a number (sums), or
    ``counts`` the bucket counts with ``value`` their sum of observations (histograms); or one
    change :func:`deltas` gives, over the interval from ``from_ns`` to ``time_ns``."""

    start_ns: int
    time_ns: int
    value: float
    count: float = 0
    counts: tuple[float, ...] = ()
    from_ns: int = 0  # of a change (deltas()): where the interval it covers begins (time_ns: none known)


def deltas(points: Sequence[Point], cumulative: bool, window_start_ns: int) -> list[Point]:
    """The change each point brings (time order), for the points at or after ``window_start_ns``;
    ``points`` sorted by time and may begin before the window (a baseline)."""
    changes: list[Point] = []
    previous: Point | None = None
    for point in points:
        if not cumulative:
            change = _whole(point, point.start_ns)
        elif previous is None:
            # A stream that started inside the window counts its first total whole; an older one is
            # the baseline (what it counted before the window is not the window's).
            change = _whole(point, point.start_ns) if point.start_ns >= window_start_ns and point.start_ns > 0 else None
        elif _reset(previous, point):
            # Counted since the restart (its start, when that is known to be after the point before).
            change = _whole(point, max(point.start_ns, previous.time_ns))
        else:
            change = Point(
                point.start_ns,
                point.time_ns,
                point.value - previous.value,
                point.count - previous.count,
                tuple(now - before for now, before in zip(point.counts, previous.counts, strict=True)),
                previous.time_ns,
            )
        previous = point
        if change is not None and point.time_ns >= window_start_ns:
            changes.append(change)
    return changes


def _whole(point: Point, from_ns: int) -> Point:
    """The point as a change over the interval from ``from_ns`` (none known: 0 or not before it)."""
    from_ns = from_ns if 0 < from_ns < point.time_ns else point.time_ns
    return Point(point.start_ns, point.time_ns, point.value, point.count, point.counts, from_ns)


def spread(
    from_ns: int, to_ns: int, first_step_ns: int, step_ns: int, steps: int, not_before_ns: int = 0
) -> list[tuple[int, float]]:
    """(step index, share) of a change over ``from_ns``..``to_ns``: each step it overlaps, with the
    part of the interval that step holds. The parts outside the steps, or before ``not_before_ns``
    (the window's start), belong to no step: the shares then add up to less than 1. A change of no
    interval falls whole in the step of ``to_ns``."""
    end_ns = first_step_ns + steps * step_ns
    if to_ns <= from_ns:
        index = (to_ns - first_step_ns) // step_ns
        return [(index, 1.0)] if 0 <= index < steps and to_ns >= not_before_ns else []
    low, high = max(from_ns, first_step_ns, not_before_ns), min(to_ns, end_ns)
    shares: list[tuple[int, float]] = []
    index = (low - first_step_ns) // step_ns
    while low < high:
        step_end = first_step_ns + (index + 1) * step_ns
        shares.append((index, (min(high, step_end) - low) / (to_ns - from_ns)))
        low, index = step_end, index + 1
    return shares


def _reset(previous: Point, point: Point) -> bool:
    if point.start_ns != previous.start_ns or point.count < previous.count:
        return True
    if len(point.counts) != len(previous.counts):
        return True
    if any(now < before for now, before in zip(point.counts, previous.counts, strict=True)):
        return True
    return not point.counts and point.value < previous.value


def step_index(time_ns: int, first_step_ns: int, step_ns: int) -> int:
    return (time_ns - first_step_ns) // step_ns


def step_starts(now_ns: int, window_s: float, step_s: int) -> tuple[int, int]:
    """(the first step's start in ns, the number of steps): steps aligned on multiples of the step
    since the epoch, the last one holding ``now``, together covering the window."""
    step_ns = step_s * 1_000_000_000
    last = now_ns // step_ns * step_ns
    steps = max(1, math.ceil(window_s / step_s))
    return last - (steps - 1) * step_ns, steps


def quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram (``len(counts) == len(bounds) + 1``), by linear
    interpolation inside the bucket the rank falls in; None for an empty histogram."""
    total = sum(counts)
    if total <= 0 or not counts or len(counts) != len(bounds) + 1:
        return None
    if not bounds:  # one unbounded bucket: nothing to interpolate between
        return None
    rank = q * total
    below = 0.0
    for index, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            if index == len(bounds):  # the unbounded bucket: its lower bound is all that is known
                return float(bounds[-1])
            upper = float(bounds[index])
            lower = float(bounds[index - 1]) if index > 0 else (0.0 if upper > 0 else upper)
            return lower + (upper - lower) * max(0.0, rank - below) / count
        below += count
    return float(bounds[-1])


def add_counts(total: list[float] | None, counts: Iterable[float]) -> list[float]:
    """Bucket counts summed (the same bounds)."""
    counts = list(counts)
    if total is None:
        return [float(c) for c in counts]
    return [a + b for a, b in zip(total, counts, strict=False)]
