"""Service names read from the command (otel_launch/_core/service_name.py): what ``--print-config`` says,
and the ``service.name`` of the launched process's spans, on real servers and workers."""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from subprocess import PIPE

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, free_port, kill_group, launcher, run, start

pytestmark = pytest.mark.process
BIN = Path(PYTHON).parent
MANAGE_PY = TARGETS / "pool_app" / "manage.py"

COMMANDS = {
    "gunicorn": ([str(BIN / "gunicorn"), "pool_app.wsgi", "-w", "2"], "pool-app-web", "gunicorn: app pool_app.wsgi"),
    "uwsgi": (
        ["uwsgi", "--http", ":8000", "--module", "pool_app.wsgi", "--master", "--processes", "2"],
        "pool-app-web",
        "uwsgi: app pool_app.wsgi",
    ),
    "celery worker": (["celery", "-A", "pool_app", "worker", "-c", "8"], "pool-app-worker", "celery: app pool_app"),
    "celery beat": ([PYTHON, "-m", "celery", "-A", "pool_app", "beat"], "pool-app-beat", "celery: app pool_app"),
    "manage.py": ([PYTHON, str(MANAGE_PY), "migrate"], "pool-app-manage", "manage.py: settings pool_app.settings"),
}


@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_print_config_shows_the_name_and_where_it_came_from(workdir, command):
    args, name, source = COMMANDS[command]
    result = run([*launcher(), "--print-config", *args], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if " OTEL_SERVICE_NAME " in line]
    assert row.split()[2] == name
    assert row.endswith(f"derived from the command ({source}, role {name.rpartition('-')[2]})")


def test_a_name_the_user_set_wins(workdir):
    args = COMMANDS["celery worker"][0]
    env = clean_env(OTEL_RESOURCE_ATTRIBUTES="service.name=billing")
    result = run([*launcher(), "--print-config", *args], env, workdir)
    (row,) = [line for line in result.stdout.splitlines() if " OTEL_SERVICE_NAME " in line]
    assert row.split()[2:] == ["(unset)", "default"]  # the SDK takes service.name from the attributes
    result = run([*launcher(), "--print-config", "--service-name", "shop", *args], clean_env(), workdir)
    (row,) = [line for line in result.stdout.splitlines() if " OTEL_SERVICE_NAME " in line]
    assert row.split()[2:] == ["shop", "flag"]


def _env(receiver, workdir: Path, **extra: str) -> dict[str, str]:
    (workdir / "broker").mkdir(exist_ok=True)
    return clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="200",
        POOL_APP_DB=str(workdir / "pool.sqlite3"),
        POOL_APP_BROKER_DIR=str(workdir / "broker"),
        PYTHONPATH=str(TARGETS),
        **extra,
    )


def _get_until_served(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{url} not served within {timeout}s")
            time.sleep(0.1)


def _spans_of(receiver, name: str, timeout: float = 20) -> list:
    assert receiver.wait_for(lambda r: any(s.name == name for s in r.spans), timeout=timeout), name
    return [s for s in receiver.spans if s.name == name]


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
def test_a_web_server_runs_as_project_web(receiver, workdir, server):
    pytest.importorskip("django")
    port = free_port()
    if server == "gunicorn":
        pytest.importorskip("gunicorn")
        args = [str(BIN / "gunicorn"), "pool_app.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"]
    else:
        uwsgi = shutil.which("uwsgi", path=str(BIN)) or shutil.which("uwsgi")
        if uwsgi is None:
            pytest.skip("uwsgi (the uwsgi or pyuwsgi package) is not installed")
        args = [uwsgi, "--http", f"127.0.0.1:{port}", "--module", "pool_app.wsgi", "--master", "--processes", "1"]
        args += ["--lazy-apps", "--pythonpath", str(TARGETS)]
    process = start([*launcher(), *args], _env(receiver, workdir), workdir)
    try:
        _get_until_served(f"http://127.0.0.1:{port}/pool/")
        (server_span,) = _spans_of(receiver, "GET /pool/")
    finally:
        kill_group(process)
    assert server_span.service == "pool-app-web"


def test_celery_beat_runs_as_project_beat(receiver, workdir):
    pytest.importorskip("celery")
    pytest.importorskip("django")
    args = [PYTHON, "-m", "celery", "-A", "pool_app", "beat", "-s", str(workdir / "schedule")]
    process = start([*launcher(), *args], _env(receiver, workdir, POOL_APP_BEAT_EVERY="0.5"), workdir)
    try:
        publish = _spans_of(receiver, "apply_async/pool_app.pooled", timeout=30)[0]
    finally:
        kill_group(process)
    assert publish.service == "pool-app-beat"


def test_a_management_command_runs_as_project_manage(receiver, workdir):
    pytest.importorskip("django")
    result = run([*launcher(), PYTHON, str(MANAGE_PY), "check"], _env(receiver, workdir), workdir)
    assert result.returncode == 0, result.stderr
    (command,) = _spans_of(receiver, "check")
    assert command.service == "pool-app-manage"


def test_an_ini_that_is_a_pipe_or_stdin_is_left_to_uwsgi(workdir):
    """``uwsgi --ini`` from a named pipe or /dev/stdin: what it holds is uWSGI's to read. The
    launcher reads only regular files for a name (else it took the ini from uWSGI, or waited)."""
    pipe = workdir / "uwsgi.ini"
    os.mkfifo(pipe)

    def serve() -> None:  # blocks until a reader opens the pipe
        with open(pipe, "w") as handle:
            handle.write("[uwsgi]\nmodule = shop.wsgi\n")

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    try:
        result = run([*launcher(), "--print-config", "uwsgi", "--ini", "uwsgi.ini"], clean_env(), workdir, timeout=30)
        assert writer.is_alive()  # the launcher never opened the pipe
    finally:
        if writer.is_alive():
            with open(pipe) as handle:
                handle.read()
        writer.join(10)
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if " OTEL_SERVICE_NAME " in line]
    assert "shop" not in row

    proc = start([*launcher(), "--print-config", "uwsgi", "--ini", "/dev/stdin"], clean_env(), workdir, stdin=PIPE)
    try:
        out, err = proc.communicate("[uwsgi]\nmodule = shop.wsgi\n", timeout=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err
    (row,) = [line for line in out.splitlines() if " OTEL_SERVICE_NAME " in line]
    assert "shop" not in row
