"""Which telemetry code paths a request and a task take: every Python function called while Django
serves a request (WSGI and ASGI) to a view making 10 SQL queries, and while Celery's own task
tracer (what a pool child runs for each message) runs a task making 3 queries, recorded with
``sys.setprofile`` (and ``threading.setprofile``: Django's ASGI handler runs a sync view in a
thread). Prints, as JSON, the functions of a watched list each phase called: the
attribute collectors, the SQL span path and the N+1 counter."""

import asyncio
import json
import os
import sys
import threading
import uuid

sys.path.insert(0, sys.argv[1])  # the example shop, for its settings
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import celery.apps.worker  # noqa: E402, F401  (what `celery worker` imports: otel-launch's worker hooks)
import django  # noqa: E402
from celery import Celery, signals  # noqa: E402
from celery.app.trace import build_tracer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

WATCHED = {
    # request attributes: the contrib's collectors and otel-launch's call of them
    ("opentelemetry.instrumentation.wsgi", "collect_request_attributes"),
    ("opentelemetry.instrumentation.wsgi", "collect_custom_request_headers_attributes"),
    ("opentelemetry.instrumentation.asgi", "collect_request_attributes"),
    ("opentelemetry.instrumentation.asgi", "collect_custom_headers_attributes"),
    ("opentelemetry.instrumentation.utils", "extract_attributes_from_object"),
    ("otel_launch._runtime.integrations.django.request", "_request_attributes"),
    ("otel_launch._runtime.integrations.django.request", "_wsgi_request_attributes"),
    # the SQL span path
    ("otel_launch._runtime.integrations.django.sql", "_start"),
    ("otel_launch._runtime.integrations.django.sql", "_operation"),
    # the N+1 counter
    ("otel_launch._runtime.integrations.django.n_plus_one", "begin"),
    ("otel_launch._runtime.integrations.django.n_plus_one", "count"),
    ("otel_launch._runtime.integrations.django.n_plus_one", "end"),
    # a task's attributes
    ("otel_launch._runtime.integrations.celery.worker", "span_attributes"),
    ("opentelemetry.instrumentation.celery.utils", "set_attributes_from_context"),
    # a publish: the contrib's handlers look the task up in Celery's registry and activate the
    # span through a generator (sampled or not); ours take neither path
    ("opentelemetry.instrumentation.celery.utils", "retrieve_task_from_sender"),
    ("opentelemetry.instrumentation.celery.utils", "attach_context"),
    ("opentelemetry.trace", "use_span"),
}


def queries(request):
    with connection.cursor() as cursor:
        for number in range(10):
            cursor.execute("SELECT %s + 1", [number])
    return HttpResponse("ok")


urlpatterns = [path("queries/", queries)]
django.setup()
settings.ROOT_URLCONF = __name__
settings.DEBUG = False
from django.test import AsyncClient, Client  # noqa: E402

app = Celery("unsampled", broker="memory://")
app.conf.task_ignore_result = True


@app.task(name="unsampled.job")
def job():
    with connection.cursor() as cursor:
        for number in range(3):
            cursor.execute("SELECT %s + 2", [number])


def watching(run):
    """The watched functions ``run()`` called, by their module and name."""
    called = set()

    def profile(frame, event, arg):
        if event == "call":
            key = (frame.f_globals.get("__name__"), frame.f_code.co_name)
            if key in WATCHED:
                called.add(key)

    threading.setprofile(profile)  # threads started from here: ASGI runs sync views in one
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return sorted(f"{module}.{name}" for module, name in called)


def serve_wsgi():
    for _ in range(2):
        assert Client().get("/queries/", HTTP_USER_AGENT="curl/8").status_code == 200


def serve_asgi():
    async def serve():
        for _ in range(2):
            assert (await AsyncClient().get("/queries/")).status_code == 200

    asyncio.run(serve())


app.finalize()
signals.worker_init.send(sender=None)
signals.worker_process_init.send(sender=None)
tracer = build_tracer(job.name, job, app=app, hostname="unsampled@test")


def run_tasks():
    for _ in range(2):
        task_id = str(uuid.uuid4())
        request = {
            "id": task_id,
            "task": job.name,
            "root_id": task_id,
            "parent_id": None,
            "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False},
            "hostname": "unsampled@test",
            "args": [],
            "kwargs": {},
            "is_eager": False,
        }
        tracer(task_id, [], {}, request)


def publish():
    for _ in range(2):
        job.delay()


result = {
    "request": watching(serve_wsgi),
    "asgi request": watching(serve_asgi),
    "task": watching(run_tasks),
    "publish": watching(publish),
}
print(json.dumps(result), flush=True)
