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

_INT64 = (1 << 64) - 1
_CACHE_LIMIT = 4096  # distinct encoded attributes kept; cleared when full (ports, ids vary)
_YIELD_EVERY = 32  # spans encoded between two offers of the GIL to the app's threads
_attributes: dict[tuple[str, type, Any], bytes] = {}
_groups: dict[int, tuple[Any, bytes, bytes]] = {}  # id(resource or scope) -> (object, head, tail)
_SMALL = [bytes((n,)) for n in range(128)]
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_KINDS = {kind: _SMALL[value] for kind, value in _SPAN_KIND_MAP.items()}


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
    """Span field 9 (attributes) holding one KeyValue, from the cache when seen before."""
    cache_key = (key, type(value), value)
    try:
        return _attributes[cache_key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value
        return _field(b"\x4a", _key_value(key, value))
    if len(_attributes) >= _CACHE_LIMIT:
        _attributes.clear()
    encoded = _attributes[cache_key] = _field(b"\x4a", _key_value(key, value))
    return encoded


def _span(span: Any) -> bytes:
    """One Span message, field by field in the proto's numbering."""
    context = span.get_span_context()
    if span.events or span.links or context.trace_state:
        return _encode_span(span).SerializeToString()
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    parent = span.parent
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_field(b"\x2a", span.name.encode("utf-8", "surrogatepass")))
    parts.append(b"\x30" + _KINDS[span.kind])
    if span.start_time:
        parts.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(b"\x41" + _pack_fixed64(span.end_time))
    # The plain dict inside the SDK's BoundedAttributes, when there is one: its Mapping methods
    # go through Python-level __getitem__ calls for every key.
    attributes = getattr(getattr(span, "_attributes", None), "_dict", None) or span.attributes
    if attributes:
        parts.extend([_attribute(key, value) for key, value in attributes.items()])
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    code = status.status_code.value
    message = status.description
    payload = (_field(b"\x12", message.encode("utf-8", "surrogatepass")) if message else b"") + (
        b"\x18" + _SMALL[code] if code else b""
    )
    parts.append(_field(b"\x7a", payload))
    parts.append(b"\x85\x01" + _pack_fixed32(_span_flags(parent)))
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
    """One span as it sits in a ScopeSpans message: its encoded Span, length first.

    The lean batch processor (``_span_export``) encodes each span when it ends and queues
    ``(resource, scope, encode_span(span))``; :func:`encode_request` takes those as they are."""
    return _with_length(_span(span))


def encode_request(spans: Sequence[Any]) -> bytes:
    """A serialized ExportTraceServiceRequest holding ``spans``, grouped by resource and scope.

    An item is a ReadableSpan, or a span encoded already: ``(resource, scope, encode_span(span))``."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for number, span in enumerate(spans, 1):
        if type(span) is tuple:
            resource, scope, encoded = span
            scope = scope or None
        else:
            if number % _YIELD_EVERY == 0:
                # Let a waiting request thread have the GIL: the interpreter would only hand it
                # over after its 5 ms switch interval, and that wait lands in request latency.
                time.sleep(0)
            resource, scope = span.resource, span.instrumentation_scope or None
            encoded = _with_length(_span(span))
        scopes = grouped.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (scope, []))[1].append(encoded)
    out = []
    for resource, scopes in grouped.values():
        body = []
        for scope, encoded in scopes.values():
            head, tail = _group(scope, _scope_parts)
            body.append(_field(b"\x12", head + b"".join(b"\x12" + s for s in encoded) + tail))
        head, tail = _group(resource, _resource_parts)
        out.append(_field(b"\x0a", head + b"".join(body) + tail))
    return b"".join(out)


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


def install(exporter_module: str) -> None:
    """Make an OTLP span exporter module encode with this module.

    Both OTLP span exporters (gRPC, HTTP) call the module-level name ``encode_spans``; the HTTP
    one serializes what it returns at once, so it gets the bytes (:func:`serialized_spans`); the
    gRPC one hands its message to a stub that serializes it (see :func:`send_bytes`).
    """
    module = importlib.import_module(exporter_module)
    if getattr(module, "encode_spans", None) is encode_spans:
        module.encode_spans = serialized_spans if exporter_module == _HTTP_MODULE else fast_encode_spans


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
