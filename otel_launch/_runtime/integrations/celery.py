"""Celery: producer and worker signals, connected when the app imports celery."""

from __future__ import annotations

from types import ModuleType


def on_import(celery: ModuleType) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    instrument_once(CeleryInstrumentor())
