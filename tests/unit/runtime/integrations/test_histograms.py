"""The lean histogram path (integrations/_histograms.py) records what the SDK's own record() records.

Side by side: one meter provider fed through ``Histogram.record()``, another through
``BoundHistogram``, with the same values; what their readers collect must be equal. These tests
also fail the day the SDK internals the binding reads change (it then falls back to record(),
and the test on the fast path sees it)."""

from __future__ import annotations

import math

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, SumAggregation, View
from opentelemetry.sdk.trace import TracerProvider

from otel_launch._runtime.integrations._histograms import BoundHistogram

ATTRIBUTES = {"celery.task_name": "orders.tasks.tick", "messaging.destination.name": "shop", "messaging.system": "x"}
VALUES = [0.0, 0.004, 0.005, 0.0051, 0.3, 2.0, 7.5, 11.0, 3600.0, 0.02]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 1, 10)


def points(reader: InMemoryMetricReader) -> list[tuple]:
    found = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for p in metric.data.data_points:
                    fields = (metric.name, tuple(sorted(p.attributes.items())))
                    if hasattr(p, "bucket_counts"):
                        fields += (p.count, p.sum, p.min, p.max, tuple(p.bucket_counts), tuple(p.explicit_bounds))
                    else:
                        fields += (p.value,)
                    exemplars = tuple(
                        (e.value, e.span_id, e.trace_id, tuple(sorted((e.filtered_attributes or {}).items())))
                        for e in p.exemplars
                    )
                    found.append(fields + (len(p.exemplars), exemplars))
    return sorted(found)


def pair(views=(), temporality=None, **histogram) -> tuple:
    """Two (provider, reader, histogram): the SDK's path and ours."""
    made = []
    for _ in range(2):
        kwargs = {"preferred_temporality": {Histogram: temporality}} if temporality else {}
        reader = InMemoryMetricReader(**kwargs)
        provider = MeterProvider(metric_readers=[reader], views=list(views))
        instrument = provider.get_meter("test").create_histogram("messaging.process.duration", unit="s", **histogram)
        made.append((provider, reader, instrument))
    return made[0], made[1]


def record_both(sdk, ours, values, attributes=ATTRIBUTES) -> BoundHistogram:
    bound = BoundHistogram(ours[2], dict(attributes))
    for value in values:
        sdk[2].record(value, attributes=dict(attributes))
        bound.record(value)
    return bound


def test_the_fast_path_is_taken_and_records_what_the_sdk_records():
    sdk, ours = pair(explicit_bucket_boundaries_advisory=BUCKETS)
    bound = record_both(sdk, ours, VALUES)
    assert bound._aggregations, "bound to the SDK's aggregations (not falling back to record())"
    collected = points(sdk[1])
    assert points(ours[1]) == collected
    assert collected[0][2] == len(VALUES)


@pytest.mark.parametrize("temporality", [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE])
def test_successive_collections_agree_in_either_temporality(temporality):
    sdk, ours = pair(temporality=temporality)
    bound = record_both(sdk, ours, VALUES[:4])
    assert points(ours[1]) == points(sdk[1])
    for value in VALUES[4:]:
        sdk[2].record(value, attributes=dict(ATTRIBUTES))
        bound.record(value)
    assert points(ours[1]) == points(sdk[1])
    assert points(ours[1]) == points(sdk[1])  # a delta collection with nothing new


def test_views_that_drop_attributes_or_change_buckets():
    views = (
        View(instrument_name="messaging.process.duration", attribute_keys={"celery.task_name"}),
        View(
            instrument_name="messaging.process.duration",
            name="renamed",
            aggregation=ExplicitBucketHistogramAggregation((0.1, 1.0)),
        ),
    )
    sdk, ours = pair(views=views)
    record_both(sdk, ours, VALUES)
    collected = points(sdk[1])
    assert points(ours[1]) == collected
    assert len(collected) == 2


def test_a_view_with_another_aggregation_goes_through_record():
    views = (View(instrument_name="messaging.process.duration", aggregation=SumAggregation()),)
    sdk, ours = pair(views=views)
    bound = record_both(sdk, ours, VALUES)
    assert bound._aggregations == ()
    assert points(ours[1]) == points(sdk[1])


def test_values_the_sdk_refuses_are_refused_alike():
    sdk, ours = pair()
    record_both(sdk, ours, [0.1, -1.0, math.inf, math.nan, 0.2])
    collected = points(sdk[1])
    assert repr(points(ours[1])) == repr(collected)  # repr: a sum of nan is nan on both sides (SDK 1.43 takes it)
    assert collected[0][2] < 5  # the SDK refused some: -1 always; inf and nan too from 1.44


def test_a_reader_added_later_gets_the_later_measurements():
    sdk, ours = pair()
    bound = record_both(sdk, ours, VALUES[:3])
    late = []
    for provider in (sdk[0], ours[0]):
        late.append(InMemoryMetricReader())
        provider.add_metric_reader(late[-1])
    for value in VALUES[3:]:
        sdk[2].record(value, attributes=dict(ATTRIBUTES))
        bound.record(value)
    assert points(late[1]) == points(late[0])
    assert points(ours[1]) == points(sdk[1])


def test_exemplars_inside_a_sampled_span_are_the_sdks(monkeypatch):
    tracer = TracerProvider().get_tracer("test")
    sdk, ours = pair()
    bound = record_both(sdk, ours, VALUES[:2])
    through_record = []
    record = ours[2].record
    monkeypatch.setattr(ours[2], "record", lambda *a, **k: through_record.append(a) or record(*a, **k))
    with tracer.start_as_current_span("run/x"):
        sdk[2].record(0.5, attributes=dict(ATTRIBUTES))
        bound.record(0.5)
    assert through_record == []  # offered on the bound path, not through the SDK's record()
    assert trace.get_current_span() is trace.INVALID_SPAN
    collected = points(sdk[1])
    assert points(ours[1]) == collected
    assert collected[0][-2] == 1  # one exemplar, from inside the span


def test_exemplars_of_a_view_that_drops_attributes_keep_the_dropped_ones_as_the_sdks_do():
    """The reservoir keeps what the point's attributes leave out (``filtered_attributes``)."""
    tracer = TracerProvider().get_tracer("test")
    view = View(instrument_name="messaging.process.duration", attribute_keys={"celery.task_name"})
    sdk, ours = pair(views=[view])
    with tracer.start_as_current_span("run/x"):
        bound = record_both(sdk, ours, VALUES[:3])
    collected = points(sdk[1])
    assert points(ours[1]) == collected
    (point,) = collected
    assert point[-2] >= 1 and dict(point[-1][0][3]) == {k: v for k, v in ATTRIBUTES.items() if k != "celery.task_name"}
    assert bound._aggregations


def test_an_api_only_instrument_is_recorded_through_its_own_record():
    from opentelemetry.metrics import NoOpMeterProvider

    instrument = NoOpMeterProvider().get_meter("test").create_histogram("messaging.process.duration")
    bound = BoundHistogram(instrument, dict(ATTRIBUTES))
    bound.record(0.1)
    bound.record(0.2)
    assert bound._aggregations == ()


@pytest.mark.parametrize("flower", [False, True])
def test_the_worker_records_each_measurement_once_a_task(monkeypatch, flower):
    """worker.record_metrics through the bound path: duration, queue time, executions (and the
    contrib's Flower histogram only when asked for)."""
    from opentelemetry import metrics

    from otel_launch._runtime.integrations.celery import worker

    if flower:
        monkeypatch.setenv("OTEL_LAUNCH_CELERY_FLOWER_METRIC", "true")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: provider)
    monkeypatch.setattr(worker, "_instruments", [None, None])
    monkeypatch.setattr(worker, "_attributes", {})
    monkeypatch.setattr(worker, "_executions", {})
    for runtime in (0.002, 0.03, 0.4):
        worker.record_metrics("orders.tasks.tick", "w@h", "shop", "redis", "SUCCESS", None, runtime, 1.5)
    worker.record_metrics("orders.tasks.tick", "w@h", "shop", "redis", "FAILURE", "ValueError", 0.01, None)
    found = {}
    for metric in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics:
        for p in metric.data.data_points:
            found[(metric.name, p.attributes.get("celery.state") or p.attributes.get("error.type"))] = (
                p.count if hasattr(p, "count") else p.value,
                getattr(p, "sum", None),
            )
    expected = {
        ("messaging.process.duration", None): (3, pytest.approx(0.432)),
        ("messaging.process.duration", "ValueError"): (1, pytest.approx(0.01)),
        ("celery.task.queue_time", None): (3, pytest.approx(4.5)),
        ("celery.task.executions", "SUCCESS"): (3, None),
        ("celery.task.executions", "FAILURE"): (1, None),
    }
    if flower:
        expected[("flower.task.runtime.seconds", None)] = (4, pytest.approx(0.442))
    assert found == expected


def test_a_value_that_takes_the_sdks_path_keeps_the_binding(monkeypatch):
    """A refused value goes through record() without binding again (each binding copies and hashes)."""
    sdk, ours = pair()
    bound = record_both(sdk, ours, VALUES[:2])
    assert bound._aggregations
    binds = []
    find = BoundHistogram._find_aggregations
    monkeypatch.setattr(BoundHistogram, "_find_aggregations", lambda self: binds.append(1) or find(self))
    for value in (-1.0, 0.2):
        sdk[2].record(value, attributes=dict(ATTRIBUTES))
        bound.record(value)
    assert binds == [] and repr(points(ours[1])) == repr(points(sdk[1]))


@pytest.mark.parametrize("exemplar_filter", ["always_on", "always_off", "trace_based"])
def test_each_of_the_sdks_exemplar_filters_gives_the_sdks_exemplars(monkeypatch, exemplar_filter):
    """The filter is asked inline for the SDK's own three (OTEL_METRICS_EXEMPLAR_FILTER): outside a
    span, inside a sampled one, inside an unsampled one."""
    from opentelemetry import context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", exemplar_filter)
    tracer = TracerProvider().get_tracer("test")
    sdk, ours = pair()
    bound = record_both(sdk, ours, VALUES[:3])
    with tracer.start_as_current_span("run/x"):
        record_both(sdk, ours, VALUES[3:6])
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(0)))))
    try:
        record_both(sdk, ours, VALUES[6:])
    finally:
        context.detach(token)
    collected = points(sdk[1])
    assert points(ours[1]) == collected
    assert bound._aggregations
    assert (collected[0][-2] == 0) is (exemplar_filter == "always_off")
