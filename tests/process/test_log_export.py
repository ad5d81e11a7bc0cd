"""Log export (OTEL_LOGS_EXPORTER=otlp) beside the app's own logging configuration, as it is."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, kill_group, launcher, run, start

pytestmark = pytest.mark.process


def test_basic_config_prints_exactly_what_it_prints_without_otel_launch_and_its_records_are_exported(receiver, workdir):
    """The root logger has no handler of ours, so ``logging.basicConfig`` configures the console
    (it did nothing: no console output at all); the app's level decides what is exported."""
    script = [PYTHON, str(TARGETS / "log_basic_config.py")]
    plain = run(script, clean_env(), workdir)
    assert plain.returncode == 0, plain.stderr
    assert "INFO app: configured by basicConfig" in plain.stderr
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    launched = run([*launcher(), "--logs-exporter", "otlp", *script], env, workdir)
    assert launched.returncode == 0, launched.stderr
    assert launched.stderr == plain.stderr
    assert receiver.wait_for(lambda r: len(r.logs) >= 2 and r.spans, timeout=10)
    time.sleep(0.5)  # nothing more may arrive: the debug record and OpenTelemetry's own are never sent
    assert sorted(log.body for log in receiver.logs) == ["configured by basicConfig", "inside a span"]
    (span,) = receiver.spans
    inside = next(log for log in receiver.logs if log.body == "inside a span")
    assert (inside.trace_id, inside.span_id) == (span.trace_id, span.span_id)


def _pool_app_env(receiver, workdir: Path, logging_setup: str) -> dict[str, str]:
    (workdir / "broker").mkdir(exist_ok=True)
    return clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        OTEL_BSP_SCHEDULE_DELAY="200",
        POOL_APP_DB=str(workdir / "pool.sqlite3"),
        POOL_APP_BROKER_DIR=str(workdir / "broker"),
        POOL_APP_LOGGING=logging_setup,
        POOL_APP_POLLING_INTERVAL="0.01",  # a worker takes a message at once, not after kombu's 1 s sleep
    )


def _app_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("APP-LOG")]


@contextlib.contextmanager
def _worker(env: dict[str, str], workdir: Path, *pool: str):
    """A real Celery worker (solo pool, unless ``pool`` says) of the pool app, stopped by a remote-control
    shutdown (a warm shutdown, as SIGTERM's: SIGTERM is noticed only between two 2 s waits for a message)."""
    pool = pool or ("--pool", "solo")
    args = [*launcher(), PYTHON, "-m", "celery", "-A", "pool_app", "worker", *pool, "-l", "info"]
    args += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    worker = start(args, {**env, "PYTHONPATH": str(TARGETS)}, workdir)
    try:
        yield worker
        _shutdown(Path(env["POOL_APP_BROKER_DIR"]))
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=20)
    finally:
        kill_group(worker)


def _shutdown(broker: Path) -> None:
    """Celery's ``control shutdown``, sent from here to the workers of the pool app's broker folder."""
    from celery import Celery

    options = {"data_folder_in": str(broker), "data_folder_out": str(broker), "control_folder": str(broker / "control")}
    app = Celery("stopper", broker="filesystem://", broker_transport_options=options)
    with app.connection_for_write() as connection:
        app.control.shutdown(connection=connection)


@pytest.mark.parametrize("logging_setup", ["root", "disable"], ids=["LOGGING-root", "disable_existing_loggers"])
def test_a_django_logging_setting_keeps_its_handlers_and_the_views_and_tasks_records_are_exported(
    receiver, workdir, logging_setup
):
    """A ``LOGGING`` setting that configures the root logger replaced our handler: 0 records were
    exported. Now its console prints what it prints without otel-launch, and the view's and the
    task's records (logged in a real Celery worker, which also takes over the root logger) are
    exported with their spans' ids; what its levels and disabled loggers drop is not."""
    pytest.importorskip("django")
    pytest.importorskip("celery")
    env = _pool_app_env(receiver, workdir, logging_setup)
    client = [PYTHON, str(TARGETS / "pool_app_client.py"), "/pool/?task=1"]
    (workdir / "unused-broker").mkdir()
    with _worker(env, workdir) as worker:  # starting while the clients run
        # Not launched (the app's own output); its task goes to a broker folder no worker reads.
        plain = start(client, {**env, "POOL_APP_BROKER_DIR": str(workdir / "unused-broker")}, workdir)
        try:  # both at once: each is mostly an interpreter's start-up
            launched = run([*launcher(), *client], env, workdir)
            _, plain_stderr = plain.communicate(timeout=60)
        finally:
            if plain.returncode is None:
                kill_group(plain)
        assert launched.returncode == 0, launched.stderr
        assert launched.stdout.strip() == "200 0,1,2"
        assert _app_lines(launched.stderr) == _app_lines(plain_stderr)
        assert "APP-LOG INFO pool_app.views view ran" in _app_lines(launched.stderr)
        early_printed = "APP-LOG INFO pool_app.early from a logger made before the LOGGING setting"
        assert (early_printed in _app_lines(launched.stderr)) is (logging_setup == "root")

        assert receiver.wait_for(
            lambda r: (
                any(s.name == "run/pool_app.pooled" for s in r.spans) and any(log.body == "task ran" for log in r.logs)
            ),
            timeout=60,
        ), kill_group(worker)[1][-3000:]
    (server,) = [s for s in receiver.spans if s.name == "GET /pool/"]
    (task,) = [s for s in receiver.spans if s.name == "run/pool_app.pooled"]
    assert task.trace_id == server.trace_id  # published by the request
    assert task.service == "pool-app-worker"  # derived from the command
    assert receiver.wait_for(lambda r: sum(s.name == "SELECT" for s in r.spans) == 6, timeout=10)
    for parent in (server, task):  # the pool threads' queries, in the request's and in the task's
        children = [s for s in receiver.spans if s.parent_span_id == parent.span_id and s.name == "SELECT"]
        assert len(children) == 3
    by_body = {str(log.body): log for log in receiver.logs}
    view, task_record = by_body["view ran"], by_body["task ran"]
    assert (view.trace_id, view.span_id) == (server.trace_id, server.span_id)
    assert (task_record.trace_id, task_record.span_id) == (task.trace_id, task.span_id)
    bodies = [str(log.body) for log in receiver.logs]
    assert not any("below the root logger's level" in body for body in bodies)
    early_exported = any("made before the LOGGING setting" in body for body in bodies)
    assert early_exported is (logging_setup == "root")  # a disabled logger's record is never exported


def test_djangos_record_of_a_404_carries_the_requests_span(receiver, workdir):
    """Django logs a 4xx or 5xx response ("Not Found: /missing/", logger django.request) once the
    middleware chain has returned: the request's span had ended and was no longer current."""
    pytest.importorskip("django")
    env = _pool_app_env(receiver, workdir, "root")
    launched = run([*launcher(), PYTHON, str(TARGETS / "pool_app_client.py"), "/missing/"], env, workdir)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.startswith("404 "), launched.stdout
    assert "APP-LOG WARNING django.request Not Found: /missing/" in _app_lines(launched.stderr)
    assert receiver.wait_for(lambda r: any(str(log.body) == "Not Found: /missing/" for log in r.logs), timeout=10)
    (server,) = [s for s in receiver.spans if s.name == "GET"]
    (record,) = [log for log in receiver.logs if str(log.body) == "Not Found: /missing/"]
    assert (record.trace_id, record.span_id) == (server.trace_id, server.span_id)
    # and the ids log correlation stamps on the record (what a format string or JSON handler shows)
    assert (record.attributes["otelTraceID"], record.attributes["otelSpanID"]) == (server.trace_id, server.span_id)


def test_a_prefork_pool_childs_task_records_are_exported_with_the_tasks_ids(receiver, workdir):
    """The task runs in a pool child forked from the worker (which built its logger provider first)."""
    pytest.importorskip("django")
    pytest.importorskip("celery")
    env = _pool_app_env(receiver, workdir, "root")
    client = [PYTHON, str(TARGETS / "pool_app_client.py"), "/pool/?task=1"]
    with _worker(env, workdir, "--pool", "prefork", "--concurrency", "1") as worker:  # starting while the client runs
        launched = run([*launcher(), *client], env, workdir)
        assert launched.returncode == 0, launched.stderr
        assert receiver.wait_for(
            lambda r: (
                any(s.name == "run/pool_app.pooled" for s in r.spans) and any(log.body == "task ran" for log in r.logs)
            ),
            timeout=60,
        ), kill_group(worker)[1][-3000:]
    (task,) = [s for s in receiver.spans if s.name == "run/pool_app.pooled"]
    (record,) = [log for log in receiver.logs if log.body == "task ran"]
    assert (record.trace_id, record.span_id) == (task.trace_id, task.span_id)
    assert task.resource["process.pid"] != worker.pid  # run in a pool child
