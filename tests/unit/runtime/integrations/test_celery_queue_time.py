"""Queue time from a task's headers: due at its publish, or at its ETA when later; the worker's
receipt when the producer wrote no publish time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("celery")
from otel_launch._runtime.integrations.celery.worker import PUBLISHED, RECEIVED, queue_time  # noqa: E402

T = 1_800_000_000.0  # a publish time, seconds since the epoch


def iso(seconds: float, tz: timezone | None = timezone.utc) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return (moment if tz else moment.replace(tzinfo=None)).isoformat()


def test_from_the_publish():
    assert queue_time({PUBLISHED: T}, T + 1.25) == pytest.approx((1.25, "published"))


def test_a_countdown_is_not_queue_time():
    # Asked to wait 3 s, started 3.1 s after its publish: 0.1 s in the queue.
    assert queue_time({PUBLISHED: T, "eta": iso(T + 3)}, T + 3.1) == pytest.approx((0.1, "eta"))


def test_an_eta_in_another_zone_or_naive_is_read_as_celery_writes_it():
    plus_two = timezone(timedelta(hours=2))
    eta = datetime.fromtimestamp(T + 3, plus_two).isoformat()
    assert queue_time({PUBLISHED: T, "eta": eta}, T + 3.5) == pytest.approx((0.5, "eta"))
    assert queue_time({PUBLISHED: T, "eta": iso(T + 3, tz=None)}, T + 3.5) == pytest.approx((0.5, "eta"))


def test_an_eta_already_past_at_publish_counts_from_the_publish():
    assert queue_time({PUBLISHED: T, "eta": iso(T - 60)}, T + 2) == pytest.approx((2, "published"))


def test_an_uninstrumented_producer_counts_from_the_receipt():
    assert queue_time({RECEIVED: T}, T + 0.5) == pytest.approx((0.5, "received"))
    assert queue_time({PUBLISHED: T, RECEIVED: T + 9}, T + 10) == pytest.approx((10, "published"))


def test_no_clock_no_queue_time_and_skew_is_not_negative():
    assert queue_time({}, T) is None
    assert queue_time({PUBLISHED: T + 0.2}, T) == (0.0, "published")  # the producer's clock ran ahead
    assert queue_time({PUBLISHED: T, "eta": "not a date"}, T + 1) == pytest.approx((1, "published"))
