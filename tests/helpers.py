"""What the tests share: bounded runs of the real otel-launch, ports, bounded waits, span factories
and the private Redis. Test modules import from here (or another helpers module), never from a
test module or a conftest.

The private Redis is ``examples/redis_server.py``'s: the demo and the benchmarks start one too, and
they run without the tests (and without pytest), so the one implementation lives beside them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from examples.redis_server import Redis, RedisUnavailable, free_port, planned, redis_for_run
from otel_launch.local.receiver import ReceivedSpan

__all__ = [
    "LOCAL_RABBITMQ",
    "PYTHON",
    "SERVICES_USED",
    "TARGETS",
    "Redis",
    "RedisUnavailable",
    "clean_env",
    "closed_port",
    "free_port",
    "kill_group",
    "launcher",
    "otel_env",
    "planned",
    "reachable",
    "received_span",
    "redis_for_run",
    "run",
    "start",
    "wait_until",
]

TARGETS = Path(__file__).parent / "targets"
PYTHON = sys.executable
LOCAL_RABBITMQ = ("127.0.0.1", 5672)
# What the end-to-end fixtures actually used (brokers, servers started), for the run's summary.
SERVICES_USED: list[str] = []


# -- processes --------------------------------------------------------------------------------


def launcher() -> list[str]:
    """The installed console script, as users run it."""
    script = Path(sys.executable).parent / "otel-launch"
    if script.exists():
        return [str(script)]
    found = shutil.which("otel-launch")
    return [found] if found else [sys.executable, "-m", "otel_launch"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without OTEL_* or PYTHONPATH, so the machine's never leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env.update(extra)
    return env


def otel_env(receiver, protocol: str = "grpc", **extra: str) -> dict[str, str]:
    """A clean environment exporting traces to ``receiver`` as service ``target`` (no metrics)."""
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "target",
        "OTEL_METRICS_EXPORTER": "none",
    }
    return clean_env(**{**settings, **extra})


def kill_group(proc: subprocess.Popen) -> tuple[str, str]:
    """Kill the process and all it started; what it wrote (stdout, stderr)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()


def start(args: list[str], env: dict[str, str], cwd: Path, **kwargs) -> subprocess.Popen:
    """Start a process in its own group, so a hung test can kill it and all it started."""
    return subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run to completion within ``timeout`` seconds; on time-out kill the whole group and fail."""
    proc = start(args, env, cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        pytest.fail(f"{args} did not finish within {timeout}s")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


# -- ports and waits --------------------------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound for a moment, then released)."""
    return free_port()


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, at most ``timeout`` seconds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


# -- spans ------------------------------------------------------------------------------------


def received_span(
    name: str,
    span_id: str,
    parent: str = "",
    trace: str = "t1",
    start: int = 0,
    end: int = 1_000_000,
    service: str = "web",
    status: str = "UNSET",
    message: str = "",
    kind: int = 1,
    scope: str = "scope",
    events: list[dict[str, Any]] | None = None,
    **attributes: Any,
) -> ReceivedSpan:
    """A span as the local receiver hands it on; ``http__route=...`` is the attribute ``http.route``."""
    return ReceivedSpan(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        status=status,
        status_message=message,
        attributes={key.replace("__", "."): value for key, value in attributes.items()},
        resource={"service.name": service},
        scope=scope,
        events=list(events or []),
    )
