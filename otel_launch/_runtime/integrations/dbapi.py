"""SQL spans for DB-API drivers (sqlite3, psycopg, psycopg2), when the app imports one.

Statements are recorded without parameter values (the contrib default), so data in
queries never reaches span attributes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from otel_launch._runtime.integrations._instrumentor import instrument_once

_INSTRUMENTORS = {
    "sqlite3": ("opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor"),
    "psycopg": ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    "psycopg2": ("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor"),
}


def on_import(driver: ModuleType) -> None:
    module, name = _INSTRUMENTORS[driver.__name__]
    instrument_once(getattr(importlib.import_module(module), name)())
