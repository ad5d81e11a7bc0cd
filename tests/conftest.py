"""Shared fixtures: a real OTLP receiver, and bounded runs of the real otel-launch command."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.redis_server import planned
from otel_launch.local.receiver import OTLPReceiver

TARGETS = Path(__file__).parent / "targets"
PYTHON = sys.executable
LOCAL_RABBITMQ = ("127.0.0.1", 5672)


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


# What the end-to-end fixtures actually used (brokers, servers started), for the run's summary.
SERVICES_USED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in dict.fromkeys(SERVICES_USED):
        terminalreporter.write_line(f"e2e: {line}")


def pytest_report_header(config: pytest.Config) -> str:
    """Which brokers the end-to-end tests use on this machine (they adapt to what is there)."""
    redis = f"redis: {planned()}"  # the e2e fixture's summary line says what it started or used
    rabbitmq = "rabbitmq at 127.0.0.1:5672" if reachable(LOCAL_RABBITMQ) else "no rabbitmq (its test skips)"
    return f"e2e brokers: {redis}; {rabbitmq}; filesystem:// always"


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


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(grpc_port=0, http_port=0) as started:
        yield started


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: no stray .env file is read."""
    return tmp_path
