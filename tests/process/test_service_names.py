"""Service names read from the command (otel_launch/_core/service_name.py): what ``--print-config`` says,
and the ``service.name`` of the launched process's spans, on real servers and workers; under a shell
script, each Python process's own (otel_launch/_runtime/_service_name.py)."""

from __future__ import annotations

import os
import shlex
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


def _server(server: str, port: int) -> list[str]:
    """One web server serving pool_app on ``port``, one worker (forked by its master)."""
    pytest.importorskip("django")
    if server == "gunicorn":
        pytest.importorskip("gunicorn")
        return [str(BIN / "gunicorn"), "pool_app.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"]
    uwsgi = shutil.which("uwsgi", path=str(BIN)) or shutil.which("uwsgi")
    if uwsgi is None:
        pytest.skip("uwsgi (the uwsgi or pyuwsgi package) is not installed")
    args = [uwsgi, "--http", f"127.0.0.1:{port}", "--module", "pool_app.wsgi", "--master", "--processes", "1"]
    return [*args, "--lazy-apps", "--pythonpath", str(TARGETS)]


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
def test_a_web_server_runs_as_project_web(receiver, workdir, server):
    port = free_port()
    args = _server(server, port)
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


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
def test_under_a_shell_script_each_python_process_names_itself(receiver, workdir, server):
    """``otel-launch ./entrypoint.sh`` (shynet's Docker entrypoint): the launcher reads no name from a
    shell script, so each Python process it runs reads its own from its own command line, by the
    launcher's rules: a Celery worker in the background as pool-app-worker (the task run in its
    forked pool child), ``manage.py check`` as pool-app-manage, the server (``exec``'d: the
    launcher's pid, not its command) and its forked worker as pool-app-web. A script that names
    nothing (the client that publishes the task) says so once, in its own process."""
    pytest.importorskip("celery")
    port = free_port()
    worker = [PYTHON, "-m", "celery", "-A", "pool_app", "worker", "-c", "1", "-l", "info"]
    worker += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    # A task published before the worker binds its queue is dropped. The binding is a line of JSON in
    # the exchange's file, which kombu creates before it writes (and locks) it: wait for the queue's name.
    bound = shlex.quote(str(workdir / "broker" / "control" / "celery.exchange"))
    binding = shlex.quote(r'\["celery", "", "celery"\]')  # (routing key, pattern, queue), as kombu writes it
    script = workdir / "entrypoint.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        f"{shlex.join(worker)} &\n"
        f"tries=0; until grep -qs {binding} {bound}; do\n"
        "tries=$((tries + 1)); [ $tries -lt 600 ] || exit 3; sleep 0.1; done\n"
        f"{shlex.join([PYTHON, str(MANAGE_PY), 'check'])}\n"
        f"{shlex.join([PYTHON, str(TARGETS / 'pool_app_client.py'), '/pool/?task=1'])}\n"
        f"exec {shlex.join(_server(server, port))}\n"
    )
    script.chmod(0o755)
    env = _env(receiver, workdir, POOL_APP_POLLING_INTERVAL="0.01")
    process = start([*launcher(), str(script)], env, workdir)
    try:
        _get_until_served(f"http://127.0.0.1:{port}/pool/", timeout=90)
        (command,) = _spans_of(receiver, "check")
        (published,) = _spans_of(receiver, "apply_async/pool_app.pooled")
        (task,) = _spans_of(receiver, "run/pool_app.pooled", timeout=60)  # the pool child's, under CI's load
        assert receiver.wait_for(lambda r: len([s for s in r.spans if s.name == "GET /pool/"]) == 2, timeout=20)
    except AssertionError as failed:  # what the script and the worker said tells why
        _, err = kill_group(process)
        raise AssertionError(f"{failed}\n--- their stderr, last 4000 characters:\n{err[-4000:]}") from None
    except BaseException:
        kill_group(process)
        raise
    _, err = kill_group(process)
    assert command.service == "pool-app-manage"
    assert task.service == "pool-app-worker"
    served = sorted(span.service for span in receiver.spans if span.name == "GET /pool/")
    # The server's, then the client's: the SDK's default (unknown_service:<executable's name or path>).
    assert served[0] == "pool-app-web" and served[1].startswith("unknown_service:"), served
    assert published.service.startswith("unknown_service:"), published.service
    said = [line for line in err.splitlines() if "no service name" in line]
    assert said == [
        "otel-launch: warning: no service name for this process (pool_app_client): its telemetry is reported "
        "as the SDK's default, unknown_service; set OTEL_SERVICE_NAME to name it"
    ], err


def test_the_launchers_own_python_command_keeps_todays_default_quietly(receiver, workdir):
    """``otel-launch python script.py``: the launcher reads no name from it (``--print-config`` shows
    none) and the process says nothing more; the SDK's default, as before."""
    target = [PYTHON, str(TARGETS / "span_and_exit.py"), "direct"]
    result = run([*launcher(), *target], _env(receiver, workdir), workdir)
    assert result.returncode == 0, result.stderr
    (span,) = _spans_of(receiver, "direct")
    assert span.service.startswith("unknown_service:"), span.service  # the SDK's default
    assert "no service name" not in result.stderr
