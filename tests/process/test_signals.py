"""SIGTERM on a process that does not handle it: it flushes, then still dies by the signal.

A handler is installed only over the default disposition, once a provider exists: an
ignored SIGTERM stays ignored, and an app's own handler, even one set later, is what runs.
"""

from __future__ import annotations

import select
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, closed_port, kill_group, launcher

pytestmark = pytest.mark.process


@pytest.fixture
def launched(receiver, workdir) -> Iterator:
    """Start the target in a mode, wait (bounded) for its "ready"; killed by group at the end."""
    started: list[subprocess.Popen] = []

    def launch(mode: str, endpoint: str | None = None, **env: str) -> subprocess.Popen:
        settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint or receiver.grpc_endpoint, "OTEL_METRICS_EXPORTER": "none"}
        process = subprocess.Popen(
            [*launcher(), PYTHON, str(TARGETS / "sigterm_default.py"), mode],
            env=clean_env(**settings, **env),
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        assert select.select([process.stdout], [], [], 30)[0], "the target never got ready"
        assert process.stdout.readline().strip() == "ready"
        return process

    yield launch
    for process in started:
        kill_group(process)


def span_names(receiver) -> list[str]:
    return sorted(span.name for span in receiver.spans)


@pytest.mark.parametrize("mode", ["default", "gevent", "eventlet"])
def test_default_sigterm_flushes_then_dies_by_the_signal(receiver, launched, mode):
    """Under gevent and eventlet the handler runs in the hub, which must not wait: a green
    thread flushes there."""
    if mode != "default":
        pytest.importorskip(mode)
    process = launched(mode)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM, err  # what the caller saw without the launcher
    assert receiver.wait_for(lambda r: span_names(r) == ["before-signal"], timeout=5), span_names(receiver)
    assert "otel-launch" not in err and "Traceback" not in err


def test_the_flush_on_sigterm_is_bounded_when_the_collector_is_down(launched):
    dead = f"http://127.0.0.1:{closed_port()}"
    process = launched("default", endpoint=dead, OTEL_LAUNCH_SHUTDOWN_TIMEOUT="1", OTEL_EXPORTER_OTLP_TIMEOUT="30")
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM
    assert time.monotonic() - sent < 5  # the 1 s bound, and the process's own exit


def test_an_ignored_sigterm_stays_ignored(receiver, launched):
    process = launched("ignored")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate("go\n", timeout=30)
    assert process.returncode == 0, err
    assert out.strip() == "still here True"


def test_the_apps_own_handler_set_after_the_first_span_is_what_runs(receiver, launched):
    process = launched("handler-after")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 7, err  # the app's exit status, through its handler
    assert receiver.wait_for(lambda r: span_names(r) == ["before-signal"], timeout=5)  # flushed at exit


def test_a_multiprocessing_child_terminated_by_its_parent_flushes_and_dies_by_the_signal(receiver, launched):
    process = launched("child")
    out, err = process.communicate("go\n", timeout=30)
    assert process.returncode == 0, err
    assert out.strip() == f"child exit code {-signal.SIGTERM}"  # as Process.terminate() reports it
    assert receiver.wait_for(lambda r: span_names(r) == ["in-child"], timeout=5), span_names(receiver)


def test_sigterm_with_the_export_lock_held_delivers_within_the_bound(receiver, workdir):
    """The main thread holds the batch processor's export lock for 1 s when SIGTERM lands (as
    during a force_flush() export): the flush waits for it, not for the bound (3 s), and the
    span is delivered; the process still dies by the signal."""
    process = subprocess.Popen(
        [*launcher(), PYTHON, str(TARGETS / "sigterm_lock_held.py"), "1"],
        env=clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
            OTEL_METRICS_EXPORTER="none",
            OTEL_LAUNCH_SHUTDOWN_TIMEOUT="3",
        ),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert select.select([process.stdout], [], [], 30)[0], "the target never got ready"
        assert process.stdout.readline().strip() == "ready"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        kill_group(process)
    assert process.returncode == -signal.SIGTERM, err
    assert receiver.wait_for(lambda r: span_names(r) == ["before-signal"], timeout=5), span_names(receiver)
    assert took < 3, took  # the lock's 1 s and the export, never the whole bound
    assert "otel-launch" not in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "off, script, said",
    [
        (
            "OTEL_METRICS_EXPORTER",
            "from opentelemetry import trace\nfor i in range(3):\n    trace.get_tracer('t').start_span(str(i)).end()\n",
            "(in the flush of spans), 3 spans not exported;",
        ),
        # Spans are flushed first and metrics last: a give-up in the metrics loses no span, and says so.
        (
            "OTEL_TRACES_EXPORTER",
            "from opentelemetry import metrics\nmetrics.get_meter('m').create_counter('c').add(1)\n",
            "(in the flush of metrics);",
        ),
    ],
    ids=["spans", "metrics"],
)
def test_a_flush_that_gives_up_says_where_and_how_many_spans_it_left(workdir, off, script, said):
    """Issue 22: a process that recorded telemetry it could not export at exit says so, in one line:
    the flush the bound ran out in, and the spans left (issue 23: a recycled pool child's rare give-up)."""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=dead,
        OTEL_LAUNCH_SHUTDOWN_TIMEOUT="1",
        OTEL_EXPORTER_OTLP_TIMEOUT="30",
        **{off: "none"},
    )
    result = subprocess.run(
        [*launcher(), PYTHON, "-c", script], env=env, cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "gave up flushing" in line]
    assert len(lines) == 1, result.stderr
    assert said in lines[0] and dead in lines[0], lines
