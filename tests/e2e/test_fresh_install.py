"""otel-launch installed as an app installs it: into the app's own fresh environment, beside the
oldest OpenTelemetry SDK of its range that the app pinned, then a launched gunicorn request."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import venv
from pathlib import Path

import pytest

from tests.helpers import clean_env, free_port, kill_group, start, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
OLDEST_SDK, OLDEST_CONTRIB = "1.43.0", "0.64b0"  # the first releases of pyproject.toml's range


def _pip(python: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pip {args[0]} did not finish within {timeout}s")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_beside_the_oldest_sdk_of_the_range_a_gunicorn_request_arrives(tmp_path, receiver):
    env_dir = tmp_path / "app-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # The app's own pins, and otel-launch from this checkout (pip's cache is allowed).
    app_pins = [f"opentelemetry-sdk=={OLDEST_SDK}", "django", "gunicorn", "celery"]
    _pip(python, "install", "--quiet", str(ROOT), *app_pins, timeout=600)
    listed = json.loads(_pip(python, "list", "--format=json", timeout=60).stdout)
    installed = {p["name"].lower(): p["version"] for p in listed}
    assert installed["opentelemetry-sdk"] == installed["opentelemetry-api"] == OLDEST_SDK
    # The SDK's exact pin of the semantic conventions brings every contrib package to its release.
    contrib = {name: version for name, version in installed.items() if name.startswith("opentelemetry-instrumentation")}
    assert contrib and set(contrib.values()) == {OLDEST_CONTRIB}, contrib

    env = clean_env(
        SHOP_DB=str(tmp_path / "shop.sqlite3"),
        SHOP_BROKER_URL="filesystem://",
        SHOP_BROKER_DIR=str(tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="100",
        PATH=f"{env_dir / 'bin'}:/usr/bin:/bin",
    )
    env.pop("VIRTUAL_ENV", None)
    migrate = subprocess.run([str(python), "manage.py", "migrate", "-v0"], cwd=SHOP, env=env, timeout=120)
    assert migrate.returncode == 0
    port = free_port()
    command = [str(env_dir / "bin" / "otel-launch"), "--service-name", "fresh-web"]
    command += [str(env_dir / "bin" / "gunicorn"), "shop.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
    server = start(command, env, SHOP)
    try:

        def answers() -> bool:
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited ({server.returncode}): {server.communicate()[1][-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answers, 60, "the shop answering under otel-launch in the fresh environment", interval=0.1)
        wait_until(lambda: any(s.name == "GET /health/" for s in receiver.spans), 20, "the request's server span")
    finally:
        _, errors = kill_group(server)
    assert "otel-launch: warning" not in errors, errors[-3000:]  # no fallback: every internal is there on 1.43
    span = [s for s in receiver.spans if s.name == "GET /health/"][-1]
    assert span.service == "fresh-web" and span.scope == "opentelemetry.instrumentation.django"
    assert span.resource["telemetry.sdk.version"] == OLDEST_SDK
    assert span.resource["process.pid"] != server.pid  # a gunicorn worker's own, renewed after fork
    assert str(env_dir) in span.resource.get("process.executable.path", str(env_dir))  # the app's python
