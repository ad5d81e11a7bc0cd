"""Metric locks renewed after a fork (otel_launch/_runtime/_lifecycle.py), on the real SDK and real threads.

A lock found held in a child is a parent thread's (that thread is gone) and is replaced; in a
process forked without Python's fork hooks the renewal runs at its first span, when threads of
its own may hold a lock for a moment: that one must stay (replaced, it let two threads in).
"""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_launch._runtime import _lifecycle


@pytest.fixture
def provider():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    provider.get_meter("test").create_counter("work").add(1, {"who": "parent"})
    yield provider
    provider.shutdown()


def _aggregation(provider):
    (storage,) = provider._measurement_consumer._reader_storages.values()
    (aggregation,) = [
        aggregation
        for matches in storage._instrument_view_instrument_matches.values()
        for match in matches
        for aggregation in match._attributes_aggregation.values()
    ]
    return aggregation


def test_a_lock_a_live_thread_holds_for_a_moment_is_kept(provider, monkeypatch):
    monkeypatch.setattr(_lifecycle, "_A_LIVE_THREAD_LETS_GO", 10.0)  # what the thread holds it for is up to it
    consumer_lock, aggregation_lock = provider._measurement_consumer._lock, _aggregation(provider)._lock
    holding = threading.Event()

    def record_for_a_moment():
        with consumer_lock, aggregation_lock:
            holding.set()
            time.sleep(0.05)

    thread = threading.Thread(target=record_for_a_moment)
    thread.start()
    holding.wait(10)
    _lifecycle._renew_metric_locks(provider, others_may_run=True)
    thread.join(10)
    assert provider._measurement_consumer._lock is consumer_lock
    assert _aggregation(provider)._lock is aggregation_lock


def test_a_lock_left_held_by_a_thread_that_is_gone_is_replaced(provider, monkeypatch):
    monkeypatch.setattr(_lifecycle, "_A_LIVE_THREAD_LETS_GO", 0.05)
    aggregation = _aggregation(provider)
    held = aggregation._lock
    thread = threading.Thread(target=held.acquire)  # takes it and ends: as a parent thread is gone after fork
    thread.start()
    thread.join(10)
    _lifecycle._renew_metric_locks(provider, others_may_run=True)
    assert aggregation._lock is not held and aggregation._lock.acquire(blocking=False)
    aggregation._lock.release()
    _lifecycle._renew_metric_locks(provider)  # right after a fork: a free lock is nobody's, and stays
    assert _aggregation(provider)._lock is aggregation._lock
