"""The app's own providers: ours was only ever a default.

An app that sets up OpenTelemetry itself (as the guides do: in wsgi.py, and in every Celery pool
child at worker_process_init) sets its providers after ours was built for a first use: the app's
replaces ours, quietly, and gets what ours gets (the bounded flush at exit of ``_lifecycle``, in
pool children too). A TracerProvider of the app's with no span processor is served by ours until
the app adds one.
"""

from __future__ import annotations

import atexit

from otel_launch._runtime import _lifecycle
from otel_launch._runtime._log import warn

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from typing import Any

_adopted: list[Any] = []  # the app's providers that replaced ours: flushed as ours, never replaced


def let_the_apps_providers_win(module: Any) -> None:
    # An app that sets up OpenTelemetry itself (as the guides do: in wsgi.py, and in every Celery
    # pool child at worker_process_init) sets its providers after ours was built for a first use
    # (e.g. in the worker's main process, before the fork): the API refused them ("Overriding of
    # current TracerProvider is not allowed") and the app lost its resource. Ours was only ever a
    # default: the app's replaces it, quietly, and gets what ours gets (flush at exit, in pool
    # children too). Only ours gives way: once the app's replaced it, the API's set-once rule
    # holds again for what follows (tests/process/test_providers.py). Pinned to the API's
    # globals; the own-telemetry e2e test fails if they change.
    from otel_launch._runtime import _compat

    if not _compat.usable("app-tracer-provider" if module.__name__ == "opentelemetry.trace" else "app-meter-provider"):
        return
    if module.__name__ == "opentelemetry.trace":
        internal, setter, current, once = module, "set_tracer_provider", "_TRACER_PROVIDER", "_TRACER_PROVIDER_SET_ONCE"
    else:
        from opentelemetry.metrics import _internal as internal

        setter, current, once = "set_meter_provider", "_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE"
    original = getattr(module, setter)

    def set_provider_replacing_ours(provider: Any) -> None:
        built = getattr(internal, current, None)  # ours, or a no-op one for a signal that is off
        ours = _lifecycle.registered(built) and not any(built is app for app in _adopted)
        if built is not None and (ours or not hasattr(built, "shutdown")) and not _lifecycle.registered(provider):
            setattr(internal, once, type(getattr(internal, once))())
        original(provider)
        adopted = getattr(internal, current, None) is provider
        if adopted and not _lifecycle.registered(provider) and hasattr(provider, "shutdown"):
            handler = getattr(provider, "_atexit_handler", None)  # ours flushes it, with a bound
            if handler is not None:
                atexit.unregister(handler)
                provider._atexit_handler = None
            _adopted.append(provider)
            _lifecycle.register(provider)
            if module.__name__ == "opentelemetry.trace":
                _serve_a_provider_that_exports_nothing(provider)

    setattr(module, setter, set_provider_replacing_ours)


def _serve_a_provider_that_exports_nothing(provider: Any) -> None:
    """The app set a TracerProvider with no span processor (bookwyrm does, and adds an exporter only
    when a setting of its own says so): every span of every instrumentation went nowhere, and nothing
    said so. Ours serves it, with one line at its first span, until the app adds a processor of its
    own; an app that adds one before its first span (as OpenTelemetry's guides do, right after
    setting the provider) never hears of it."""
    multi = getattr(provider, "_active_span_processor", None)
    if getattr(multi, "_span_processors", None) != () or not hasattr(provider, "add_span_processor"):
        return  # it has its own (or is not the SDK's): the app chose where its spans go
    provider.add_span_processor(_until_the_app_adds_one(multi))


def _ours_to_serve_the_apps() -> Any:
    """Our span processors (our provider's, built now if it was not), or None when ours export
    nothing either (OTEL_TRACES_EXPORTER=none)."""
    from otel_launch._runtime import sdk
    from otel_launch._runtime.sdk import from_env, from_file

    if not from_env.exporter_kinds("traces") and not from_file.active():
        return None
    processor = getattr(sdk.tracer_provider(), "_active_span_processor", None)  # built once, as the API's
    return processor if getattr(processor, "_span_processors", ()) else None


def _until_the_app_adds_one(apps: Any) -> Any:
    """A span processor that hands spans to otel-launch's processors while it is the only one of
    the app's provider, and steps aside once the app adds its own (never two exports of a span).
    Flushed and shut down with otel-launch's provider, not by the app's."""
    import threading

    from opentelemetry.sdk.trace import SpanProcessor

    first = threading.Lock()

    class UntilTheAppAddsOne(SpanProcessor):
        ours: Any = None
        looked = False

        def _serving(self) -> bool:
            if len(apps._span_processors) != 1:
                return False
            if not self.looked:  # the first span of the app's provider with no processor of its own
                with first:
                    if not self.looked:
                        self.ours = _ours_to_serve_the_apps()
                        self.looked = True
                        if self.ours is not None:
                            warn(
                                "the app's TracerProvider has no span processor: "
                                "otel-launch's exports its spans until the app adds one"
                            )
            return self.ours is not None

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self._serving():
                self.ours.on_start(span, parent_context=parent_context)

        def _on_ending(self, span: Any) -> None:
            if self._serving():
                self.ours._on_ending(span)

        def on_end(self, span: Any) -> None:
            if self._serving():
                self.ours.on_end(span)

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self.ours.force_flush(timeout_millis) if self._serving() else True

    return UntilTheAppAddsOne()
