"""The ui's metric arithmetic: changes from cumulative points (resets), steps, percentiles as
Prometheus' histogram_quantile computes them, severities."""

from __future__ import annotations

import pytest

from otel_launch.local.ui.series import (
    Point,
    default_step,
    deltas,
    quantile,
    severity_name,
    severity_number,
    spread,
    step_starts,
)

S = 1_000_000_000


def values(changes: list[Point]) -> list[tuple[int, float]]:
    return [(change.time_ns // S, change.value) for change in changes]


def test_cumulative_points_become_the_change_since_the_point_before():
    points = [Point(100 * S, t * S, v) for t, v in ((110, 5), (120, 8), (130, 8), (140, 20))]
    assert values(deltas(points, cumulative=True, window_start_ns=105 * S)) == [(120, 3), (130, 0), (140, 12)]


def test_a_stream_that_began_inside_the_window_counts_its_first_total_whole():
    points = [Point(100 * S, t * S, v) for t, v in ((110, 5), (120, 8))]
    assert values(deltas(points, cumulative=True, window_start_ns=90 * S)) == [(110, 5), (120, 3)]


def test_the_point_before_the_window_is_the_baseline_only():
    points = [Point(100 * S, t * S, v) for t, v in ((110, 5), (120, 8), (130, 10))]
    assert values(deltas(points, cumulative=True, window_start_ns=115 * S)) == [(120, 3), (130, 2)]


def test_a_restart_moves_the_start_the_new_total_counts_whole():
    points = [Point(100 * S, 110 * S, 50), Point(100 * S, 120 * S, 60), Point(125 * S, 130 * S, 4)]
    assert values(deltas(points, cumulative=True, window_start_ns=105 * S)) == [(120, 10), (130, 4)]


def test_a_value_that_falls_under_the_same_start_is_a_reset_too():
    points = [Point(100 * S, 110 * S, 50), Point(100 * S, 120 * S, 7)]
    assert values(deltas(points, cumulative=True, window_start_ns=105 * S)) == [(120, 7)]


def test_histogram_buckets_are_differenced_and_a_bucket_that_falls_is_a_reset():
    first = Point(100 * S, 110 * S, 1.5, 3, (1, 2, 0))
    second = Point(100 * S, 120 * S, 2.5, 5, (1, 3, 1))
    reset = Point(100 * S, 130 * S, 0.2, 6, (6, 0, 0))  # the count grew, a bucket fell: not one stream
    changes = deltas([first, second, reset], cumulative=True, window_start_ns=105 * S)
    assert [(c.count, c.counts, c.value) for c in changes] == [(2, (0, 1, 1), 1.0), (6, (6, 0, 0), 0.2)]


def test_each_change_covers_the_time_since_the_point_before_or_since_its_start():
    points = [Point(100 * S, 110 * S, 5), Point(100 * S, 120 * S, 8), Point(115 * S, 130 * S, 4), Point(0, 140 * S, 1)]
    changes = deltas(points, cumulative=True, window_start_ns=90 * S)
    # began in the window: from its start; then from the point before; a restart: from its start;
    # a reset of no start: from the point before
    assert [(c.from_ns // S, c.time_ns // S) for c in changes] == [(100, 110), (110, 120), (120, 130), (130, 140)]
    delta = deltas([Point(100 * S, 160 * S, 6), Point(0, 170 * S, 1)], cumulative=False, window_start_ns=0)
    assert [(c.from_ns // S, c.time_ns // S) for c in delta] == [(100, 160), (170, 170)]


def test_a_change_is_shared_out_over_the_steps_its_interval_covers_by_hand():
    # Steps of 10 s from 1000 s, six of them (1000..1060). A change over 1005..1035 (30 s): the
    # step at 1000 holds 5 s of it (1/6), those at 1010 and 1020 10 s each (1/3), 1030 5 s (1/6).
    assert spread(1005 * S, 1035 * S, 1000 * S, 10 * S, 6) == [
        (0, pytest.approx(1 / 6)),
        (1, pytest.approx(1 / 3)),
        (2, pytest.approx(1 / 3)),
        (3, pytest.approx(1 / 6)),
    ]
    # Begun 20 s before the window's start at 1000: two thirds of it are not the window's.
    assert spread(980 * S, 1010 * S, 1000 * S, 10 * S, 6, not_before_ns=1000 * S) == [(0, pytest.approx(1 / 3))]
    # No interval: whole in the step of its time; past the last step: nowhere.
    assert spread(1042 * S, 1042 * S, 1000 * S, 10 * S, 6) == [(4, 1.0)]
    assert spread(1070 * S, 1080 * S, 1000 * S, 10 * S, 6) == []


def test_delta_points_are_the_changes_themselves():
    points = [Point(100 * S, 110 * S, 5), Point(110 * S, 120 * S, 2)]
    assert values(deltas(points, cumulative=False, window_start_ns=0)) == [(110, 5), (120, 2)]


def test_quantile_interpolates_inside_the_bucket_by_hand():
    # bounds 0.1, 0.5, 1: buckets (0, 0.1] 10, (0.1, 0.5] 20, (0.5, 1] 10, (1, +Inf) 0; 40 in all.
    # p50: rank 20, 10 below the second bucket: 0.1 + 0.4 * 10/20 = 0.3.
    # p95: rank 38, 30 below the third: 0.5 + 0.5 * 8/10 = 0.9.
    # p10: rank 4 in the first bucket, from 0: 0.1 * 4/10 = 0.04.
    bounds, counts = [0.1, 0.5, 1.0], [10, 20, 10, 0]
    assert quantile(0.5, bounds, counts) == pytest.approx(0.3)
    assert quantile(0.95, bounds, counts) == pytest.approx(0.9)
    assert quantile(0.10, bounds, counts) == pytest.approx(0.04)


def test_quantile_in_the_unbounded_bucket_is_the_largest_bound_and_empty_is_none():
    assert quantile(0.99, [0.1, 0.5], [1, 1, 8]) == 0.5
    assert quantile(0.5, [0.1, 0.5], [0, 0, 0]) is None
    assert quantile(0.5, [0.1, 0.5], [1, 1]) is None  # counts that do not match the bounds


def test_steps_are_aligned_and_cover_the_window():
    first, steps = step_starts(1_000_007 * S, 900, 15)
    assert first % (15 * S) == 0 and steps == 60 and first + 59 * 15 * S <= 1_000_007 * S < first + 60 * 15 * S
    assert [default_step(w) for w in (300, 900, 3600, 86400)] == [5, 10, 30, 900]


def test_severities_by_number_and_name():
    assert [severity_name(n) for n in (0, 1, 5, 9, 12, 13, 17, 21, 24)] == [
        "", "TRACE", "DEBUG", "INFO", "INFO", "WARN", "ERROR", "FATAL", "FATAL"
    ]  # fmt: skip
    assert [severity_number(t) for t in ("warning", "ERROR", "critical", "verbose")] == [13, 17, 21, 0]
