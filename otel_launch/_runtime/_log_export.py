"""Log export (``OTEL_LOGS_EXPORTER=otlp``) that leaves the app's logging configuration alone.

A handler of ours on the root logger (as upstream attaches it) is at the mercy of the app: a
``LOGGING`` setting (``dictConfig``) that configures the root logger replaced it, and 0 records
were exported; and ``logging.basicConfig()`` does nothing when the root logger has a handler,
so an app that configures its console that way printed nothing at all.

So no handler is added anywhere. Records are exported from ``Logger.callHandlers``, the step
that hands a record to the handlers of its logger and its ancestors; it runs once a record, at
the logger it was logged to, after what the app configured decided to keep it: the logger's
level (and ``logging.disable``), a disabled logger (``disable_existing_loggers``), the logger's
filters. A record that reaches it is exported, whatever handlers the app has (none, its own,
``propagate = False``), whenever it configured them; one stopped before it never is. The
console, files and levels behave exactly as without otel-launch.

Never exported: records of OpenTelemetry's and otel-launch's own loggers, and any record logged
while one is being exported (an export failure that logs must not feed the exporter).

Cost: with export on, a call and a name check a record, then the SDK's ``LoggingHandler.emit``
(the same translation upstream's handler does). With export off nothing is installed.
``Logger.callHandlers`` is undocumented (in the standard library since Python 2.3):
tests/unit/runtime/test_log_export.py fails the day ``Logger.handle`` stops calling it, and without it
a handler on the root logger serves, as before, with one warning line.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_OWN_LOGGERS = ("opentelemetry", "otel_launch")
_exporting = threading.local()
_handler: list[Any] = []  # the SDK's LoggingHandler, built on the first record
_failed: list[Exception] = []


def _sdk_handler() -> Any:
    if not _handler:
        from opentelemetry._logs import get_logger_provider
        from opentelemetry.sdk._logs import LoggingHandler

        handler = LoggingHandler(logger_provider=get_logger_provider())
        # logging.shutdown flushes every handler ever made; SDK 1.43's flush starts a thread,
        # which Python 3.12+ refuses at exit (a traceback). _lifecycle flushes the provider.
        handler.flush = lambda: None  # type: ignore[method-assign]
        _handler.append(handler)
    return _handler[0]


def export(record: Any) -> None:
    """Send one record to the logger provider; never raises into the app's logging call.

    Tolerates what logging tolerates: a record made by hand (``makeLogRecord``) whose ``name``
    is not a string, a message that is no string; one whose arguments do not fit its message
    (logging's handlers report it through ``handleError`` and go on) is exported with the
    message unformatted, its arguments as an attribute.
    """
    if getattr(_exporting, "active", False):
        return
    name = getattr(record, "name", None)
    if isinstance(name, str) and name.startswith(_OWN_LOGGERS):
        return
    _exporting.active = True
    token = None
    try:
        token = _attach_request_span(record)
        try:
            _sdk_handler().emit(record)
        except (TypeError, ValueError):  # formatting failed (or a record unlike any logging makes)
            _sdk_handler().emit(_unformatted(record))
    except Exception as exc:  # the app's log call goes on; said once
        if not _failed:
            _failed.append(exc)
            from otel_launch._runtime._log import warn

            warn(f"a log record could not be exported ({type(exc).__name__}: {exc}); this is said once")
    finally:
        _exporting.active = False
        if token is not None:
            sys.modules["opentelemetry.context"].detach(token)


def _attach_request_span(record: Any) -> Any:
    """Where no span is current, the span of the Django request the record is about (see
    ``_log_correlation.request_span``), as the exported record's context: a token, or None."""
    if getattr(record, "__dict__", {}).get("request") is None or "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import context, trace

    from otel_launch._runtime._log_correlation import request_span

    if trace.get_current_span().get_span_context().is_valid:
        return None
    span = request_span(record)
    return None if span is None else context.attach(trace.set_span_in_context(span))


def _unformatted(record: Any) -> Any:
    """A copy of a record whose message cannot be formatted with its arguments: the message as
    written, and the arguments (their ``repr``) in ``logging.args``."""
    import copy

    unformatted = copy.copy(record)
    unformatted.msg = _text(getattr(record, "msg", None))
    unformatted.args = None
    unformatted.__dict__["logging.args"] = _text(getattr(record, "args", None), repr)
    return unformatted


def _text(value: Any, as_text: Any = str) -> str:
    try:
        return as_text(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def install_log_export(logging: ModuleType) -> None:
    """Export every record the app's loggers hand to their handlers (see the module's docstring)."""
    logger_class = logging.Logger
    call_handlers = getattr(logger_class, "callHandlers", None)
    if getattr(call_handlers, "_otel_launch", False):
        return
    if call_handlers is None:
        from otel_launch._runtime._log import warn

        warn("logging.Logger.callHandlers not found: log records are exported by a handler on the root logger")
        _install_root_handler(logging)
        return

    def call_handlers_and_export(self: Any, record: Any) -> None:
        export(record)
        call_handlers(self, record)

    call_handlers_and_export.__doc__ = call_handlers.__doc__
    call_handlers_and_export.__wrapped__ = call_handlers  # type: ignore[attr-defined]
    call_handlers_and_export._otel_launch = True  # type: ignore[attr-defined]
    logger_class.callHandlers = call_handlers_and_export


def _install_root_handler(logging: ModuleType) -> None:
    class ExportingHandler(logging.Handler):  # type: ignore[name-defined, misc]
        def emit(self, record: Any) -> None:
            export(record)

    logging.getLogger().addHandler(ExportingHandler())
