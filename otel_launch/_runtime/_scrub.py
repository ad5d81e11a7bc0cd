"""Private data out of spans: secret-looking query values and captured headers, whoever recorded them.

The raw query of a request (``/orders/?token=abc123``) lands in ``http.target``, ``http.url``,
``url.full`` or ``url.query``, from the Django middleware and every HTTP client
instrumentation alike; captured request and response headers land in
``http.request.header.*`` / ``http.response.header.*``. :class:`ScrubbingSpanProcessor`,
first on the tracer provider, rewrites the values whose parameter or header *name* matches
``OTEL_LAUNCH_REDACT`` before any exporter sees the span. Names are kept: they help to debug,
and they are not the secret. Free text is masked too: the attributes of events
(``exception.message`` and ``exception.stacktrace``: urllib3's "Max retries exceeded with url:
/p?token=...", a DSN in a driver's error) and the status description, on spans;
the body and attributes of exported log records, by :class:`ScrubbingLogRecordProcessor`.
The rules are those of :mod:`otel_launch._core.masking`, shared with the launcher's own output.

The pure functions are apart from the processor so that they are tested without a span.
"""

from __future__ import annotations

import re

from otel_launch._core.masking import MASK, mask_query, mask_text, mask_url
from otel_launch._runtime._log import header_secrets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Attributes that may hold a URL or a query, old and new HTTP conventions.
URL_KEYS = ("http.target", "http.url", "url.full")
QUERY_KEY = "url.query"
HEADER_PREFIXES = ("http.request.header.", "http.response.header.")


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """The setting's pattern, compiled; None when redaction is off (``none``)."""
    return re.compile(pattern, re.IGNORECASE) if pattern else None


def _redact_value(value: Any, secret: re.Pattern[str]) -> Any:
    """Free text (an exception message, a stack trace, a log line), or a tuple of texts, with
    this process's export header values hidden too; ``value`` itself when nothing changes."""
    if value.__class__ is str:
        return mask_text(value, secret, header_secrets())
    if value.__class__ is tuple and any(item.__class__ is str for item in value):
        hidden = header_secrets()
        redacted = tuple(mask_text(item, secret, hidden) if item.__class__ is str else item for item in value)
        return value if redacted == value else redacted
    return value


def redact_mapping(attributes: Any, secret: re.Pattern[str]) -> dict[str, Any] | None:
    """The changed string values of free-text attributes (an event's, a log record's); None when
    none changes."""
    changes = {}
    for key, value in attributes.items():
        redacted = _redact_value(value, secret)
        if redacted is not value and redacted != value:
            changes[key] = redacted
    return changes or None


def _frozen(attributes: Any, changes: dict[str, Any]) -> Any:
    """A read-only BoundedAttributes of ``attributes`` with ``changes``, built without the
    constructor's re-validation of every value."""
    from opentelemetry.attributes import BoundedAttributes

    scrubbed = BoundedAttributes(immutable=False)
    scrubbed._dict = {**getattr(attributes, "_dict", attributes), **changes}
    scrubbed.dropped = getattr(attributes, "dropped", 0)
    scrubbed._immutable = True
    return scrubbed


def redact_attributes(attributes: Any, secret: re.Pattern[str], headers: bool) -> dict[str, Any] | None:
    """The changed attributes of a span (None when none changes): a few lookups for most spans."""
    changes: dict[str, Any] = {}
    for key in URL_KEYS:
        value = attributes.get(key)
        if value.__class__ is str and ("?" in value or "@" in value):  # a query, or a password before the host
            redacted = mask_url(value, secret)  # a password before the host, for client spans
            if redacted is not value:
                changes[key] = redacted
    value = attributes.get(QUERY_KEY)
    if value.__class__ is str and value:
        redacted = mask_query(value, secret)
        if redacted is not value:
            changes[QUERY_KEY] = redacted
    if headers:
        for key, value in attributes.items():
            if key.startswith(HEADER_PREFIXES) and secret.search(key.partition(".header.")[2]):
                masked = (MASK,) if isinstance(value, (tuple, list)) else MASK
                if value != masked:
                    changes[key] = masked
    return changes or None


_CAPTURE_VARS = (
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE",
)


class ScrubbingSpanProcessor:
    """First span processor of the provider: rewrites the attributes of an ended span before
    the batch processor queues it.

    Attributes are set at start (URLs, by every HTTP instrumentation) and after it (captured
    headers, by the Django middleware), so the span is scrubbed when it ends. An ended span's
    attributes are frozen; the processor gives the read-only copy each processor receives a
    scrubbed mapping of its own (``ReadableSpan._attributes`` and ``BoundedAttributes._dict``,
    the internals this relies on; tests/unit/runtime/test_scrub.py runs it on the real SDK). The live
    span the app holds is left as it was. Added only when redaction is on.
    """

    def __init__(self, pattern: str, environ: Any) -> None:
        self._secret = re.compile(pattern, re.IGNORECASE)
        # Header attributes exist only when capture is configured: only then is each key looked at.
        self._headers = any(environ.get(name, "").strip() for name in _CAPTURE_VARS)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        # Exception events and error statuses carry free text (messages, stack traces); most
        # spans have neither, and pay a few attribute reads for the check (the deque under the
        # SDK's BoundedList answers in C; the list's own __len__ costs ~70 ns).
        if getattr(span._events, "_dq", span._events) or span._status._description:
            self._scrub_text(span)
        attributes = span._attributes
        if not attributes:
            return
        # BoundedAttributes' own lookups go through Mapping.get and a KeyError per miss (~0.6 us
        # each); its dict answers in a few ns.
        data = getattr(attributes, "_dict", attributes)
        if not self._headers and not (
            "url.query" in data or "http.target" in data or "http.url" in data or "url.full" in data
        ):
            return  # most spans (SQL, cache, tasks): four dict lookups
        changes = redact_attributes(data, self._secret, self._headers)
        if changes is not None:
            span._attributes = _frozen(attributes, changes)

    def _scrub_text(self, span: Any) -> None:
        """Events' attributes and the status description, on the read-only copy (the live span's
        events list is shared with it, so a scrubbed copy replaces it)."""
        events = span._events
        if events:
            scrubbed = []
            changed = False
            for event in events:
                changes = redact_mapping(event.attributes, self._secret) if event.attributes else None
                if changes is not None:
                    from opentelemetry.sdk.trace import Event

                    event = Event(event.name, _frozen(event.attributes, changes), event.timestamp)
                    changed = True
                scrubbed.append(event)
            if changed:
                from opentelemetry.sdk.util import BoundedList

                copy = BoundedList.from_seq(getattr(getattr(events, "_dq", None), "maxlen", None), scrubbed)
                copy.dropped = getattr(events, "dropped", 0)
                span._events = copy
        status = span._status
        description = status._description
        if description:
            redacted = mask_text(description, self._secret, header_secrets())
            if redacted is not description:
                from opentelemetry.trace import Status

                span._status = Status(status.status_code, redacted)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class ScrubbingLogRecordProcessor:
    """First log record processor of the logger provider: the body and the attributes of an
    exported log record (``exception.message``, ``exception.stacktrace`` of ``logger.exception``,
    the app's own ``extra``) masked as free text before the batch processor queues the record.

    The SDK hands each processor the same read-write record, in order: masking it in place here
    is what every exporter after sees. Added only when redaction is on.
    """

    def __init__(self, pattern: str) -> None:
        self._secret = re.compile(pattern, re.IGNORECASE)

    def on_emit(self, log_record: Any) -> None:
        record = log_record.log_record
        body = record.body
        if body is not None:
            redacted = _redact_value(body, self._secret)
            if redacted is not body:
                record.body = redacted
        attributes = record.attributes
        if attributes:
            changes = redact_mapping(attributes, self._secret)
            if changes is not None:
                try:  # the SDK's record holds a mutable BoundedAttributes: its limits still apply
                    for key, value in changes.items():
                        attributes[key] = value
                except TypeError:  # an immutable mapping
                    record.attributes = _frozen(attributes, changes)

    emit = on_emit  # the name of SDKs before 1.36

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
