"""Shared fixtures (a real OTLP receiver, an empty working directory) and the run's header and summary.
What tests import is in tests/helpers.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_launch.local.receiver import OTLPReceiver
from tests.helpers import LOCAL_RABBITMQ, SERVICES_USED, planned, reachable


def pytest_configure(config: pytest.Config) -> None:
    # Started from a shell's background job (as CI may start `make test`), this process ignores
    # SIGINT, and so would every process a test starts (exec keeps an ignored signal ignored): the
    # tests that stop a server with Ctrl-C would time out. A handler is reset to the default in a child.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in dict.fromkeys(SERVICES_USED):
        terminalreporter.write_line(f"e2e: {line}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist the fixtures run in the workers: each hands its lines to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["otel_launch_services_used"] = list(SERVICES_USED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    SERVICES_USED.extend(getattr(node, "workeroutput", {}).get("otel_launch_services_used", []))


def pytest_report_header(config: pytest.Config) -> str:
    """Which brokers the end-to-end tests use on this machine (they adapt to what is there)."""
    redis = f"redis: {planned()}"  # the e2e fixture's summary line says what it started or used
    rabbitmq = "rabbitmq at 127.0.0.1:5672" if reachable(LOCAL_RABBITMQ) else "no rabbitmq (its test skips)"
    return f"e2e brokers: {redis}; {rabbitmq}; filesystem:// always"


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(grpc_port=0, http_port=0) as started:
        yield started


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: no stray .env file is read."""
    return tmp_path
