"""OTLP span encoding that writes protobuf bytes directly instead of one message per value.

The SDK's encoder builds a protobuf message for every span, attribute and value: about 45 us a
span on the benchmark machine, in the export thread, holding the GIL that the app's requests
wait for (the main cause of the p99 latency of an instrumented server). Here a span is written
straight to the wire format, and an attribute seen before (method, route, host, ``db.system``...)
is encoded once and reused.

The output is the message the SDK would send. What this module does not write itself (events,
links, trace state, array values, resources, scopes) is encoded by the SDK's own functions and
spliced in, and any error falls back to the SDK's encoder for the whole batch. The exporters are
untouched: they parse the bytes back into their request message (in C, ~1 us a span) and then
retry, compress and send as they always do.
"""

from __future__ import annotations

import importlib
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_key_value,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
    _SPAN_KIND_MAP,
    _encode_span,
    _span_flags,
    encode_spans,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.trace import SpanContext, StatusCode

_INT64 = (1 << 64) - 1
_CACHE_LIMIT = 4096  # distinct encoded attributes kept; cleared when full (ports, ids vary)
_YIELD_EVERY = 32  # spans encoded between two offers of the GIL to the app's threads
_groups: dict[int, tuple[Any, bytes, bytes]] = {}  # id(resource or scope) -> (object, head, tail)
_SMALL = [bytes((n,)) for n in range(128)]
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_KIND_FIELDS = {id(kind): b"\x30" + _SMALL[value] for kind, value in _SPAN_KIND_MAP.items()}  # Span.kind
_STATUS_CODES = {id(code): code.value for code in StatusCode}
# Encoded attributes: value class -> key -> value -> bytes (classes the encoder writes itself)
_cache: dict[type, dict[str, dict[Any, bytes]]] = {str: {}, int: {}, bool: {}, float: {}}
_NONE: dict = {}  # an empty mapping: a key not cached yet
_cached = 0  # values in _cache
_STATUS = {code: (b"\x18" + _SMALL[code] if code else b"") for code in range(3)}  # Status.code, when set
_EMPTY_STATUS = {code: b"\x7a" + _SMALL[len(encoded)] + encoded for code, encoded in _STATUS.items()}
_LOCAL_FLAGS = b"\x85\x01" + _pack_fixed32(_span_flags(None))  # Span.flags: the parent is not remote
_REMOTE_FLAGS = b"\x85\x01" + _pack_fixed32(_span_flags(SpanContext(1, 1, is_remote=True)))


def _varint(number: int) -> bytes:
    if number < 128:
        return _SMALL[number]
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _with_length(payload: bytes) -> bytes:
    size = len(payload)  # most payloads are short: skip the call for one-byte lengths
    return (_SMALL[size] if size < 128 else _varint(size)) + payload


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _with_length(payload)


def _key_value(key: str, value: Any) -> bytes:
    """A KeyValue message (key = 1, value = 2: AnyValue) for one attribute."""
    kind = type(value)
    if kind is str:
        any_value = _field(b"\x0a", value.encode("utf-8", "surrogatepass"))
    elif kind is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif kind is int:
        any_value = b"\x18" + _varint(value & _INT64)
    elif kind is float:
        any_value = b"\x21" + _pack_double(value)
    else:  # arrays, bytes, mappings: the SDK's own encoding
        return _encode_key_value(key, value).SerializeToString()
    return _field(b"\x0a", key.encode("utf-8", "surrogatepass")) + _field(b"\x12", any_value)


def _attribute(key: str, value: Any) -> bytes:
    """Span field 9 (attributes) holding one KeyValue, from the cache when seen before.

    Cached by value class, key and value (the class apart: True, 1 and 1.0 are equal keys), at
    most ``_CACHE_LIMIT`` in all: when full, the cache starts again (ports and ids vary)."""
    global _cached
    by_key = _cache.get(value.__class__)
    if by_key is None:
        return _field(b"\x4a", _key_value(key, value))  # arrays: encoded each time
    by_value = by_key.get(key)
    encoded = by_value.get(value) if by_value is not None else None
    if encoded is None:
        encoded = _field(b"\x4a", _key_value(key, value))
        if _cached >= _CACHE_LIMIT:
            for cached in _cache.values():
                cached.clear()
            _cached, by_value = 0, None
        if by_value is None:
            by_value = by_key[key] = {}
        by_value[value] = encoded
        _cached += 1
    return encoded


def _event(event: Any) -> bytes:
    """Span field 11 holding one Event (time = 1, name = 2, attributes = 3, dropped = 4). Its
    attributes (an exception's message and stack trace, mostly) are not cached: they seldom repeat."""
    parts = [b"\x09" + _pack_fixed64(event.timestamp) if event.timestamp else b""]
    if event.name:
        parts.append(_field(b"\x12", event.name.encode("utf-8", "surrogatepass")))
    attributes = event.attributes
    if attributes:
        attributes = getattr(attributes, "_dict", attributes)
        parts.extend([_field(b"\x1a", _key_value(key, value)) for key, value in attributes.items()])
    if event.dropped_attributes:
        parts.append(b"\x20" + _varint(event.dropped_attributes))
    return _field(b"\x5a", b"".join(parts))


def _present(items: Any) -> bool:
    """Whether a span's events or links hold anything: the deque inside the SDK's BoundedList
    answers in C (its own ``__len__`` is a Python call; ReadableSpan.events builds a tuple)."""
    return bool(getattr(items, "_dq", items))


def _span(span: Any) -> bytes:
    """One Span message, field by field in the proto's numbering."""
    context = span.get_span_context()
    events, links = getattr(span, "_events", None), getattr(span, "_links", None)
    if events is None or links is None:  # not the SDK's span: its public properties
        events, links = span.events, span.links
        dropped_events, dropped_links = span.dropped_events, span.dropped_links
    else:
        dropped_events, dropped_links = getattr(events, "dropped", 0), getattr(links, "dropped", 0)
    trace_state = context.trace_state
    if _present(links) or (trace_state and getattr(trace_state, "_dict", trace_state)):
        return _encode_span(span).SerializeToString()
    parent = span.parent
    name = span.name
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        b"\x22\x08" + parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        _field(b"\x2a", name.encode("utf-8", "surrogatepass")) if name else b"",
        _KIND_FIELDS[id(span.kind)],  # by id: an enum member's hash is a Python call
    ]
    start, end = span.start_time, span.end_time
    if start:
        parts.append(b"\x39" + _pack_fixed64(start))
    if end:
        parts.append(b"\x41" + _pack_fixed64(end))
    # The plain dict inside the SDK's BoundedAttributes, when there is one: its Mapping methods
    # go through Python-level __getitem__ calls for every key.
    bounded = getattr(span, "_attributes", None)
    attributes = getattr(bounded, "_dict", None) or span.attributes
    if attributes:
        cache = _cache
        for key, value in attributes.items():  # the cache's hits written out: no call an attribute
            by_key = cache.get(value.__class__)
            encoded = by_key.get(key, _NONE).get(value) if by_key is not None else None
            parts.append(encoded if encoded is not None else _attribute(key, value))
    dropped = getattr(bounded, "dropped", None) if bounded is not None else None
    if dropped is None:
        dropped = span.dropped_attributes
    if dropped:
        parts.append(b"\x50" + _varint(dropped))
    if _present(events):
        parts.extend([_event(event) for event in events])
    if dropped_events:
        parts.append(b"\x60" + _varint(dropped_events))
    if dropped_links:
        parts.append(b"\x70" + _varint(dropped_links))
    status = span.status
    code = _STATUS_CODES[id(status.status_code)]
    message = status.description
    if message:
        parts.append(_field(b"\x7a", _field(b"\x12", message.encode("utf-8", "surrogatepass")) + _STATUS[code]))
    else:
        parts.append(_EMPTY_STATUS[code])
    parts.append(_REMOTE_FLAGS if parent is not None and parent.is_remote else _LOCAL_FLAGS)
    return b"".join(parts)


def _group(owner: Any, encode: Callable[[Any], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """The bytes before and after the nested list for a resource or scope, encoded once."""
    cached = _groups.get(id(owner))
    if cached is not None and cached[0] is owner:
        return cached[1], cached[2]
    if len(_groups) >= 256:
        _groups.clear()
    head, tail = encode(owner)
    _groups[id(owner)] = (owner, head, tail)
    return head, tail


def _resource_parts(resource: Any) -> tuple[bytes, bytes]:
    head = ResourceSpans(resource=_encode_resource(resource)).SerializeToString()
    return head, ResourceSpans(schema_url=resource.schema_url).SerializeToString()


def _scope_parts(scope: Any) -> tuple[bytes, bytes]:
    head = ScopeSpans(scope=_encode_instrumentation_scope(scope)).SerializeToString()
    return head, ScopeSpans(schema_url=scope.schema_url if scope else None).SerializeToString()


def encode_span(span: Any) -> bytes:
    """One span as it sits in a ScopeSpans message: field 2 (spans), its length, its Span.

    The lean batch processor (``_span_export``) encodes each span when it ends and queues
    ``(resource, scope, encode_span(span))``; :func:`encode_request` takes those as they are."""
    return b"\x12" + _with_length(_span(span))


def encode_request(spans: Sequence[Any]) -> bytes:
    """A serialized ExportTraceServiceRequest holding ``spans``, grouped by resource and scope.

    An item is a ReadableSpan, or a span encoded already: ``(resource, scope, encode_span(span))``."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    resources: dict[int, Any] = {}
    scopes_seen: dict[int, Any] = {}
    last_resource = last_scope = last = None  # the group of the item before: most items share it
    for number, span in enumerate(spans, 1):
        if type(span) is tuple:
            resource, scope, encoded = span
        else:
            if number % _YIELD_EVERY == 0:
                # Let a waiting request thread have the GIL: the interpreter would only hand it
                # over after its 5 ms switch interval, and that wait lands in request latency.
                time.sleep(0)
            resource, scope = span.resource, span.instrumentation_scope
            encoded = b"\x12" + _with_length(_span(span))
        if resource is last_resource and scope is last_scope and last is not None:
            last.append(encoded)
            continue
        last_resource, last_scope = resource, scope
        resource, scope = _first_equal(resource, resources), _first_equal(scope or None, scopes_seen)
        scopes = grouped.setdefault(id(resource), (resource, {}))[1]
        last = scopes.setdefault(id(scope), (scope, []))[1]
        last.append(encoded)
    out = []
    for resource, scopes in grouped.values():
        body = []
        for scope, encoded in scopes.values():
            head, tail = _group(scope, _scope_parts)
            body.append(_field(b"\x12", head + b"".join(encoded) + tail))
        head, tail = _group(resource, _resource_parts)
        out.append(_field(b"\x0a", head + b"".join(body) + tail))
    return b"".join(out)


def _first_equal(owner: Any, seen: dict[int, Any]) -> Any:
    """The first of a batch's resources (or scopes) equal to ``owner``: the SDK's encoder groups
    spans by equal resource and scope (two tracers of one name have two scope objects), in the
    order each first appears. Looked up by id, compared once an object."""
    found = seen.get(id(owner), seen)  # the dict itself: not seen yet (None is a scope)
    if found is seen:
        found = next((known for known in seen.values() if known == owner), owner)
        seen[id(owner)] = found
    return found


def _any_encoded(spans: Sequence[Any]) -> bool:
    return any(type(span) is tuple for span in spans)


def fast_encode_spans(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    """Drop-in for the SDK's ``encode_spans``: the same request message, built from bytes."""
    try:
        return ExportTraceServiceRequest.FromString(encode_request(spans))
    except Exception:  # noqa: BLE001 - whatever went wrong, the SDK's encoder still exports the batch
        if _any_encoded(spans):  # spans the SDK cannot encode (never seen: the bytes are ours)
            raise
        return encode_spans(spans)


class SerializedRequest:
    """An ExportTraceServiceRequest already serialized: what the OTLP/HTTP exporter asks of the
    message (``SerializePartialToString()``, and ``SerializeToString()``) returns the bytes as they
    are, without parsing them into a message and writing them out again (~2 us a span). Anything
    else parses them once and asks the message."""

    __slots__ = ("_data", "_message")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._message: Any = None

    def SerializeToString(self, **_: Any) -> bytes:  # noqa: N802 - protobuf's name
        return self._data

    SerializePartialToString = SerializeToString

    def ByteSize(self) -> int:  # noqa: N802 - protobuf's name
        return len(self._data)

    def _parsed(self) -> ExportTraceServiceRequest:
        if self._message is None:
            self._message = ExportTraceServiceRequest.FromString(self._data)
        return self._message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parsed(), name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SerializedRequest):
            return self._parsed() == other._parsed()
        return self._parsed() == other

    __hash__ = None  # type: ignore[assignment]  # as a message's


def serialized_spans(spans: Sequence[Any]) -> Any:
    """``encode_spans`` for the OTLP/HTTP span exporter, which serializes the message it gets: the
    bytes, wrapped (:class:`SerializedRequest`). Any error: the SDK's encoder, as in :func:`fast_encode_spans`."""
    try:
        return SerializedRequest(encode_request(spans))
    except Exception:  # noqa: BLE001
        if _any_encoded(spans):
            raise
        return encode_spans(spans)


_HTTP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def install(exporter_module: str) -> bool:
    """Make an OTLP span exporter module encode with this module; whether it does.

    Both OTLP span exporters (gRPC, HTTP) call the module-level name ``encode_spans``; the HTTP
    one serializes what it returns at once, so it gets the bytes (:func:`serialized_spans`); the
    gRPC one hands its message to a stub that serializes it (see :func:`send_bytes`).
    """
    module = importlib.import_module(exporter_module)
    ours = serialized_spans if exporter_module == _HTTP_MODULE else fast_encode_spans
    if getattr(module, "encode_spans", None) is encode_spans:
        module.encode_spans = ours
    return getattr(module, "encode_spans", None) is ours


_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def send_bytes(exporter: Any) -> bool:
    """Let an OTLP/gRPC span exporter send the request bytes as they are: its stub (made again
    whenever the exporter reconnects) gets a serializer that passes bytes through, and its
    ``_translate_data`` returns the bytes (the same ones for each retry of a batch), so that
    a batch is neither parsed into a message nor written out again.

    Uses the exporter's ``_stub``, ``_channel``, ``_client`` and ``_translate_data`` (1.43-1.45,
    in _compat: "otlp-grpc-bytes"); False, and the exporter left as it is, when one is missing.
    """
    stub_class = getattr(exporter, "_stub", None)
    if stub_class is None or not hasattr(exporter, "_channel") or not hasattr(exporter, "_client"):
        return False
    if not callable(getattr(exporter, "_translate_data", None)):
        return False
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    def bytes_stub(channel: Any) -> Any:
        stub = stub_class(channel)
        stub.Export = channel.unary_unary(
            _EXPORT_METHOD,
            request_serializer=_as_bytes,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        return stub

    last: list[Any] = [None, b""]  # the batch last encoded and its bytes: retries send them again

    def translate(data: Any) -> bytes:
        if data is not last[0]:
            last[:] = data, encode_request(data)
        return last[1]

    export = exporter.export

    def export_then_forget(batch: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return export(batch, *args, **kwargs)
        finally:
            last[:] = None, b""  # a batch's bytes live as long as its export, never longer

    exporter._stub = bytes_stub
    if exporter._channel is not None:
        exporter._client = bytes_stub(exporter._channel)
    exporter._translate_data = translate
    exporter.export = export_then_forget
    return True


def _as_bytes(request: Any) -> bytes:
    return request if isinstance(request, bytes) else request.SerializeToString()
