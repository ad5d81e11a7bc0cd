"""The SDK's span, started, filled and ended in fewer Python calls: the floor of a sampled request.

Reproduces, for SDK 1.43 to 1.45, ``opentelemetry.sdk.trace.Tracer.start_span`` (with
``Span.__init__`` and ``Span.start``), ``Span.set_attributes``, ``Span.set_attribute`` and
``Span.end`` (with ``Span._readable_span``). A sampled SQL span costs ~72 Python calls in the
SDK, most of them not work but the way it is spelled: keyword arguments passed through three
``__init__``, ``_new_events``/``_new_links``, a per-value recursion validating each attribute, a
no-op metrics callback, ``ReadableSpan.__init__`` for the copy handed to ``on_end``. Here the same
objects are made directly:

- the span is an instance of :class:`_Span`, a subclass of the SDK's ``_Span`` (same name, same
  ``repr``), whose instance dictionary holds the same keys, in the same order, with the same
  values as the SDK's (its ``BoundedAttributes`` made by its own constructor, its two
  ``BoundedList`` given the fields ``BoundedList.__init__`` gives); every method but the three
  above is the SDK's own;
- the sampler, the id generator, the tracer's metrics and every span processor are called as the
  SDK calls them, with the same arguments (a ``SynchronousMultiSpanProcessor``'s processors in
  turn, as it calls them): what a processor's ``on_start``/``on_end`` or an exporter receives is
  what the SDK would give it (an SDK ``ReadableSpan`` on end);
- attributes whose keys are non-empty ``str`` and values ``str``/``bool``/``int``/``float`` (a
  string no longer than the limit), fitting under the count limit, are stored as they are: what
  the SDK's validation returns for them. Anything else (a sequence, bytes, ``None``, a long
  string, a full span, an ended one) goes through the SDK's own methods, its warnings included.
- a span with links, a tracer whose configuration disables it, and every span once something
  replaced ``Tracer.start_span`` (a tool patching the SDK) take ``Tracer.start_span``.

``tests/unit/runtime/test_lean_span.py`` builds the same spans through the SDK and through this
module and compares them field by field, as ``ReadableSpan`` and as OTLP bytes; it runs in every
cell of the matrix (SDK 1.43 and 1.45). On any other SDK release, or when a name used here is
gone, :func:`lean` leaves the tracer as the SDK made it.
"""

from __future__ import annotations

import inspect
import logging
import threading
import types
from collections import deque
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import get_current as _get_current
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace._tracer_metrics import noop as _noop_end_metrics
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import (
    _SPAN_ID_MAX_VALUE,
    _TRACE_ID_MAX_VALUE,
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    SpanContext,
    TraceFlags,
)

PROVEN = ((1, 43), (1, 44), (1, 45))  # SDK releases (major, minor) the side-by-side test runs on

_logger = logging.getLogger(sdk_trace.__name__)  # the SDK's logger: the same warnings, from the same name
_time_ns = sdk_trace.time_ns
_get_current_span = trace_api.get_current_span
_NonRecordingSpan = trace_api.NonRecordingSpan
_ReadableSpan = sdk_trace.ReadableSpan
_SdkSpan = sdk_trace._Span
_Multi = sdk_trace.SynchronousMultiSpanProcessor  # its hooks call each processor in turn: called so here
_DROP, _RECORD_ONLY, _RECORD_AND_SAMPLE = Decision.DROP, Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE
_Tracer = sdk_trace.Tracer
_sdk_start_span = _Tracer.start_span
_new = object.__new__
_new_context = tuple.__new__
_UNSET = inspect.signature(_ReadableSpan.__init__).parameters["status"].default  # the SDK's shared default
_PLAIN = frozenset((str, bool, int, float))  # values the SDK's validation returns unchanged
# What attributes come in: a dict (or a subclass reading as one), a SamplingResult's proxy.
_MAPPINGS = frozenset((dict, types.MappingProxyType))
_items, _len = dict.items, dict.__len__
_Lock = threading.Lock
_deque = deque
# TraceFlags by (sampled, random trace id): values, as the SDK computes them.
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}


def _plain(maxlen: int | None, limit: int | None, held: int, attributes: Any) -> bool:
    """Whether the SDK would store each of these attributes as it is, dropping none, in
    ``BoundedAttributes`` of these limits that hold ``held`` already."""
    kind = type(attributes)
    if kind not in _MAPPINGS and not (isinstance(attributes, dict) and kind.items is _items and kind.__len__ is _len):
        return False  # read through methods of its own: the SDK's path reads it as it reads it
    if maxlen is not None and held + len(attributes) > maxlen:
        return False
    for key, value in attributes.items():
        kind = type(value)
        if type(key) is not str or not key or kind not in _PLAIN:
            return False
        if kind is str and limit is not None and len(value) > limit:
            return False
    return True


class _Span(_SdkSpan):
    """The SDK's span; its attributes set and its end taken without the SDK's detours."""

    __slots__ = ()

    def set_attributes(self, attributes: Any) -> None:
        data = self._attributes
        if data._immutable or not _plain(data.maxlen, data.max_value_len, len(data._dict), attributes):
            return _SdkSpan.set_attributes(self, attributes)
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            with data._lock:
                stored = data._dict
                for key, value in attributes.items():
                    if key in stored:
                        del stored[key]
                    stored[key] = value
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        data = self._attributes
        kind = type(value)
        limit, maxlen = data.max_value_len, data.maxlen
        if (
            data._immutable
            or type(key) is not str
            or not key
            or kind not in _PLAIN
            or (kind is str and limit is not None and len(value) > limit)
            or (maxlen is not None and len(data._dict) >= maxlen)
        ):
            return _SdkSpan.set_attribute(self, key, value)
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Setting attribute on ended span.")
                return
            with data._lock:
                stored = data._dict
                if key in stored:
                    del stored[key]
                stored[key] = value
        return None

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                _logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else _time_ns()
            self._attributes._immutable = True
        record_end_metrics = self._record_end_metrics
        if record_end_metrics and record_end_metrics is not _noop_end_metrics:
            record_end_metrics()
        processor = self._span_processor
        processors = processor._span_processors if type(processor) is _Multi else None
        if processors is None:
            processor._on_ending(self)
        else:
            for each in processors:
                each._on_ending(self)
        readable = _new(_ReadableSpan)
        # ReadableSpan.__init__'s assignments, in its order (``kind``: the property reads _kind).
        readable.__dict__.update(
            _name=self._name,
            _context=self._context,
            _kind=self._kind,
            _instrumentation_info=self._instrumentation_info,
            _instrumentation_scope=self._instrumentation_scope,
            _parent=self._parent,
            _start_time=self._start_time,
            _end_time=self._end_time,
            _attributes=self._attributes,
            _events=self._events,
            _links=self._links,
            _resource=self._resource,
            _status=self._status,
        )
        if processors is None:
            processor.on_end(readable)
        else:
            for each in processors:
                each.on_end(readable)


def start_span(
    tracer: Any,
    name: str,
    context: Any = None,
    kind: Any = trace_api.SpanKind.INTERNAL,
    attributes: Any = None,
    links: Any = (),
    start_time: int | None = None,
    record_exception: bool = True,
    set_status_on_exception: bool = True,
) -> Any:
    """``Tracer.start_span`` of the SDK (see the module's docstring); bound to a tracer by :func:`lean`."""
    if links or not tracer._tracer_config.is_enabled or _Tracer.start_span is not _sdk_start_span:
        # Links, a disabled tracer, or Tracer.start_span replaced since (by a tool patching the SDK): its own.
        return _Tracer.start_span(
            tracer, name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
    links = ()
    # get_current_span(context).get_span_context(), the context's span read as the API reads it.
    current = (context if context is not None else _get_current()).get(_SPAN_KEY)
    parent = current._context if type(current) in _SPANS else _get_current_span(context).get_span_context()
    if parent is not None and not isinstance(parent, SpanContext):
        raise TypeError("parent_span_context must be a SpanContext or None.")
    ids = tracer.id_generator
    if parent is None or not parent[5]:  # SpanContext: a tuple, its fields by position (is_valid)
        parent = None
        trace_id = ids.generate_trace_id()
    else:
        trace_id = parent[0]
    result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes, links)
    decision = result.decision
    if decision is _RECORD_AND_SAMPLE:
        recording = sampled = True
    elif decision is _DROP:
        recording = sampled = False
    elif decision is _RECORD_ONLY:
        recording, sampled = True, False
    else:
        recording, sampled = decision.is_recording(), decision.is_sampled()
    random = ids.is_trace_id_random() if parent is None else parent[3] & TraceFlags.RANDOM_TRACE_ID
    span_id = ids.generate_span_id()
    state = result.trace_state
    span_context = _new_context(
        SpanContext,
        (
            trace_id,
            span_id,
            False,
            _FLAGS[sampled, bool(random)],
            DEFAULT_TRACE_STATE if state is None else state,
            INVALID_TRACE_ID < trace_id <= _TRACE_ID_MAX_VALUE and INVALID_SPAN_ID < span_id <= _SPAN_ID_MAX_VALUE,
        ),
    )
    metrics = tracer._tracer_metrics
    if type(metrics) is NoOpTracerMetrics:
        record_end_metrics = _noop_end_metrics
    else:
        record_end_metrics = metrics.start_span(parent, decision)
    if not recording:
        return _NonRecordingSpan(span_context)
    limits = tracer._span_limits
    maxlen, limit = limits.max_span_attributes, limits.max_span_attribute_length
    initial = result.attributes
    if initial and _plain(maxlen, limit, 0, initial):
        data = BoundedAttributes(maxlen, None, immutable=False, max_value_len=limit)
        data._dict.update(initial)  # what the SDK's validation stores, in the same order
    else:
        data = BoundedAttributes(maxlen, initial, immutable=False, max_value_len=limit)
    events, links_ = _new(BoundedList), _new(BoundedList)  # BoundedList.__init__'s assignments
    events.dropped, events._dq, events._lock = 0, _deque(maxlen=limits.max_events), _Lock()
    links_.dropped, links_._dq, links_._lock = 0, _deque(maxlen=limits.max_links), _Lock()
    processor = tracer.span_processor
    span = _new(_Span)
    # Span.__init__'s assignments (ReadableSpan.__init__'s first), in their order, then start()'s.
    span.__dict__.update(
        _name=name,
        _context=span_context,
        _kind=kind,
        _instrumentation_info=tracer.instrumentation_info,
        _instrumentation_scope=tracer._instrumentation_scope,
        _parent=parent,
        _start_time=start_time if start_time is not None else _time_ns(),
        _end_time=None,
        _attributes=data,
        _events=events,
        _links=links_,
        _resource=tracer.resource,
        _status=_UNSET,
        _sampler=tracer.sampler,
        _trace_config=None,
        _record_exception=record_exception,
        _set_status_on_exception=set_status_on_exception,
        _span_processor=processor,
        _limits=limits,
        _lock=_Lock(),
        _record_end_metrics=record_end_metrics,
    )
    if type(processor) is _Multi:
        for each in processor._span_processors:
            each.on_start(span, parent_context=context)
    else:
        processor.on_start(span, parent_context=context)
    return span


_SPANS = frozenset((_SdkSpan, _Span, _NonRecordingSpan))  # get_span_context() returns their _context


def usable() -> bool:
    """Whether the installed SDK is one the side-by-side test proves this module equal on; when
    it is not, one warning line (the SDK's own span path serves, only slower)."""
    version = "unknown"
    try:
        from opentelemetry.sdk.version import __version__ as version

        if tuple(int(part) for part in version.split(".")[:2]) in PROVEN:
            return True
    except Exception:
        pass
    from otel_launch._runtime._log import warn

    warn(f"opentelemetry-sdk {version} is not a release lean_span is proven on: the SDK's own span path serves")
    return False


_usable: list[bool] = []


def lean(tracer: Any) -> Any:
    """This SDK tracer, its ``start_span`` (and so ``start_as_current_span``) this module's when the
    installed SDK is a proven one; any other tracer as it is."""
    if not _usable:
        _usable.append(usable())
    if _usable[0] and type(tracer) is sdk_trace.Tracer and "start_span" not in tracer.__dict__:
        tracer.start_span = types.MethodType(start_span, tracer)
    return tracer
