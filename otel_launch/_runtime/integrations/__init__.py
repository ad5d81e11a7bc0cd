"""The registry of the runtime's integrations: our own steps, then the catalogue's.

Each step of ours is a module under this package, activated when the app imports its trigger
(``_activation.py``); the names are those of ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, as with
``opentelemetry-instrument`` (entry-point names), and every one is in the core's registry of
names (``otel_launch._core.catalogue.OWN``). Every other installed contrib instrumentation
follows, from the entry-point catalogue (``_catalogue.py``), on the same terms.
"""

from __future__ import annotations

import os

from otel_launch._core import catalogue
from otel_launch._runtime.integrations import _catalogue
from otel_launch._runtime.integrations._activation import Integration

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType

STEPS = (
    Integration("django", "django.core.handlers.base", "django", fallback="django:contrib_instead"),
    Integration(
        "django",
        "django.core.management.base",
        "django",
        "on_management_import",
        without="management commands run without their span",
    ),
    Integration("django", "django.core.cache", "django", "on_cache_import", without="cache calls run without spans"),
    Integration(
        "django",
        "django.utils.autoreload",
        "django.reloader",
        "on_autoreload_import",
        without="runserver's reloader may end its serving child before it has flushed",
    ),
    Integration(
        "django",
        "django.tasks",
        "django.tasks",
        without="django.tasks tasks are enqueued and run without spans or metrics",
    ),
    # django-tasks-db's task rows carry the enqueue's trace context to its db_worker (see django/tasks.py).
    Integration(
        "django",
        "django_tasks_db.models",
        "django.tasks",
        "on_db_models_import",
        without="tasks run by db_worker start traces of their own",
    ),
    Integration(
        "django",
        "django.db.backends.base.base",
        "django",
        "on_db_import",
        without="the contrib's DB-API instrumentation traces Django's queries instead",
    ),
    # Not at ``import celery``: a Django project imports its Celery app in every process, and
    # most (management commands, web workers before their first publish) never use it. The
    # first publish imports celery.app.amqp; ``celery worker`` imports celery.apps.worker
    # before its pool forks. Both are leaf imports, never made halfway through celery's own.
    Integration("celery", "celery.app.amqp", "celery", fallback="_fallbacks:celery"),
    Integration("celery", "celery.apps.worker", "celery", "on_worker_import", fallback="_fallbacks:celery"),
    Integration(
        "celery",
        "celery.beat",
        "celery",
        "on_beat_import",
        without="beat publishes run without their lateness and the entries' last publish and due time",
    ),
    Integration("redis", "redis", "redis"),  # the contrib's instrumentor itself
    Integration(
        "redis",
        "kombu.transport.redis",
        "redis",
        "on_kombu_import",
        without="the contrib traces the broker's own commands too, each in a trace of its own",
    ),
    Integration("sqlite3", "sqlite3", "dbapi", fallback="opentelemetry.instrumentation.sqlite3:SQLite3Instrumentor"),
    Integration("psycopg", "psycopg", "dbapi", fallback="opentelemetry.instrumentation.psycopg:PsycopgInstrumentor"),
    Integration(
        "psycopg2", "psycopg2", "dbapi", fallback="opentelemetry.instrumentation.psycopg2:Psycopg2Instrumentor"
    ),
    Integration(
        "threading",
        "opentelemetry.context",
        "threads",
        without="work handed to threads and thread pools runs outside the span that handed it over",
    ),
    Integration(
        "uvicorn",
        "uvicorn.server",
        "uvicorn",
        without="the spans of uvicorn's last requests may be lost when it stops on a signal",
    ),
    # uWSGI's post-fork chain; the rest starts with the first provider (uwsgi.on_first_provider).
    Integration(
        "uwsgi",
        "uwsgidecorators",
        "uwsgi",
        "on_decorators_import",
        without="workers renewed at their first span by the fork guard; one stopped mid-request may lose it",
    ),
)

# Ours, then the catalogue's; the catalogue never lists a name of ours.
INTEGRATIONS: tuple[Integration, ...] = (*STEPS, *_catalogue.integrations(catalogue.entries()))


def on_logging_import(logging: ModuleType) -> None:
    """Put trace ids on the app's log records; send them to the logger provider when asked."""
    from otel_launch._runtime import _log_correlation

    _log_correlation.correlate(logging)
    # The launcher always writes the resolved value, "none" unless logs were asked for: most
    # processes import logging, and should not pay for parsing settings to learn that.
    if os.environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() == "none":
        return
    from otel_launch._core.settings import read_setting

    if read_setting("logs_exporter", os.environ):
        from otel_launch._runtime._log_export import install_log_export

        install_log_export(logging)
