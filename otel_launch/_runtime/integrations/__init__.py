"""One module per integration; each is imported only when the app imports its library.

The names are those of ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, as with
``opentelemetry-instrument``.
"""

from __future__ import annotations

import importlib
import os

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType


def _disabled() -> set[str]:
    from otel_launch._settings import read_setting

    return set(read_setting("disabled_instrumentations", os.environ) or ())


class Integration:
    """An instrumentation, activated by the import of its ``trigger`` module.

    ``name`` is as listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS; ``module`` is ours,
    under integrations/, and has an ``on_import(module)`` function.
    """

    __slots__ = ("name", "trigger", "module")

    def __init__(self, name: str, trigger: str, module: str) -> None:
        self.name, self.trigger, self.module = name, trigger, module

    def activate(self, imported: ModuleType) -> None:
        # The disabled list is read here, not at start-up: only a process that imports the
        # library pays for reading settings.
        if self.name not in _disabled():
            importlib.import_module(f"{__name__}.{self.module}").on_import(imported)


INTEGRATIONS = (
    Integration("django", "django.core.handlers.base", "django"),
    Integration("celery", "celery", "celery"),
    Integration("redis", "redis", "redis"),
    Integration("sqlite3", "sqlite3", "dbapi"),
    Integration("psycopg", "psycopg", "dbapi"),
    Integration("psycopg2", "psycopg2", "dbapi"),
)


def on_logging_import(logging: ModuleType) -> None:
    """Send the app's log records to the logger provider, when logs export is asked for."""
    # The launcher always writes the resolved value, "none" unless logs were asked for: most
    # processes import logging, and should not pay for parsing settings to learn that.
    if os.environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() == "none":
        return
    from otel_launch._settings import read_setting

    if read_setting("logs_exporter", os.environ):
        from otel_launch._runtime._sdk import install_log_export

        install_log_export()
