"""Django: instrumented right before a request handler loads its middleware.

Every way Django serves requests (WSGI, ASGI, runserver, the test client) builds a handler
whose ``load_middleware()`` reads ``settings.MIDDLEWARE``; instrumenting at that moment
inserts the OpenTelemetry middleware in time, and only after the app has chosen its
settings (``wsgi.py`` and ``manage.py`` set DJANGO_SETTINGS_MODULE first). Management
commands that serve no requests never pay for the request instrumentation (~100 ms of
imports).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from otel_launch._runtime._log import warn


def instrument() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(DjangoInstrumentor())


def on_import(handlers_base: ModuleType) -> None:
    handler_class = handlers_base.BaseHandler
    original = handler_class.load_middleware

    @functools.wraps(original)
    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            instrument()
        except Exception as exc:  # never stand between the app and its own handler
            warn(f"could not instrument django, it runs without telemetry ({type(exc).__name__}: {exc})")
        return original(self, *args, **kwargs)

    handler_class.load_middleware = load_middleware
