"""Redis client commands, instrumented when the app imports redis."""

from __future__ import annotations

from types import ModuleType


def on_import(redis: ModuleType) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(RedisInstrumentor())
