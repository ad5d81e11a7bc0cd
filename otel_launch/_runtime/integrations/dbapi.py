"""SQL spans for DB-API drivers (sqlite3, psycopg, psycopg2), when the app imports one.

Statements are recorded without parameter values (the contrib default), so data in
queries never reaches span attributes.

sqlite3 is instrumented on its first ``connect()``, not on import: Django imports the driver
of its configured database in every process, and the instrumentation's import and set-up
(~50 ms) would be paid by every management command that never queries.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from otel_launch._runtime.integrations._first_use import FirstUse
from otel_launch._runtime.integrations._instrumentor import instrument_once

_INSTRUMENTORS = {
    "sqlite3": ("opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor"),
    "psycopg": ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    "psycopg2": ("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor"),
}
_CONNECT_MODULES = {"sqlite3": ("sqlite3", "sqlite3.dbapi2"), "psycopg": ("psycopg",), "psycopg2": ("psycopg2",)}
_django = threading.local()  # set while Django reconnects a connection it already traced


def on_import(driver: ModuleType) -> None:
    if driver.__name__ == "sqlite3":
        _instrument_on_first_connect(driver, [driver, sys.modules["sqlite3.dbapi2"]])
    else:
        _instrument(driver.__name__)


def _instrument(driver: str) -> None:
    module, name = _INSTRUMENTORS[driver]
    instrument_once(getattr(importlib.import_module(module), name)())
    for connect_module in _CONNECT_MODULES[driver]:
        _let_django_pass(sys.modules[connect_module])


@contextlib.contextmanager
def connecting_for_django() -> Iterator[None]:
    """While Django's SQL path (``django/sql.py``) reconnects, the driver's ``connect`` skips the
    contrib's wrapper: that connection is traced by Django's execute wrapper, never twice."""
    _django.passing = True
    try:
        yield
    finally:
        _django.passing = False


def _let_django_pass(module: ModuleType) -> None:
    traced = module.connect
    raw = getattr(traced, "__wrapped__", None)  # the contrib's wrapt wrapper keeps the driver's
    if raw is None or getattr(traced, "_otel_launch_passes", False):
        return
    raw = getattr(raw, "_otel_launch_original", raw)  # the contrib wrapped our stand-in: the driver's own

    def connect(*args: Any, **kwargs: Any) -> Any:
        return (raw if getattr(_django, "passing", False) else traced)(*args, **kwargs)

    connect._otel_launch_passes = True
    connect.__wrapped__ = raw
    module.connect = connect


def _instrument_on_first_connect(driver: ModuleType, modules: list[ModuleType]) -> None:
    """Put a stand-in ``connect`` on the driver's modules that instruments, then connects.

    The contrib instrumentor wraps the stand-in where it stands (``_first_use``): a thread that
    connects while the first connection instruments waits for it, and gets a traced connection.
    """
    first_use = FirstUse(driver.__name__, lambda: _instrument(driver.__name__))
    connect = first_use.stand_in(driver.connect, lambda: driver.connect)
    for module in modules:
        module.connect = connect
