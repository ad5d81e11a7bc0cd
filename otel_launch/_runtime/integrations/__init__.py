"""One module per integration; each is imported only when the app imports its library.

The names are those of ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, as with
``opentelemetry-instrument``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from otel_launch._settings import read_setting


@dataclass(frozen=True)
class Integration:
    name: str  # as listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
    trigger: str  # the module whose import activates it
    module: str  # our module under integrations/, with an on_import(module) function

    def activate(self, imported: ModuleType) -> None:
        on_import: Callable[[ModuleType], None] = importlib.import_module(f"{__name__}.{self.module}").on_import
        on_import(imported)


INTEGRATIONS = (
    Integration("django", "django", "django"),
    Integration("celery", "celery", "celery"),
    Integration("redis", "redis", "redis"),
    Integration("sqlite3", "sqlite3", "dbapi"),
    Integration("psycopg", "psycopg", "dbapi"),
    Integration("psycopg2", "psycopg2", "dbapi"),
)


def enabled_integrations() -> list[Integration]:
    disabled = set(read_setting("disabled_instrumentations", os.environ) or ())
    return [integration for integration in INTEGRATIONS if integration.name not in disabled]
