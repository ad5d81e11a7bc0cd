"""Histogram measurements bound to one attribute set: the SDK's own aggregation, without its per-call work.

Why: the SDK's ``Histogram.record()`` (1.45) costs a Celery task ~74k instructions a measurement
(about a tenth of plain Celery's whole task), most of it not the aggregation: it builds a
``Measurement`` (copying and cleaning the attributes), then in each reader's storage copies
them again and hashes them, sorted, to find the aggregation of that attribute set. A worker
records the same few attribute sets over and over, so :class:`BoundHistogram` finds those
aggregations once and feeds them directly.

The first measurement of a set goes through the SDK's ``record()``, which creates the
aggregations; the binding then looks them up the way the SDK does and calls their
``aggregate()`` (under their own lock) with the same value. An exemplar the filter wants
(``always_on``, or a sampled span current: every measurement of a sampled request) is offered
the measurement the SDK would build (value, time, the attributes cleaned once, the context).
What a reader collects is the same (tests/unit/runtime/integrations/test_histograms.py records side by side,
with views, both temporalities, exemplars and a reader added later). Everything else goes
through ``record()`` as before: a disabled meter, a value the SDK refuses (negative, not
finite), a reader added since the binding, an aggregation other than explicit buckets (a view's
choice), or any provider that is not this SDK.

Used by Celery's task histograms (celery/worker.py) and the Django request path's duration
histograms (django/request.py).

SDK internals relied on (opentelemetry-sdk 1.43-1.45, read at binding time only):
``instrument._measurement_consumer`` (``._reader_storages``, ``._sdk_config.exemplar_filter``),
``storage._instrument_view_instrument_matches``, ``match._view._attribute_keys``,
``match._attributes_aggregation`` keyed by ``_hash_attributes`` (by the attributes' frozenset in 1.43), and
``_ExplicitBucketHistogramAggregation.aggregate(measurement, should_sample_exemplar)``, which
reads ``measurement.value`` only when no exemplar is to be sampled, and else offers its
reservoir ``value``, ``time_unix_nano``, ``attributes`` and ``context``. When one of these is
missing the binding fails and ``record()`` is used for good. The SDK's trace-based exemplar filter
is asked inline (the API's ``_SPAN_KEY``, in _compat's "unsampled-children"), its always-off one
not at all.
"""

from __future__ import annotations

import math
from time import time_ns
from typing import Any

from opentelemetry.context import get_current

_UNBOUND: Any = None  # not bound yet: the next measurement goes through record() and binds
_NEVER: tuple = ()  # cannot bind (not this SDK, another aggregation): always record()


class _Value:
    """What ``aggregate()`` reads of a measurement when no exemplar is sampled."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


_TRACE_BASED: Any = object()  # the SDK's TraceBasedExemplarFilter, checked inline


def _filter_of(exemplar_filter: Any) -> Any:
    """The exemplar filter as ``record`` asks it: None for the SDK's always-off (no exemplar, no
    time taken), ``_TRACE_BASED`` for its trace-based one (the current span read under the API's
    key: the filter's own ``get_current_span()`` checks it against an ABC), any other as it is."""
    from opentelemetry.sdk.metrics._internal.exemplar.exemplar_filter import (
        AlwaysOffExemplarFilter,
        TraceBasedExemplarFilter,
    )

    kind = type(exemplar_filter)
    if kind is AlwaysOffExemplarFilter:
        return None
    if kind is TraceBasedExemplarFilter and _SPAN_KEY is not None:
        return _TRACE_BASED
    return exemplar_filter


def _span_key() -> Any:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # the API's key moved: the filter itself is asked
        return None
    return _SPAN_KEY


_SPAN_KEY = _span_key()


class _Measurement:
    """What ``aggregate()`` reads of a measurement whose exemplar is offered: the SDK's
    ``Measurement`` fields (its ``instrument`` is never read there)."""

    __slots__ = ("value", "time_unix_nano", "attributes", "context")

    def __init__(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> None:
        self.value, self.time_unix_nano, self.attributes, self.context = value, time_unix_nano, attributes, context


class BoundHistogram:
    """``record(amount)`` on one histogram with one attribute set (a dict built once and kept)."""

    __slots__ = ("_instrument", "_attributes", "_aggregations", "_storages", "_filter", "_cleaned")

    def __init__(self, instrument: Any, attributes: dict[str, Any]) -> None:
        self._instrument = instrument
        self._attributes = attributes
        self._aggregations: Any = _UNBOUND
        self._storages: Any = None
        self._filter: Any = None
        self._cleaned: Any = None  # the attributes as the SDK's Measurement holds them

    def record(self, amount: float) -> None:
        aggregations = self._aggregations
        if (
            not aggregations
            or not 0 <= amount < math.inf
            or self._instrument._measurement_consumer._reader_storages is not self._storages
            or not self._instrument._is_enabled()
        ):
            self._instrument.record(amount, attributes=self._attributes)
            # Bind (again) only when not bound yet or a reader came since: a value that merely
            # took the SDK's path (an exemplar, a refused value) keeps the binding as it is.
            if aggregations is _UNBOUND or (
                aggregations is not _NEVER
                and self._instrument._measurement_consumer._reader_storages is not self._storages
            ):
                self._bind()
            return
        context = get_current()
        wanted = self._filter
        if wanted is _TRACE_BASED:  # the default filter, asked inline: is a sampled span current?
            span = context.get(_SPAN_KEY)
            wanted = span is not None and span.get_span_context().trace_flags.sampled
        elif wanted is not None:
            wanted = wanted.should_sample(amount, time_ns(), self._cleaned, context)
        if wanted:
            measurement: Any = _Measurement(amount, time_ns(), self._cleaned, context)
            for aggregation in aggregations:
                aggregation.aggregate(measurement, True)
            return
        value = _Value(amount)
        for aggregation in aggregations:
            aggregation.aggregate(value, False)

    def _bind(self) -> None:
        try:
            self._aggregations = self._find_aggregations()
        except Exception:  # not the SDK these internals are from: record() it is
            self._aggregations = _NEVER

    def _find_aggregations(self) -> Any:
        # Only an instrument the metrics SDK made has aggregations, and then the SDK is imported
        # already: this never imports it. An import from here (the app's thread) met the export
        # thread's build importing it too (the OTLP exporters do) in the SDK's own import cycle,
        # and Python's deadlock detection gave one of them a partially initialised module
        # ("Exception while exporting Log.": that batch lost; or a wrong fallback here).
        import sys

        Histogram = getattr(sys.modules.get("opentelemetry.sdk.metrics._internal.instrument"), "Histogram", None)
        if Histogram is None or not isinstance(self._instrument, Histogram):
            return _NEVER
        try:
            from opentelemetry.attributes import _clean_attribute_value
        except ImportError:  # SDK 1.43 measures the attributes as given

            def _clean_attribute_value(attributes: dict, _limit: Any) -> dict:
                return dict(attributes)

        try:
            from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
        except ImportError:  # SDK 1.43 keys the aggregations by the attributes' frozenset

            def _hash_attributes(attributes: dict) -> Any:
                return frozenset(attributes.items())

        from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation

        instrument = self._instrument
        consumer = instrument._measurement_consumer
        storages = consumer._reader_storages
        cleaned = _clean_attribute_value(self._attributes, None)  # as Measurement does
        found = []
        for storage in storages.values():
            matches = storage._instrument_view_instrument_matches.get(instrument)
            if not matches:  # a reader added since record() ran: it has not seen this instrument yet
                return _UNBOUND
            for match in matches:
                keys = match._view._attribute_keys
                attributes = dict(cleaned) if keys is None else {k: v for k, v in cleaned.items() if k in keys}
                aggregation = match._attributes_aggregation.get(_hash_attributes(attributes))
                if aggregation is None:  # a storage the first record() did not reach: try again later
                    return _UNBOUND
                if type(aggregation) is not _ExplicitBucketHistogramAggregation:
                    return _NEVER
                found.append(aggregation)
        if not found:  # no reader (yet): nothing to feed
            return _UNBOUND
        self._storages, self._cleaned = storages, cleaned
        self._filter = _filter_of(consumer._sdk_config.exemplar_filter)
        return tuple(found)


def observed_counts(provider: Any, instruments: list[Any], counts: dict[Any, list[Any]]) -> Any:
    """The callback of an observable counter that reports ``counts`` (``key -> [attributes, count]``).

    Counting a run is then a list increment, where a synchronous counter's ``add()`` costs as much
    as a histogram measurement. The callback reports only while ``instruments[0]`` is still
    ``provider``: once the app replaces that provider, its own instruments report the runs.
    """
    from opentelemetry.metrics import Observation

    def callback(_: Any) -> list[Any]:
        if instruments[0] is not provider:
            return []
        return [Observation(count, attributes) for attributes, count in list(counts.values())]

    return callback
