"""One module per integration; each is imported only when the app imports its library.

Ours come first (``OWN``); every other installed contrib instrumentation follows, from the
entry-point catalogue (``_catalogue.py``), on the same terms: run when its library is
imported. The names are those of ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, as with
``opentelemetry-instrument`` (entry-point names).
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


def is_disabled(name: str) -> bool:
    """Whether OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names this instrumentation, or ``*`` (all)."""
    disabled = _disabled()
    return name in disabled or "*" in disabled


class Integration:
    """An instrumentation step, activated by the import of its ``trigger`` module.

    ``name`` is as listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (one name may have several
    steps); ``module`` is ours, under integrations/, and its function ``hook(imported)`` runs.
    """

    __slots__ = ("name", "trigger", "module", "hook")

    def __init__(self, name: str, trigger: str, module: str, hook: str = "on_import") -> None:
        self.name, self.trigger, self.module, self.hook = name, trigger, module, hook

    def activate(self, imported: ModuleType) -> None:
        from otel_launch._runtime import _green

        # An import made by gevent's monkey-patching waits for its end (see _green).
        if not _green.deferred_while_patching(lambda: self._activate(imported)):
            self._activate(imported)

    def _activate(self, imported: ModuleType) -> None:
        # The disabled list is read here, not at start-up: only a process that imports the
        # library pays for reading settings.
        if not is_disabled(self.name):
            try:
                getattr(importlib.import_module(f"{__name__}.{self.module}"), self.hook)(imported)
            except Exception:
                if _the_app_is_importing_an_instrumentation():
                    return  # it instruments this library itself (its import of the library woke us)
                raise


def _the_app_is_importing_an_instrumentation() -> bool:
    """An app's ``from opentelemetry.instrumentation.psycopg import ...`` imports psycopg, whose hook
    then found the contrib module half-initialized: "could not instrument psycopg ... partially
    initialized module" was logged, falsely, since the app's own instrumentor works."""
    import sys

    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("opentelemetry.instrumentation.")
    )


OWN = (
    Integration("django", "django.core.handlers.base", "django"),
    Integration("django", "django.core.management.base", "django", "on_management_import"),
    Integration("django", "django.core.cache", "django", "on_cache_import"),
    Integration("django", "django.db.backends.base.base", "django", "on_db_import"),
    # Not at ``import celery``: a Django project imports its Celery app in every process, and
    # most (management commands, web workers before their first publish) never use it. The
    # first publish imports celery.app.amqp; ``celery worker`` imports celery.apps.worker
    # before its pool forks. Both are leaf imports, never made halfway through celery's own.
    Integration("celery", "celery.app.amqp", "celery"),
    Integration("celery", "celery.apps.worker", "celery", "on_worker_import"),
    Integration("redis", "redis", "redis"),
    Integration("redis", "kombu.transport.redis", "redis", "on_kombu_import"),
    Integration("sqlite3", "sqlite3", "dbapi"),
    Integration("psycopg", "psycopg", "dbapi"),
    Integration("psycopg2", "psycopg2", "dbapi"),
    # uWSGI's post-fork chain; the rest starts with the first provider (uwsgi.on_first_provider).
    Integration("uwsgi", "uwsgidecorators", "uwsgi", "on_decorators_import"),
)

from otel_launch._runtime.integrations import _catalogue  # noqa: E402 - it builds on Integration

# Ours, then the catalogue's; the catalogue never lists a name of ours.
INTEGRATIONS: tuple[Integration, ...] = (*OWN, *_catalogue.integrations(_catalogue.entries()))


def names() -> list[str]:
    """The instrumentation names otel-launch knows, in registry order."""
    return list(dict.fromkeys(integration.name for integration in INTEGRATIONS))


def on_logging_import(logging: ModuleType) -> None:
    """Put trace ids on the app's log records; send them to the logger provider when asked."""
    from otel_launch._runtime import _log_correlation

    _log_correlation.correlate(logging)
    # The launcher always writes the resolved value, "none" unless logs were asked for: most
    # processes import logging, and should not pay for parsing settings to learn that.
    if os.environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() == "none":
        return
    from otel_launch._settings import read_setting

    if read_setting("logs_exporter", os.environ):
        from otel_launch._runtime._sdk import install_log_export

        install_log_export()
