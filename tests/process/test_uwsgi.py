"""Real uWSGI (the running Python's, from the ``uwsgi`` package) under the launcher, in each way its users
run a Python app: the app loaded in the master and forked, loaded in each worker, with Python threads
enabled, with a thread pool per worker. Each must start and serve, and its server spans reach a real
receiver, on every Python of the matrix (the end-to-end uWSGI scenarios run on one only).

When a launched uWSGI does not serve, the failure shows what it printed and whether the same uWSGI
starts its Python without the launcher: a uWSGI whose Python plugin was compiled for another Python
aborts in its own start (``PyImport_AppendInittab() may not be called after Py_Initialize()`` on 3.12
and later) with or without otel-launch."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, free_port, kill_group, launcher, start

pytestmark = pytest.mark.process
UWSGI = Path(PYTHON).parent / "uwsgi"
MODES = {
    "master-loaded": ["--processes", "2"],
    "lazy-apps": ["--processes", "1", "--lazy-apps"],
    "enable-threads": ["--processes", "1", "--enable-threads"],
    "threads": ["--processes", "1", "--threads", "2"],
}


def _served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _plain_uwsgi_starts_python(workdir: Path) -> str:
    """Whether this uWSGI, without the launcher, starts its Python and imports a module (``--test``)."""
    args = [str(UWSGI), "--socket", "127.0.0.1:0", "--test", "sys"]
    proc = start(args, clean_env(), workdir)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return "did not finish within 60s"
    last = [line for line in (out + err).splitlines() if "Fatal" in line or "rror" in line][-1:]
    return f"exit {proc.returncode}" + (f" ({last[0]})" if last else "")


@pytest.mark.parametrize("mode", list(MODES))
def test_uwsgi_starts_under_the_launcher_and_its_server_spans_arrive(receiver, workdir, mode):
    pytest.importorskip("django")
    if not UWSGI.exists():
        pytest.skip("uwsgi is not installed beside this Python (the test extra installs it)")
    port = free_port()
    args = [str(UWSGI), "--http", f"127.0.0.1:{port}", "--module", "pool_app.wsgi", "--master", *MODES[mode]]
    args += ["--pythonpath", str(TARGETS)]
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="200",
        POOL_APP_DB=str(workdir / "pool.sqlite3"),
        POOL_APP_BROKER_DIR=str(workdir),
    )
    process = start([*launcher(), *args], env, workdir)
    try:
        deadline = time.monotonic() + 60
        while not _served(f"http://127.0.0.1:{port}/pool/"):
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = kill_group(process)
                plain = _plain_uwsgi_starts_python(workdir)
                pytest.fail(
                    f"uWSGI ({mode}) under the launcher did not serve (exit {process.returncode}); the same uWSGI "
                    f"without the launcher: {plain}; its output ends:\n{err[-2500:]}"
                )
            time.sleep(0.1)
        arrived = receiver.wait_for(lambda r: any(s.name == "GET /pool/" for s in r.spans), timeout=30)
    finally:
        kill_group(process)
    assert arrived, f"no server span; received {sorted({s.name for s in receiver.spans})}"
    (span,) = [s for s in receiver.spans if s.name == "GET /pool/"]
    assert span.service == "pool-app-web"
    assert span.attributes.get("http.route") == "/pool/"
