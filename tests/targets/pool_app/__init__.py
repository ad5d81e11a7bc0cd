"""A Django + Celery project nobody on the team wrote: work in thread pools, logging its own way.

Its view and its task run queries in a ``ThreadPoolExecutor`` (as django-health-check does) and
log; ``POOL_APP_LOGGING`` picks the project's logging set-up: ``root`` (a ``LOGGING`` setting
that configures the root logger), ``disable`` (the same with ``disable_existing_loggers``), or
none. SQLite file and broker folder come from ``POOL_APP_DB`` and ``POOL_APP_BROKER_DIR``.
"""
