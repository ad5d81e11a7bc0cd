"""Private data out of spans: secret-looking query values and captured headers, whoever recorded them.

The raw query of a request (``/orders/?token=abc123``) lands in ``http.target``, ``http.url``,
``url.full`` or ``url.query``, from the Django middleware and every HTTP client
instrumentation alike; captured request and response headers land in
``http.request.header.*`` / ``http.response.header.*``. :class:`ScrubbingSpanProcessor`,
first on the tracer provider, rewrites the values whose parameter or header *name* matches
``OTEL_LAUNCH_REDACT`` before any exporter sees the span. Names are kept: they help to debug,
and they are not the secret.

The pure functions are apart from the processor so that they are tested without a span.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from otel_launch._settings import MASK

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


def redact_query(query: str, secret: re.Pattern[str]) -> str:
    """``a=1&token=x`` -> ``a=1&token=***`` for every parameter whose name matches ``secret``.

    Returns ``query`` itself when nothing changes, so callers can tell with ``is``.
    """
    items = query.split("&")
    changed = False
    for index, item in enumerate(items):
        name, sep, value = item.partition("=")
        if not sep or not value or value == MASK:
            continue
        decoded = unquote_plus(name) if "%" in name or "+" in name else name
        if secret.search(decoded):
            items[index] = f"{name}={MASK}"
            changed = True
    return "&".join(items) if changed else query


def _redact_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, host = authority.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}@{host}" if has_password and user else f"{MASK}@{host}"
    return f"{scheme}://{masked}{slash}{path}"


def redact_url(url: str, secret: re.Pattern[str]) -> str:
    """A URL or a target (``/path?query#fragment``) with secret query values masked (and a
    password before the host, for client spans). Returns ``url`` itself when nothing changes."""
    result = _redact_userinfo(url) if "@" in url else url
    head, question, query = result.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        redacted = redact_query(query, secret)
        if redacted is not query:
            result = f"{head}?{redacted}{hash_}{fragment}"
    return url if result == url else result


def redact_attributes(attributes: Any, secret: re.Pattern[str], headers: bool) -> dict[str, Any] | None:
    """The changed attributes of a span (None when none changes): a few lookups for most spans."""
    changes: dict[str, Any] = {}
    for key in URL_KEYS:
        value = attributes.get(key)
        if value.__class__ is str and ("?" in value or "@" in value):  # a query, or a password before the host
            redacted = redact_url(value, secret)
            if redacted is not value:
                changes[key] = redacted
    value = attributes.get(QUERY_KEY)
    if value.__class__ is str and value:
        redacted = redact_query(value, secret)
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
    the internals this relies on; tests/unit/test_scrub.py runs it on the real SDK). The live
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
        if changes is None:
            return
        from opentelemetry.attributes import BoundedAttributes

        # Built empty and filled directly: the constructor would re-validate every value.
        scrubbed = BoundedAttributes(immutable=False)
        scrubbed._dict = {**data, **changes}
        scrubbed.dropped = getattr(attributes, "dropped", 0)
        scrubbed._immutable = True
        span._attributes = scrubbed

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
