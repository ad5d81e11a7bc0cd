"""Django's tasks framework (django.tasks, Django 6.0+) through the real launcher: a view on real gunicorn
enqueues a task; its run is in the view's trace with its queue time and outcome, for Django's own
backends (in the web process) and django-tasks-db's database backend (a real db_worker process).

The app is tests/targets/tasks_app, on a SQLite file of the test's own; spans and metrics go to a
real OTLP receiver."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_launch.local.receiver import OTLPReceiver, ReceivedSpan
from tests.helpers import PYTHON, TARGETS, free_port, kill_group, launcher, otel_env, run, start, wait_until

pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0 and later")
pytestmark = pytest.mark.process

APP = TARGETS / "tasks_app"
BIN = Path(PYTHON).parent
PRODUCER, CONSUMER = 4, 5  # OTLP span kinds


def _env(receiver: OTLPReceiver, workdir: Path, service: str) -> dict[str, str]:
    return otel_env(
        receiver,
        OTEL_SERVICE_NAME=service,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_BSP_SCHEDULE_DELAY="100",
        TASKS_APP_DB=str(workdir / "tasks.sqlite3"),
        DJANGO_SETTINGS_MODULE="tasks_app.settings",
        PYTHONPATH=str(TARGETS),
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """The processes a test starts, killed (by their process group) whatever the test's outcome."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            kill_group(process)


def _stop(process: subprocess.Popen) -> str:
    """SIGTERM (each flushes what it holds at exit), within a bound; what it wrote to stderr."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _, err = kill_group(process)
        pytest.fail(f"{process.args} did not stop within 30 s on SIGTERM:\n{err[-3000:]}")
    return err


def _serve(receiver: OTLPReceiver, workdir: Path, processes: list) -> int:
    """The app on real gunicorn under otel-launch (one worker); its port once it answers."""
    migrated = run([PYTHON, str(APP / "manage.py"), "migrate", "-v", "0"], _env(receiver, workdir, "migrate"), workdir)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    command = [*launcher(), str(BIN / "gunicorn"), "tasks_app.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
    server = start(command, _env(receiver, workdir, "tasks-web"), workdir)
    processes.append(server)

    def answers() -> bool:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited ({server.returncode}):\n{server.communicate()[1][-3000:]}")
        try:
            return _get(port, "/enqueue/dummy/add/")["status"] == "READY"
        except OSError:
            return False

    wait_until(answers, 30, f"the app answering on port {port}", interval=0.1)
    return port


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def _one(receiver: OTLPReceiver, **match: object) -> ReceivedSpan:
    def found() -> list[ReceivedSpan]:
        return [s for s in receiver.spans if all(_field(s, k) == v for k, v in match.items())]

    (span,) = wait_until(found, 20, f"a span with {match}")
    return span


def _field(span: ReceivedSpan, key: str) -> object:
    return getattr(span, key) if key in ("name", "kind", "trace_id", "parent_span_id") else span.attributes.get(key)


def _server(receiver: OTLPReceiver, enqueue: ReceivedSpan) -> ReceivedSpan:
    (server,) = [s for s in receiver.spans if s.span_id == enqueue.parent_span_id]
    assert server.name in ("GET /enqueue/<str:backend>/<str:name>/", "GET /aenqueue/<str:backend>/<str:name>/")
    return server


def test_immediate_and_dummy_backends_run_in_the_views_trace(receiver, workdir, processes):
    port = _serve(receiver, workdir, processes)
    receiver.clear()
    ran = _get(port, "/enqueue/default/add/")
    failed = _get(port, "/aenqueue/default/fail/")  # aenqueue(), from an async view
    stored = _get(port, "/enqueue/dummy/add/")
    assert (ran["status"], failed["status"], stored["status"]) == ("SUCCESSFUL", "FAILED", "READY")

    # ImmediateBackend: the run inside the enqueue, inside the view's server span.
    enqueue = _one(receiver, name="enqueue tasks_app.tasks.add", **{"messaging.message.id": ran["id"]})
    assert enqueue.kind == PRODUCER
    assert {k: enqueue.attributes[k] for k in ("messaging.system", "messaging.destination.name")} == {
        "messaging.system": "django_tasks",
        "messaging.destination.name": "default",
    }
    assert enqueue.attributes["django.task.backend"] == "default"
    _server(receiver, enqueue)
    run_span = _one(receiver, name="run tasks_app.tasks.add", **{"messaging.message.id": ran["id"]})
    assert (run_span.kind, run_span.parent_span_id, run_span.trace_id) == (CONSUMER, enqueue.span_id, enqueue.trace_id)
    assert run_span.attributes["django.task.status"] == "SUCCESSFUL" and run_span.status == "UNSET"
    assert 0 <= run_span.attributes["django.task.queue_time"] < (run_span.start_ns - enqueue.start_ns) / 1e9 + 0.01
    (query,) = [s for s in receiver.spans if s.parent_span_id == run_span.span_id]
    assert query.name == "SELECT"

    # The failing task: its run span is an error, named by the exception's class.
    failing = _one(receiver, name="run tasks_app.tasks.fail", **{"messaging.message.id": failed["id"]})
    failing_enqueue = _one(receiver, name="enqueue tasks_app.tasks.fail", **{"messaging.message.id": failed["id"]})
    assert (failing.parent_span_id, failing.trace_id) == (failing_enqueue.span_id, failing_enqueue.trace_id)
    _server(receiver, failing_enqueue)
    assert failing.status == "ERROR" and failing.attributes["error.type"] == "builtins.ValueError"
    assert failing.attributes["django.task.status"] == "FAILED"
    assert [e["name"] for e in failing.events] == ["exception"]

    # DummyBackend stores the task and never runs it: an enqueue span, no run span.
    dummy = _one(receiver, name="enqueue tasks_app.tasks.add", **{"messaging.message.id": stored["id"]})
    assert dummy.attributes["django.task.backend"] == "dummy"
    _server(receiver, dummy)
    assert not [
        s for s in receiver.spans if s.kind == CONSUMER and s.attributes.get("messaging.message.id") == stored["id"]
    ]

    err = _stop(processes[0])
    assert "WARNING" not in err.replace("[WARNING]", ""), err[-3000:]  # gunicorn's own lines aside
    _metrics(receiver, "tasks-web", "tasks_app.tasks.add", "default")


def test_database_backend_runs_in_the_views_trace_in_db_worker(receiver, workdir, processes):
    pytest.importorskip("django_tasks_db", reason="django-tasks-db (the database backend) is not installed")
    port = _serve(receiver, workdir, processes)
    receiver.clear()
    ran = _get(port, "/enqueue/database/add/")
    failed = _get(port, "/aenqueue/database/fail/")  # aenqueue(): the row is written in a thread of asgiref's
    assert (ran["status"], failed["status"]) == ("READY", "READY")  # stored: nothing has run them yet
    enqueue = _one(receiver, name="enqueue tasks_app.tasks.add", **{"messaging.message.id": ran["id"]})
    assert enqueue.attributes["django.task.backend"] == "database"
    server = _server(receiver, enqueue)

    command = [*launcher(), PYTHON, str(APP / "manage.py"), "db_worker", "--backend", "database"]
    worker = start(
        [*command, "--no-reload", "--no-startup-delay", "--interval", "0.1"],
        _env(receiver, workdir, "tasks-worker"),
        workdir,
    )
    processes.append(worker)

    run_span = _one(receiver, name="run tasks_app.tasks.add", **{"messaging.message.id": ran["id"]})
    assert run_span.resource["service.name"] == "tasks-worker"
    assert (run_span.kind, run_span.trace_id, run_span.parent_span_id) == (CONSUMER, server.trace_id, enqueue.span_id)
    assert run_span.attributes["django.task.status"] == "SUCCESSFUL" and run_span.status == "UNSET"
    # Stored by the web process, started by the worker's next poll: at most the time between the two spans.
    waited = run_span.attributes["django.task.queue_time"]
    assert 0 < waited < (run_span.start_ns - enqueue.start_ns) / 1e9 + 0.01
    query = [s for s in receiver.spans if s.parent_span_id == run_span.span_id and s.name == "SELECT"]
    assert len(query) == 1

    failing = _one(receiver, name="run tasks_app.tasks.fail", **{"messaging.message.id": failed["id"]})
    failing_enqueue = _one(receiver, name="enqueue tasks_app.tasks.fail", **{"messaging.message.id": failed["id"]})
    assert (failing.parent_span_id, failing.trace_id) == (failing_enqueue.span_id, failing_enqueue.trace_id)
    assert failing.trace_id != run_span.trace_id  # its own request's trace
    _server(receiver, failing_enqueue)
    assert failing.status == "ERROR" and failing.attributes["error.type"] == "builtins.ValueError"
    assert [e["name"] for e in failing.events] == ["exception"]
    # db_worker is a command that works a queue: no span open for its whole life.
    _metrics(receiver, "tasks-worker", "tasks_app.tasks.add", "default")
    err = _stop(worker)
    assert "otel-launch" not in err, err[-3000:]
    assert not [s for s in receiver.spans if s.name == "db_worker"]

    # The task ran with the arguments the app gave it: the trace context is stored beside them.
    stored = _get(port, f"/result/database/{ran['id']}/")
    assert stored == {"status": "SUCCESSFUL", "args": [2, 3], "kwargs": {}, "return_value": 5}


def _metrics(receiver: OTLPReceiver, service: str, task: str, queue: str) -> None:
    """The Celery task metrics' counterparts, from the process that ran the tasks."""

    def points(name: str) -> list:
        return [
            p
            for p in receiver.points
            if p.metric == name
            and p.resource.get("service.name") == service
            and p.attributes.get("django.task.name") == task
        ]

    def arrived() -> bool:
        executions = points("django.task.executions")
        return bool(points("messaging.process.duration") and points("django.task.queue_time") and executions)

    wait_until(arrived, 20, f"the task metrics of {service}")
    (duration, *_) = points("messaging.process.duration")
    assert duration.attributes == {
        "django.task.name": task,
        "messaging.destination.name": queue,
        "messaging.system": "django_tasks",
        "messaging.operation.name": "run",
    }
    assert duration.count >= 1
    executions = points("django.task.executions")[-1]
    assert executions.attributes == {
        "django.task.name": task,
        "messaging.destination.name": queue,
        "django.task.status": "SUCCESSFUL",
    }
    assert executions.value >= 1
