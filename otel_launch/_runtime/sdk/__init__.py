"""The SDK's providers, as the OpenTelemetry API asks for them: one per signal and process.

The API calls :func:`tracer_provider`, :func:`meter_provider` and :func:`logger_provider`
through entry points (pyproject.toml) the first time a process asks for a provider (see
``OTEL_PYTHON_*_PROVIDER``). Each is built once, from ``OTEL_CONFIG_FILE`` when it is set
(``from_file``), else from the standard variables (``from_env``), registered with
``_lifecycle`` to flush at exit, and never raises into the app.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from otel_launch._runtime import _lifecycle
from otel_launch._runtime._log import warn
from otel_launch._runtime.sdk import from_env, from_file

_lock = threading.RLock()
_providers: dict[str, Any] = {}


def _never_raises(fallback: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """The API re-raises a provider factory's error into the app's get_tracer() call: the
    app must run on, with a no-op provider and one warning line, instead."""

    def decorate(factory: Callable[[], Any]) -> Callable[[], Any]:
        @functools.wraps(factory)
        def guarded() -> Any:
            try:
                return factory()
            except Exception as exc:
                warn(f"telemetry set-up failed, {factory.__name__} is off ({type(exc).__name__}: {exc})")
                module, _, name = fallback.partition(":")
                return getattr(importlib.import_module(module), name)()

        return guarded

    return decorate


def _build_once(signal: str, build: Callable[[], Any]) -> Any:
    """This process's provider for a signal: built once, and registered to flush at exit."""
    with _lock:
        if signal not in _providers:
            provider = build()
            if hasattr(provider, "shutdown"):  # not a no-op provider
                _lifecycle.register(provider)
                if signal == "metrics":
                    _observe_the_process(provider)
                if "uwsgi" in sys.modules:
                    from otel_launch._runtime.integrations import uwsgi

                    uwsgi.on_first_provider()
            _providers[signal] = provider
        return _providers[signal]


def _observe_the_process(provider: Any) -> None:
    """CPU, memory, threads and GC of this process, read at collection (``process_metrics.py``)."""
    try:
        from otel_launch._runtime import process_metrics

        process_metrics.observe(provider)
    except Exception as exc:
        warn(f"process metrics are off in this process ({type(exc).__name__}: {exc})")


@_never_raises("opentelemetry.trace:NoOpTracerProvider")
def tracer_provider() -> Any:
    """Entry point ``opentelemetry_tracer_provider: otel_launch``."""
    return _build_once("traces", from_file.tracer_provider if from_file.active() else from_env.tracer_provider)


@_never_raises("opentelemetry.metrics:NoOpMeterProvider")
def meter_provider() -> Any:
    """Entry point ``opentelemetry_meter_provider: otel_launch``."""
    return _build_once("metrics", from_file.meter_provider if from_file.active() else from_env.meter_provider)


@_never_raises("opentelemetry._logs:NoOpLoggerProvider")
def logger_provider() -> Any:
    """Entry point ``opentelemetry_logger_provider: otel_launch``."""
    return _build_once("logs", from_file.logger_provider if from_file.active() else from_env.logger_provider)
