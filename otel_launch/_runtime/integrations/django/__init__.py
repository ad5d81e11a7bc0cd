"""Django: requests instrumented right before a handler loads its middleware; one span per command.

Every way Django serves requests (WSGI, ASGI, runserver, the test client) builds a handler
whose ``load_middleware()`` reads ``settings.MIDDLEWARE``; instrumenting at that moment
inserts the OpenTelemetry middleware in time, and only after the app has chosen its
settings (``wsgi.py`` and ``manage.py`` set DJANGO_SETTINGS_MODULE first). Nothing here
reads settings earlier: ``opentelemetry-instrument`` configures empty settings when the
variable is not set yet at import, and the app then fails. Management commands that serve
no requests never pay for the request instrumentation (~100 ms of imports).
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

from otel_launch._runtime import _compat
from otel_launch._runtime.integrations._activation import guard

# Commands that serve, work a queue (django-tasks-db's db_worker) or wait for a person: a span would stay
# open for the process's life (db_worker's tasks have spans of their own: tasks.py).
LONG_RUNNING_COMMANDS = frozenset({"runserver", "testserver", "shell", "dbshell", "db_worker"})


def instrument() -> None:
    """Our request middleware in ``settings.MIDDLEWARE``, unless the app instrumented Django itself."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from otel_launch._runtime.integrations.django import contrib_middleware

    if os.environ.get("OTEL_PYTHON_DJANGO_INSTRUMENT") == "False":  # the contrib's off switch
        return
    if DjangoInstrumentor().is_instrumented_by_opentelemetry:
        # The app ran the contrib's instrumentor: its middleware serves, never a second span.
        _set_middleware(remove=OUR_MIDDLEWARE)
        contrib_middleware.apply()
        return
    if not _compat.usable("django-request"):  # a contrib release whose internals ours cannot use
        _contrib_middleware(fixes=False)  # as it is: its fixes need the same names
        return
    from otel_launch._runtime.integrations.django import request

    request.config()
    _set_middleware(add=OUR_MIDDLEWARE)


_contrib_serves = False


def contrib_instead(handlers_base: ModuleType | None = None) -> str:
    """The contrib's Django middleware in place of ours, when our request path cannot serve.

    Its instrumentor inserts its middleware into ``settings.MIDDLEWARE`` (and configures empty
    settings when the app's are not loaded yet: the app then fails), and imports Django's ASGI
    handler, whose import may be the one calling us: so it runs when a handler loads its
    middleware, as ours does.
    """
    global _contrib_serves
    _contrib_serves = True
    if handlers_base is None:  # from our load_middleware (its step failed): settings are loaded
        return _contrib_middleware()
    on_import(handlers_base)
    return "the contrib's Django middleware serves instead"


def _contrib_middleware(fixes: bool = True) -> str:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once
    from otel_launch._runtime.integrations.django import contrib_middleware

    _set_middleware(remove=OUR_MIDDLEWARE)
    instrument_once(DjangoInstrumentor())
    # Our fixes are our code too: never run on a Django release older than we test.
    if fixes and _compat.older_than_supported("django") is None:
        try:
            contrib_middleware.apply()
        except Exception:  # they share our request path's code, which may be what failed
            return "the contrib's Django middleware serves instead, as it is (without otel-launch's fixes)"
    return "the contrib's Django middleware serves instead"


# request.MIDDLEWARE, named without importing request.py (which needs the contrib's internals).
OUR_MIDDLEWARE = "otel_launch._runtime.integrations.django.request.OpenTelemetryMiddleware"


def _set_middleware(add: str | None = None, remove: str | None = None) -> None:
    from django.conf import settings

    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if remove in middleware:
        middleware.remove(remove)
    elif add and add not in middleware:
        from opentelemetry.instrumentation.django import _get_django_otel_middleware_position

        middleware.insert(_get_django_otel_middleware_position(len(middleware), 0), add)
    else:
        return
    settings.MIDDLEWARE = middleware


def on_db_import(backend_base: ModuleType) -> None:
    """SQL spans of Django's own connections (see :mod:`.sql`)."""
    from otel_launch._runtime.integrations.django import sql

    sql.on_backend_import(backend_base)


def on_import(handlers_base: ModuleType) -> None:
    handler_class = handlers_base.BaseHandler
    original = handler_class.load_middleware
    if getattr(original, "_otel_launch", False):
        return

    @functools.wraps(original)
    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The guard never lets telemetry stand between the app and its handler.
        if _contrib_serves:
            guard("django", _contrib_middleware)
        else:
            guard("django", instrument, fallback=contrib_instead)
        return original(self, *args, **kwargs)

    load_middleware._otel_launch = True  # type: ignore[attr-defined]
    handler_class.load_middleware = load_middleware


def on_management_import(management_base: ModuleType) -> None:
    """Each management command run is one span, named after the command."""
    command_class = management_base.BaseCommand
    original = command_class.execute

    @functools.wraps(original)
    def execute(self: Any, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rpartition(".")[2]
        if name in LONG_RUNNING_COMMANDS:
            return original(self, *args, **options)
        return _run_in_span(name, original, self, args, options)

    command_class.execute = execute


def _run_in_span(name: str, execute: Any, command: Any, args: tuple, options: dict) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    tracer = trace.get_tracer("otel_launch.django.command")
    span = tracer.start_span(name, attributes={"django.command": name})
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            return execute(command, *args, **options)
        except SystemExit as exc:  # sys.exit(0) inside a command is success
            if exc.code not in (None, 0):
                span.set_status(Status(StatusCode.ERROR, f"exit code {exc.code}"))
            raise
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


# The cache API calls worth a span; keys and values are never recorded (they hold app data).
CACHE_OPERATIONS = ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "has_key", "incr", "decr")


def on_cache_import(cache_module: ModuleType) -> None:
    """Spans for Django cache calls made inside a span, whatever the backend."""
    handler_class = cache_module.CacheHandler
    create_connection = handler_class.create_connection

    @functools.wraps(create_connection)
    def traced_create_connection(self: Any, alias: str) -> Any:
        backend = create_connection(self, alias)
        # The app's cache works untraced rather than not at all.
        guard("django", lambda: _trace_cache_calls(backend, alias), without=f"the cache {alias!r} runs without spans")
        return backend

    handler_class.create_connection = traced_create_connection


def _trace_cache_calls(backend: Any, alias: str) -> None:
    from opentelemetry import trace

    from otel_launch._runtime.integrations._instrumentor import inside_a_span

    tracer = trace.get_tracer("otel_launch.django.cache")
    backend_name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    attributes = {"django.cache.alias": alias, "django.cache.backend": backend_name}
    missing = object()

    def traced(operation: str, call: Any) -> Any:
        @functools.wraps(call)
        def cache_call(*args: Any, **kwargs: Any) -> Any:
            if not inside_a_span():
                return call(*args, **kwargs)
            with tracer.start_as_current_span(f"cache.{operation}", kind=trace.SpanKind.CLIENT) as span:
                if span.is_recording():
                    span.set_attributes(attributes)
                if operation != "get":
                    return call(*args, **kwargs)
                # get(key, default): a hit is whatever is not the default it would return.
                default = args[1] if len(args) > 1 else kwargs.get("default", missing)
                if default is missing:
                    value = call(args[0], missing, *args[2:], **kwargs)
                    span.set_attribute("django.cache.hit", value is not missing)
                    return None if value is missing else value
                value = call(*args, **kwargs)
                span.set_attribute("django.cache.hit", value is not default)
                return value

        return cache_call

    for operation in CACHE_OPERATIONS:
        setattr(backend, operation, traced(operation, getattr(backend, operation)))
