"""A SQL statement and a Redis command carrying secrets as parameters, inside a span.

Redis talks to a closed port: the command fails, its span is recorded all the same.
"""

import contextlib
import sqlite3
import sys

import redis
from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("handler"):
    connection = sqlite3.connect(":memory:")
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE users (name TEXT, password TEXT)")
    cursor.execute("INSERT INTO users VALUES (?, ?)", ("ann", "SqlSecret77"))
    connection.close()
    client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), socket_connect_timeout=1)
    with contextlib.suppress(redis.exceptions.ConnectionError):
        client.set("session:ann", "RedisSecret88")
print("app ran")
