"""Lean SQL spans for Django's own connections, through ``connection.execute_wrappers``.

Reproduces what the contrib DB-API instrumentation (``opentelemetry.instrumentation.dbapi``,
via its sqlite3 / psycopg / psycopg2 instrumentors) records for a query: one CLIENT span named
after the statement's first word, current while the query runs, with ``db.system`` (or
``db.system.name``), ``db.name`` (``db.namespace``), ``db.statement`` (``db.query.text``)
without parameter values, ``db.user``, the peer (``net.peer.*`` / ``server.*``), the same
instrumentation scope, the exception event and ERROR status of a failed query, and with the
``database`` opt-in the ``db.client.operation.duration`` / returned-rows histograms. The
statement is Django's text (placeholders as Django writes them), as the contrib's cursor proxy
sees it too.

Why our own: the contrib proxies every cursor (wrapt object proxies, a cursor tracer, a
context-manager span, attributes set one by one): ~+120-150 us a Django ORM query measured,
most of a list view's cost. Django's documented hook gives us the statement directly.

Never two spans for one query: when Django opens a connection, the driver's ``connect()`` goes
through the contrib's wrapper (which returns its proxy); we keep the contrib's per-connection
integration (what it read from the connection: database, user, host, port, tracer, modes) and
hand Django the driver's own connection; when that connection reconnects, the driver's
``connect`` is called past the contrib's wrapper (see :func:`dbapi.connecting_for_django`).
Connections Django does not own (raw ``sqlite3``, ``psycopg`` in a script or task) keep the
contrib's proxy and its spans.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import Status, StatusCode

from otel_launch._runtime import _compat
from otel_launch._runtime.integrations import dbapi
from otel_launch._runtime.integrations.django import n_plus_one

_LEADING_COMMENT = re.compile(r"^/\*.*?\*/")  # what the contrib strips before the first word
_CLIENT = trace.SpanKind.CLIENT


def on_backend_import(base_module: Any) -> None:
    """Every Django connection (one a thread and alias) gets the wrapper at construction."""
    wrapper_class = base_module.BaseDatabaseWrapper
    init = wrapper_class.__init__

    @functools.wraps(init)
    def traced_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _take_over_connections(type(self))
        self.execute_wrappers.append(trace_query)

    wrapper_class.__init__ = traced_init


def _take_over_connections(backend_class: type) -> None:
    if backend_class.__dict__.get("_otel_launch_sql"):
        return
    get_new_connection = backend_class.get_new_connection

    @functools.wraps(get_new_connection)
    def unproxied(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.get("_otel_launch_queries") is not None:
            # Reconnecting (Django closes connections after each request by default): same
            # settings, same attributes; skip the contrib's per-connect set-up (~+65-90 us).
            with dbapi.connecting_for_django():
                connection = get_new_connection(self, *args, **kwargs)
            # A driver dbapi.py does not know (PyMySQL, from the catalogue) still went through the
            # contrib's wrapper: its proxy would trace each query a second time.
            return _unproxied(connection) or connection
        connection = get_new_connection(self, *args, **kwargs)
        if not _compat.usable("django-sql"):  # checked at the first connect: it imports the contrib
            return connection
        try:
            raw = _unproxied(connection)
            if raw is not None:  # the contrib's proxy
                self._otel_launch_queries = _Queries(connection._self_db_api_integration)
                return raw
            # a driver no installed instrumentation wraps: mysqlclient, oracledb, ...
            integration = _integration_from_settings(self, connection)
            if integration is not None:
                self._otel_launch_queries = _Queries(integration)
        except Exception as exc:  # the contrib's integration changed: its proxy (if any) traces on
            _report(exc)
        return connection

    backend_class.get_new_connection = unproxied
    backend_class._otel_launch_sql = True


def _unproxied(connection: Any) -> Any:
    """The driver's connection inside the contrib's ``TracedConnectionProxy``; None for any other."""
    if getattr(connection, "_self_db_api_integration", None) is not None and hasattr(connection, "__wrapped__"):
        return connection.__wrapped__
    return None


def _integration_from_settings(wrapper: Any, connection: Any) -> Any:
    """What the contrib's integration would know of a connection, from Django's own settings.

    Every Django backend runs its queries through ``execute_wrappers``, so a backend whose driver
    no installed instrumentation covers (mysqlclient without its instrumentation, oracledb, a
    third-party backend) gets the same spans: ``db.system`` is Django's vendor name (``mysql``,
    ``oracle``, as the contrib names them), the database, user, host and port come from
    ``DATABASES``. None when an instrumentation, ours or the catalogue's, is registered for the
    driver's module: it traces the driver itself (psycopg's through its cursor factory), or it was
    disabled and the app asked for no spans from it.
    """
    from opentelemetry.instrumentation.dbapi import DatabaseApiIntegration

    from otel_launch._runtime.integrations import INTEGRATIONS

    driver = type(connection).__module__.partition(".")[0]
    if any(integration.trigger.partition(".")[0] == driver for integration in INTEGRATIONS):
        return None
    settings = wrapper.settings_dict
    props = {"database": settings.get("NAME"), "user": settings.get("USER"), "host": settings.get("HOST")}
    port = str(settings.get("PORT") or "")
    props["port"] = int(port) if port.isdigit() else None
    integration = DatabaseApiIntegration(__name__, wrapper.vendor, connection_attributes={})
    integration.connection_props = {key: value for key, value in props.items() if value}
    integration.get_connection_attributes(None)  # reads connection_props, as after a connect
    return integration


class _Queries:
    """What one connection's spans share, computed once a connection, as the contrib does."""

    __slots__ = ("tracer", "fallback_name", "before", "statement_keys", "after", "metrics")

    def __init__(self, integration: Any) -> None:
        from opentelemetry.instrumentation._semconv import _report_new, _report_old

        mode = integration._sem_conv_opt_in_mode_db
        self.tracer = integration._tracer
        self.fallback_name = integration.database or integration.name
        self.before: dict[str, Any] = {}
        if _report_old(mode):
            self.before["db.system"] = integration.database_system
        if _report_new(mode):
            self.before["db.system.name"] = integration.database_system
        if integration.database:
            if _report_old(mode):
                self.before["db.name"] = integration.database
            if _report_new(mode):
                self.before["db.namespace"] = integration.database
        self.statement_keys = (("db.statement",) if _report_old(mode) else ()) + (
            ("db.query.text",) if _report_new(mode) else ()
        )
        self.after = dict(integration.span_attributes)
        self.metrics = integration if _report_new(mode) and integration._duration_histogram else None


def _operation(statement: str) -> str:
    if not statement:
        return ""
    words = (_LEADING_COMMENT.sub("", statement) if statement.startswith("/*") else statement).split(maxsplit=1)
    return words[0] if words else ""


def trace_query(execute: Any, sql: Any, params: Any, many: bool, context: dict) -> Any:
    """The execute wrapper: one CLIENT span a query (or an ``executemany``)."""
    if not isinstance(sql, str):
        return execute(sql, params, many, context)
    current = context_api.get_current()
    if current.get(_SUPPRESS_INSTRUMENTATION_KEY):
        return execute(sql, params, many, context)
    if _inside_an_unsampled_span(current):
        # Its span would be dropped, and no N+1 watch is open: only the opt-in metrics remain.
        queries = getattr(context["connection"], "_otel_launch_queries", None)
        if queries is None or queries.metrics is None:
            return execute(sql, params, many, context)
        return _measured_only(queries, execute, sql, params, many, context)
    statement = sql  # the text the contrib records: Django's, before a backend rewrites placeholders
    # Counted on every Django connection, also those a driver's instrumentation traces itself
    # (psycopg's cursor factory): N+1 is about the app's statements, whoever makes their spans.
    n_plus_one.count(statement)
    queries = getattr(context["connection"], "_otel_launch_queries", None)
    if queries is None:
        return execute(sql, params, many, context)
    operation = _operation(statement)
    try:
        span = _start(queries, statement, operation)
    except Exception as exc:  # telemetry never fails a query
        _report(exc)
        return execute(sql, params, many, context)
    # Not made current (the contrib makes it current): nothing runs inside a driver's execute that
    # could be its child, and an attach and detach a query are ~3 us of a query's cost.
    started = time.perf_counter()
    error = None
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        # Django re-raises the driver's error as its own ``django.db.utils`` twin (``from`` it);
        # the contrib, inside Django's wrapper, records the driver's.
        error = exc.__cause__ if type(exc).__module__ == "django.db.utils" and exc.__cause__ is not None else exc
        if span.is_recording():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        raise
    finally:
        try:
            if queries.metrics is not None:
                _record_metrics(queries.metrics, context["cursor"], operation, started, error)
            span.end()
        except Exception as exc:  # never in place of the query's own result or error
            _report(exc)


def _measured_only(queries: _Queries, execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
    """A query with no span, whose ``db.client.*`` measurements are still taken (metrics are never sampled)."""
    started = time.perf_counter()
    error = None
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        error = exc.__cause__ if type(exc).__module__ == "django.db.utils" and exc.__cause__ is not None else exc
        raise
    finally:
        try:
            _record_metrics(queries.metrics, context["cursor"], _operation(sql), started, error)
        except Exception as exc:
            _report(exc)


# [tracer provider, whether its sampler drops every child of an unsampled span]
_sampler_verdict: list[Any] = [None, False]
# (the span last asked about, the answer), one tuple (threads read it whole): a request's queries
# share their parent, asked about once
_last_parent: tuple[Any, bool] = (None, False)


def _inside_an_unsampled_span(current: Any) -> bool:
    """Whether a query span would be dropped before it starts: the current span is valid and not
    sampled, and the provider's sampler is the SDK's ``ParentBased`` with its default (drop) for
    unsampled parents (``parentbased_*``: the launcher's default), which decides on the parent
    alone (or ``always_off``). Any other sampler is asked for each query, as before.

    ``current``: the current context. Its span is read under the API's own key (_compat:
    "unsampled-children"), without ``get_current_span()``'s check of the span against an ABC."""
    global _last_parent
    span = current.get(_SPAN_KEY) if _SPAN_KEY is not None else trace.get_current_span(current)
    if span is None:
        return False
    last = _last_parent
    if span is last[0]:
        return last[1]
    parent = span.get_span_context()
    answer = False
    if parent.is_valid and not parent.trace_flags.sampled:
        provider = trace.get_tracer_provider()
        if _sampler_verdict[0] is not provider:
            _sampler_verdict[:] = provider, drops_children_of_unsampled_spans(getattr(provider, "sampler", None))
        answer = _sampler_verdict[1]
    _last_parent = span, answer
    return answer


def _span_key() -> Any:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # the API's key moved: get_current_span() finds the span
        return None
    return _SPAN_KEY


_SPAN_KEY = _span_key()


def drops_children_of_unsampled_spans(sampler: Any) -> bool:
    """Whether ``sampler`` drops every span whose parent is not sampled, without a look at the
    span: the SDK's ``ALWAYS_OFF``, or its ``ParentBased`` (not a subclass deciding otherwise)
    whose samplers for an unsampled parent, local and remote, are ``ALWAYS_OFF`` (the default).
    False for any other sampler, and when these internals are not found (_compat:
    "unsampled-children")."""
    if sampler is None or not _compat.usable("unsampled-children"):
        return False
    try:
        from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler

        def drops(sampler: Any) -> bool:
            return type(sampler) is StaticSampler and sampler._decision is Decision.DROP

        if drops(sampler):
            return True
        if not isinstance(sampler, ParentBased) or type(sampler).should_sample is not ParentBased.should_sample:
            return False
        return drops(sampler._local_parent_not_sampled) and drops(sampler._remote_parent_not_sampled)
    except Exception:  # internals gone: each query asks the sampler, as before
        return False


def _start(queries: _Queries, statement: str, operation: str) -> Any:
    span = queries.tracer.start_span(operation or queries.fallback_name, kind=_CLIENT)
    if span.is_recording():
        attributes = dict(queries.before)
        for key in queries.statement_keys:
            attributes[key] = statement
        attributes.update(queries.after)
        span.set_attributes(attributes)
    return span


_reported = False


def _report(exc: Exception) -> None:
    """One warning line the first time SQL telemetry fails; the queries run on untraced."""
    global _reported
    if not _reported:
        _reported = True
        from otel_launch._runtime._log import warn

        warn(f"django SQL telemetry failed, the queries run on ({type(exc).__name__}: {exc})")


def _record_metrics(integration: Any, cursor: Any, operation: str, started: float, error: Any) -> None:
    elapsed = time.perf_counter() - started
    attributes: dict[str, Any] = {"db.system.name": integration.database_system}
    if integration.database:
        attributes["db.namespace"] = integration.database
    if operation:
        attributes["db.operation.name"] = operation
    if integration._server_address is not None:
        attributes["server.address"] = integration._server_address
    if integration._server_port is not None:
        attributes["server.port"] = integration._server_port
    if error is not None:
        attributes["error.type"] = type(error).__qualname__
    integration._duration_histogram.record(elapsed, attributes=attributes)
    if error is None:
        rowcount = getattr(cursor, "rowcount", None)
        if isinstance(rowcount, int) and rowcount >= 0:
            integration._returned_rows_histogram.record(rowcount, attributes=attributes)
