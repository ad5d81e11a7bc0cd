"""Queries through a sqlite3 cursor inside a span: the SQL spans must be its children."""

import sqlite3

from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("handler"):
    connection = sqlite3.connect(":memory:")
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE t (x INTEGER)")
    cursor.execute("INSERT INTO t VALUES (?)", (42,))
    cursor.execute("SELECT x FROM t")
    connection.close()
