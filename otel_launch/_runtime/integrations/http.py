"""Outgoing HTTP (requests, urllib, urllib3, httpx): instrumented at the first call, untraced
outside any span.

Instrumenting one builds the SDK (its tracer and its duration histograms): ~150 ms, with the
exit's export, in a process that only imported ``requests`` (a management command of an app
whose views import it, a CLI). So importing the client only puts stand-ins on the methods
the contrib wraps; the first call to any of them runs the instrumentor, which wraps the
stand-ins where they stand (``_first_use``), and goes on through the instrumented method.

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

import functools
import importlib
from collections.abc import Callable
from typing import Any

from otel_launch._runtime.integrations._first_use import FirstUse
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
    if name == "urllib":
        _mask_urllib_metric_urls()


def _mask_urllib_metric_urls() -> None:
    """urllib's instrumentation records the request's URL on its old-convention metrics too
    (``http.url`` of ``http.client.duration`` and the size histograms), after its own redaction:
    credentials, and AWS and GCS signatures only, so ``?token=...`` stays. The span's copy is
    scrubbed by the span processor; metric attributes pass no processor, so the URL is masked
    by the ``OTEL_LAUNCH_REDACT`` rule where the instrumentation computes it (its module's
    ``redact_url``: tests/process/test_redaction.py fails the day it is no longer used)."""
    import os

    from otel_launch._core.settings import read_setting

    pattern = read_setting("redact", os.environ)
    if not pattern:
        return
    import re

    import opentelemetry.instrumentation.urllib as instrumentation

    from otel_launch._core.masking import mask_url

    contrib = instrumentation.redact_url
    if getattr(contrib, "_otel_launch", False):
        return
    secret = re.compile(pattern, re.IGNORECASE)

    def redact_url(url: str) -> str:
        return mask_url(contrib(url), secret)

    redact_url._otel_launch = True  # type: ignore[attr-defined]
    instrumentation.redact_url = redact_url


def _owner(module: str, method: str) -> tuple[Any, str]:
    owner: Any = importlib.import_module(module)
    *path, attribute = method.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attribute


def on_first_call(name: str, instrument: Callable[[], object]) -> None:
    """Run ``instrument()`` at the first call of any method the contrib ``name`` wraps.

    The stand-ins stay on the classes while it runs, and the contrib wraps them there
    (``_first_use``): a call made meanwhile by another thread waits, and is traced. A stand-in
    that the app wrapped itself before that call keeps passing its calls to the original.
    """
    first_use = FirstUse(name, instrument)
    for module, method in _ENTRY_METHODS[name]:
        owner, attribute = _owner(module, method)
        original = owner.__dict__[attribute]
        current = functools.partial(getattr, owner, attribute)
        setattr(owner, attribute, first_use.stand_in(original, current, attribute.endswith("_async_request")))
