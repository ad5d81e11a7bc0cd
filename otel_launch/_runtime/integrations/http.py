"""Outgoing HTTP (requests, urllib, urllib3, httpx): untraced outside any span.

The contrib instrumentations make a CLIENT span for every call and inject ``traceparent``.
A call made outside any span (a health probe thread, a start-up fetch, a client library's
own polling) would be a one-span trace of its own, as broker bookkeeping would. Such calls
run with HTTP instrumentation suppressed: no span and no header, so a downstream service
decides for itself. Sampling them out instead would send ``traceparent`` with flag 00 and
make the downstream service drop its trace.

The wrappers go outside the contrib's (applied after it instrumented), so the suppression
is in place before it decides. The OTLP/HTTP exporter's own requests are never traced: the
SDK's batch processors and metric reader export with all instrumentation suppressed.
"""

from __future__ import annotations

import importlib
from typing import Any

from otel_launch._runtime.integrations._instrumentor import inside_a_span

# entry-point name -> (module, attribute path) of each method the contrib wraps
_ENTRY_METHODS = {
    "requests": [("requests.sessions", "Session.send")],
    "urllib": [("urllib.request", "OpenerDirector.open")],
    "urllib3": [("urllib3.connectionpool", "HTTPConnectionPool.urlopen")],
    "httpx": [("httpx", "HTTPTransport.handle_request"), ("httpx", "AsyncHTTPTransport.handle_async_request")],
}


def _suppressed(wrapped: Any, args: Any, kwargs: Any) -> Any:
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    with suppress_http_instrumentation():
        return wrapped(*args, **kwargs)


async def _suppressed_async(wrapped: Any, args: Any, kwargs: Any) -> Any:
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    with suppress_http_instrumentation():
        return await wrapped(*args, **kwargs)


def _sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if inside_a_span():
        return wrapped(*args, **kwargs)
    return _suppressed(wrapped, args, kwargs)


def _async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if inside_a_span():
        return wrapped(*args, **kwargs)
    return _suppressed_async(wrapped, args, kwargs)


def untraced_outside_spans(name: str) -> None:
    """Wrap the methods the contrib instrumentation ``name`` just wrapped."""
    from wrapt import wrap_function_wrapper

    for module, method in _ENTRY_METHODS[name]:
        wrapper = _async if method.endswith("_async_request") else _sync
        wrap_function_wrapper(importlib.import_module(module), method, wrapper)
