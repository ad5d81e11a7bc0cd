"""The default ``.env`` through the real launcher: read only when it is a regular file."""

from __future__ import annotations

import os
import threading

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytestmark = pytest.mark.process


def test_a_env_directory_is_no_env_file_and_the_app_starts(receiver, workdir):
    """A repository that keeps its env samples in a .env/ folder: web and worker alike used to exit 2."""
    (workdir / ".env").mkdir()
    (workdir / ".env" / "production.env").write_text("OTEL_SERVICE_NAME=sample\n")
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    result = run([*launcher(), PYTHON, str(TARGETS / "span_and_exit.py"), "served"], env, workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not even a note: a folder is not an env file
    assert receiver.wait_for(lambda r: [s.name for s in r.spans] == ["served"], timeout=10)
    (span,) = receiver.spans
    assert "sample" not in str(span.resource.get("service.name"))  # nothing read from inside the folder


def test_a_env_directory_named_with_env_file_is_still_an_error(workdir):
    (workdir / ".env").mkdir()
    result = run([*launcher(), "--env-file", ".env", PYTHON, "-c", "print('started')"], clean_env(), workdir)
    assert (result.returncode, result.stdout) == (2, "")  # the target never started
    message = "otel-launch: error: --env-file: '.env' cannot be read (Is a directory); expected a readable env file\n"
    assert result.stderr == message


def test_a_env_named_pipe_is_left_to_the_app(workdir):
    """A secrets manager serving .env through a named pipe: the launcher notes it and never opens it,
    so the app's own loader reads what the pipe holds."""
    pipe = workdir / ".env"
    os.mkfifo(pipe)

    def serve() -> None:  # blocks until a reader opens the pipe: the app, not the launcher
        with open(pipe, "w") as handle:
            handle.write("APP_SECRET=from-the-pipe\n")

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    app = "print(open('.env').read().strip())"
    try:
        result = run([*launcher(), PYTHON, "-c", app], clean_env(OTEL_TRACES_EXPORTER="none"), workdir, timeout=30)
    finally:
        if writer.is_alive():  # nobody read it: open it here so that the writer ends
            with open(pipe) as handle:
                handle.read()
        writer.join(10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "APP_SECRET=from-the-pipe\n"
    assert result.stderr == (
        "otel-launch: warning: .env is a named pipe: not read (--env-file .env reads it; --no-env-file: no note)\n"
    )
