"""Queries on a Django connection whose driver no instrumentation covers, inside a span."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # plain_backend

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(DATABASES={"default": {"ENGINE": "plain_backend", "NAME": sys.argv[1]}})
django.setup()
from django.db import connection  # noqa: E402
from opentelemetry import trace  # noqa: E402

with trace.get_tracer("target").start_as_current_span("job"), connection.cursor() as cursor:
    cursor.execute("CREATE TABLE secrets (value TEXT)")
    cursor.execute("INSERT INTO secrets (value) VALUES (%s)", ["hunter2"])
    cursor.execute("SELECT value FROM secrets WHERE value = %s", ["hunter2"])
    print(type(connection.connection).__module__, cursor.fetchone()[0], flush=True)
