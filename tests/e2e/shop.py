"""The example shop in one end-to-end test (its database, broker queue, log files and processes), and
readers of what the receiver got. Every process a test starts runs in its own process group, writes
to files in the test's directory, and is killed by PID at teardown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from otel_launch.local.receiver import OTLPReceiver, ReceivedSpan
from tests.helpers import PYTHON, clean_env, free_port, launcher, wait_until

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
BIN = Path(sys.executable).parent


def _django_has_a_redis_cache() -> bool:
    """Django's own Redis cache backend exists from 4.0: on older releases the shop caches in memory."""
    import django

    return django.VERSION >= (4, 0)


class Shop:
    """The example shop in one test: its database, broker queue, log files and processes."""

    def __init__(self, workdir: Path, receiver: OTLPReceiver, broker: str, broker_url: str, cache_url: str | None):
        self.workdir, self.receiver, self.broker = workdir, receiver, broker
        self.processes: list[subprocess.Popen] = []
        (workdir / "logs").mkdir()
        (workdir / "broker").mkdir()
        self.task_log = workdir / "tasks.jsonl"
        self.base_env = clean_env(
            SHOP_DB=str(workdir / "shop.sqlite3"),
            SHOP_BROKER_URL=broker_url,
            SHOP_BROKER_DIR=str(workdir / "broker"),
            SHOP_QUEUE=f"e2e-{os.getpid()}-{workdir.name}",
            SHOP_TASK_LOG=str(self.task_log),
            SHOP_LOG_DIR=str(workdir / "logs"),
            SHOP_LOG_FORMAT="%(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s %(message)s",
            PYTHONUNBUFFERED="1",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
            # Default span batching (5 s), and metrics only at exit: what a test counts after a
            # process stopped is what that process's exit flush delivered.
            OTEL_METRIC_EXPORT_INTERVAL="600000",
        )
        self.base_env.pop("DJANGO_SETTINGS_MODULE", None)  # the app sets it, as it would in production
        if cache_url and _django_has_a_redis_cache():
            self.base_env["SHOP_CACHE_URL"] = cache_url
            self.base_env["SHOP_CACHE_PREFIX"] = self.base_env["SHOP_QUEUE"]

    # -- processes ----------------------------------------------------------------------------

    def start(self, name: str, command: list[str], *, service: str | None = None, **env: str) -> subprocess.Popen:
        """Start ``command`` under otel-launch (or plain, when ``service`` is None)."""
        args = [*launcher(), "--service-name", service, *command] if service else command
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed by the child's exit
        process = subprocess.Popen(
            args,
            cwd=SHOP,
            env={**self.base_env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        process.name = name  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def manage(self, *args: str, service: str | None = "shop-command", timeout: float = 60, **env: str):
        """Run a management command to completion: (exit code, output)."""
        process = self.start(f"manage-{args[0]}", [PYTHON, "manage.py", *args], service=service, **env)
        return self.wait(process, timeout), self.output(process)

    def serve(self, name: str, command: list[str], port: int, service: str | None, **env: str) -> subprocess.Popen:
        """Start a server and wait until it answers; the process gets a ``port`` attribute."""
        process = self.start(f"{name}-{port}", command, service=service, **env)
        process.port = port  # type: ignore[attr-defined]
        self.wait_http(process)
        return process

    def gunicorn(self, *options: str, service: str | None = "shop-web", **env: str) -> subprocess.Popen:
        port = free_port()
        command = [str(BIN / "gunicorn"), "shop.wsgi", "-b", f"127.0.0.1:{port}", *options]
        return self.serve("gunicorn", command, port, service, **env)

    def worker(self, *options: str, service: str | None = "shop-worker", **env: str) -> subprocess.Popen:
        command = [str(BIN / "celery"), "-A", "shop", "worker", "-l", "info", "--without-mingle", "--without-gossip"]
        return self.start("worker", [*command, *options], service=service, **env)

    def wait(self, process: subprocess.Popen, timeout: float = 60) -> int:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{process.name} did not exit within {timeout:g}s:\n{self.output(process)[-3000:]}")

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the process (its PID, as a supervisor would) and wait for its exit."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        return self.wait(process, timeout)

    def stop_group(self, process: subprocess.Popen, sig: int, timeout: float = 60) -> int:
        """Signal the process's whole group, as a terminal's Ctrl-C does, and wait for its exit."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        return self.wait(process, timeout)

    def output(self, process: subprocess.Popen) -> str:
        return (self.workdir / f"{process.name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        if self.base_env["SHOP_BROKER_URL"].startswith("redis"):  # leave a shared Redis as found
            import redis

            client = redis.Redis.from_url(self.base_env["SHOP_BROKER_URL"])
            queue = self.base_env["SHOP_QUEUE"]
            client.delete(queue, *client.keys(f"*{queue}*"))

    # -- talking to the app -------------------------------------------------------------------

    @staticmethod
    def request(port: int, method: str, path: str, data: dict[str, str] | None = None) -> tuple[int, bytes]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def concurrently(self, port: int, paths: list[str], threads: int = 4) -> list[int]:
        """GET every path, ``threads`` at a time (so that every server worker gets some)."""
        with ThreadPoolExecutor(threads) as pool:
            return [status for status, _ in pool.map(lambda path: self.request(port, "GET", path), paths)]

    def wait_http(self, server: subprocess.Popen, timeout: float = 30) -> None:
        port = server.port  # type: ignore[attr-defined]

        def answers() -> bool:
            if server.poll() is not None:
                pytest.fail(f"{server.name} exited ({server.returncode}):\n{self.output(server)[-3000:]}")
            try:
                return self.request(port, "GET", "/health/")[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout, f"the shop answering on port {port}", interval=0.1)

    def executions(self) -> list[dict[str, Any]]:
        """Task executions, as the tasks themselves logged them (independent of telemetry)."""
        if not self.task_log.exists():
            return []
        return [json.loads(line) for line in self.task_log.read_text().splitlines() if line.strip()]

    def wait_for_executions(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        return wait_until(lambda: len(self.executions()) >= count and self.executions(), timeout, f"{count} tasks run")

    def log_records(self) -> list[dict[str, Any]]:
        path = self.workdir / "logs" / "orders.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- reading what the receiver got ------------------------------------------------------------


def service(span: ReceivedSpan) -> str:
    return span.resource.get("service.name", "")


def server_spans(receiver: OTLPReceiver) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.scope == "opentelemetry.instrumentation.django"]


def named(receiver: OTLPReceiver, prefix: str) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.name.startswith(prefix)]


def traces(receiver: OTLPReceiver) -> dict[str, list[ReceivedSpan]]:
    grouped: dict[str, list[ReceivedSpan]] = {}
    for span in receiver.spans:
        grouped.setdefault(span.trace_id, []).append(span)
    return grouped


def points_by_pid(receiver: OTLPReceiver, metric: str) -> dict[int, set[str]]:
    """process.pid -> service.instance.id values, for the points of one metric."""
    found: dict[int, set[str]] = {}
    for point in receiver.points:
        if point.metric == metric:
            found.setdefault(point.resource.get("process.pid"), set()).add(point.resource.get("service.instance.id"))
    return found


def telemetry_noise(output: str) -> list[str]:
    """Lines the telemetry itself put in the app's output (none are expected)."""
    markers = ("opentelemetry", "otel-launch", "otel_launch", "Failed to detach", "recursion", "Overriding of current")
    return [line for line in output.splitlines() if any(marker in line for marker in markers)]
