"""OTEL_CONFIG_FILE through the real launcher: a real Celery prefork worker, a real OTLP receiver."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON, clean_env, kill_group, launcher, run, start

pytest.importorskip("celery")
HAS_PACKAGE = importlib.util.find_spec("opentelemetry.configuration") is not None
pytestmark = pytest.mark.process
CELERY = str(Path(sys.executable).parent / "celery")

APP = """
import os

from celery import Celery
from opentelemetry import trace

app = Celery("cfgapp", broker="filesystem://")
app.conf.broker_transport_options = {
    "data_folder_in": os.environ["BROKER_DIR"],
    "data_folder_out": os.environ["BROKER_DIR"],
}
app.conf.worker_hijack_root_logger = False


@app.task(name="cfgapp.work")
def work():
    tracer = trace.get_tracer("cfgapp")
    # A child of the run span: the file's sampler drops it (local parent sampled: always_off).
    with tracer.start_as_current_span("child-of-run"):
        pass
    # A root of its own: the file's sampler keeps it (root: always_on).
    with tracer.start_as_current_span("own-root", context=trace.set_span_in_context(trace.INVALID_SPAN)) as span:
        span.set_attribute("pid", os.getpid())
    open(os.environ["DONE_FILE"], "w").close()
    return os.getpid()
"""

CONFIG = """
file_format: "1.0"
resource:
  attributes:
    - name: service.name
      value: cfg-worker
    - name: team
      value: ${{TEAM_FROM_ENV}}
tracer_provider:
  sampler:
    parent_based:
      root:
        always_on: {{}}
      local_parent_sampled:
        always_off: {{}}
  processors:
    - batch:
        # Longer than the test: what arrives, the pool child's flush at its exit delivered.
        schedule_delay: 600000
        exporter:
          otlp_grpc:
            endpoint: {endpoint}
            headers:
              - name: api-key
                value: ${{API_KEY}}
"""


def _send_task(broker_dir: Path) -> None:
    # The producer is a plain process (not launched): the run span in the worker is a root.
    code = textwrap.dedent(
        f"""
        from celery import Celery
        app = Celery("cfgapp", broker="filesystem://")
        app.conf.broker_transport_options = {{"data_folder_in": {str(broker_dir)!r},
                                              "data_folder_out": {str(broker_dir)!r}}}
        app.send_task("cfgapp.work")
        """
    )
    # In the test's directory: kombu's filesystem transport keeps its control folder in the cwd.
    subprocess.run([PYTHON, "-c", code], env=clean_env(), cwd=broker_dir.parent, check=True, timeout=60)


@pytest.mark.skipif(not HAS_PACKAGE, reason="opentelemetry-configuration is not installed")
def test_config_file_sets_sampler_resource_and_endpoint_in_a_prefork_child(receiver, workdir):
    broker_dir = workdir / "broker"
    broker_dir.mkdir()
    (workdir / "cfgapp.py").write_text(APP)
    config = workdir / "otel.yaml"
    config.write_text(CONFIG.format(endpoint=receiver.grpc_endpoint))
    env = clean_env(
        BROKER_DIR=str(broker_dir),
        DONE_FILE=str(workdir / "done"),
        TEAM_FROM_ENV="payments",
        API_KEY="k-123",
        PYTHONUNBUFFERED="1",
        # Each made meaningless by the file: a dead endpoint and a sampler that keeps nothing.
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_SAMPLER="always_off",
        OTEL_RESOURCE_ATTRIBUTES="team=ignored",
    )
    command = [*launcher(), "--config-file", str(config), CELERY, "-A", "cfgapp", "worker"]
    command += ["-P", "prefork", "-c", "1", "-l", "info", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    worker = start(command, env, workdir)
    try:
        _send_task(broker_dir)
        done = workdir / "done"
        deadline = time.monotonic() + 60
        while not done.exists():  # the task writes it as it returns
            assert time.monotonic() < deadline and worker.poll() is None, "the task did not run"
            time.sleep(0.05)
        assert receiver.spans == []  # nothing exported before the exit flush
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)  # warm shutdown: the pool child exits, flushing
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            kill_group(worker)
    assert worker.returncode == 0, err[-3000:]
    assert receiver.wait_for(lambda r: {"own-root", "run/cfgapp.work"} <= {s.name for s in r.spans}, timeout=10)
    names = [span.name for span in receiver.spans]
    assert "child-of-run" not in names, names  # the file's sampler, not the default one
    own_root = next(span for span in receiver.spans if span.name == "own-root")
    run_span = next(span for span in receiver.spans if span.name.startswith("run/"))
    assert own_root.resource["service.name"] == "cfg-worker"
    assert own_root.resource["team"] == "payments"  # ${TEAM_FROM_ENV}, not OTEL_RESOURCE_ATTRIBUTES
    assert own_root.attributes["pid"] != worker.pid  # a pool child, forked by the worker's main process
    assert run_span.resource["service.name"] == "cfg-worker"
    warning = next(line for line in err.splitlines() if "ignored:" in line)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
        assert name in warning
    assert "k-123" not in out + err


def test_broken_config_file_is_refused_before_the_target_starts(workdir):
    marker = workdir / "started"
    target = [PYTHON, "-c", f"open({str(marker)!r}, 'w').close()"]
    broken = workdir / "otel.yaml"
    broken.write_text('file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter: {}\n')
    result = run([*launcher(), *target], clean_env(OTEL_CONFIG_FILE=str(broken)), workdir, timeout=60)
    assert result.returncode == 2, result.stderr
    assert not marker.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("otel-launch: error: OTEL_CONFIG_FILE")
    if HAS_PACKAGE:
        assert str(broken) in lines[0] and "tracer_provider.processors[0].batch.exporter" in lines[0]
    else:  # contrib 0.64: the package does not exist there
        assert "pip install 'otel-launch[config]'" in lines[0]


FORKING = """
import os, sys
from opentelemetry import metrics, trace

tracer, meter = trace.get_tracer("forking"), metrics.get_meter("forking")
with tracer.start_as_current_span("before-fork"):
    pass
print("grpc before fork:", "grpc" in sys.modules, flush=True)
pid = os.fork()
if pid == 0:
    with tracer.start_as_current_span("in-child"):
        pass
    meter.create_counter("child.count").add(1)
    sys.exit(0)  # the child's exit flush, with its own exporters
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

FORKING_CONFIG = """
file_format: "1.0"
tracer_provider:
  processors:
    - batch:
        schedule_delay: 600000
        exporter:
          otlp_grpc:
            endpoint: {endpoint}
meter_provider:
  readers:
    - periodic:
        interval: 600000
        exporter:
          otlp_grpc:
            endpoint: {endpoint}
"""


@pytest.mark.skipif(not HAS_PACKAGE, reason="opentelemetry-configuration is not installed")
def test_the_files_exporters_are_built_in_each_process_and_no_grpc_before_fork(receiver, workdir):
    (workdir / "forking.py").write_text(FORKING)
    config = workdir / "otel.yaml"
    config.write_text(FORKING_CONFIG.format(endpoint=receiver.grpc_endpoint))
    command = [*launcher(), "--config-file", str(config), PYTHON, "forking.py"]
    result = run(command, clean_env(PYTHONUNBUFFERED="1"), workdir, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    # The providers and their exporters exist before the fork; no gRPC channel does.
    assert "grpc before fork: False" in result.stdout, result.stdout
    assert receiver.wait_for(lambda r: {"before-fork", "in-child"} <= {s.name for s in r.spans}, timeout=10)
    assert receiver.wait_for(lambda r: "child.count" in {p.metric for p in r.points}, timeout=10)


LEAKY = """
import logging
log = logging.getLogger("leaky")
try:
    raise RuntimeError("cannot connect postgresql://ann:PwSecret22@db/shop?token=TokSecret")
except RuntimeError:
    log.exception("failed password=PwSecret33 url=https://u:PwSecret44@h/")
"""

CONSOLE_CONFIG = """
file_format: "1.0"
tracer_provider:
  processors:
    - simple:
        exporter:
          console: {}
logger_provider:
  processors:
    - simple:
        exporter:
          console: {}
"""


@pytest.mark.skipif(not HAS_PACKAGE, reason="opentelemetry-configuration is not installed")
def test_log_records_exported_by_the_files_exporters_are_scrubbed(workdir):
    (workdir / "leaky.py").write_text(LEAKY)
    config = workdir / "otel.yaml"
    config.write_text(CONSOLE_CONFIG)
    result = run([*launcher(), "--config-file", str(config), PYTHON, "leaky.py"], clean_env(), workdir, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"exception.stacktrace"' in result.stdout  # the record was exported
    for secret in ("PwSecret22", "TokSecret", "PwSecret33", "PwSecret44"):
        assert secret not in result.stdout, secret


@pytest.mark.skipif(not HAS_PACKAGE, reason="opentelemetry-configuration is not installed")
def test_a_header_without_equals_is_refused_and_never_printed(workdir):
    config = workdir / "otel.yaml"
    config.write_text(
        'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
        '          otlp_http:\n            headers_list: "Authorization: Bearer HdrSecret55,x-api-key=KeySecret66"\n'
    )
    result = run([*launcher(), "--config-file", str(config), "--print-config"], clean_env(), workdir, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "headers_list: item 1 (***)" in result.stderr
    assert "HdrSecret55" not in result.stdout + result.stderr and "KeySecret66" not in result.stdout + result.stderr
