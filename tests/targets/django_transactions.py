"""Tasks sent inside Django transactions, savepoints and on_commit callbacks, published to an in-memory
broker inside a span named "job". Prints the task ids by role, as JSON."""

import json
import os
import sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(sys.argv[1], "db.sqlite3")}},
)
django.setup()

from celery import Celery  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from opentelemetry import trace  # noqa: E402

app = Celery("tx", broker="memory://")
ids: dict[str, list[str]] = {"committed": [], "undone": [], "after": [], "outside": []}


def send(role: str) -> None:
    ids[role].append(app.send_task("tx.work", args=(role,)).id)


class Undo(Exception):
    pass


with trace.get_tracer("tx").start_as_current_span("job"):
    send("outside")  # autocommit: no transaction open
    with transaction.atomic():
        connection.cursor().execute("SELECT 1")
        send("committed")
        transaction.on_commit(lambda: send("after"))
        try:
            with transaction.atomic():  # a savepoint, rolled back while the transaction goes on
                send("undone")
                send("undone")
                raise Undo()
        except Undo:
            pass
        send("committed")
    try:
        with transaction.atomic():
            send("undone")
            raise Undo()
    except Undo:
        pass
print(json.dumps(ids), flush=True)
