"""Secrets never printed, bad values refused before the target runs: the real launcher, real targets."""

from __future__ import annotations

import pytest

from tests.helpers import PYTHON, clean_env, closed_port, launcher, run

pytestmark = pytest.mark.process
PASSWORD = "Hunter2Secret"
TOKEN = "TopSecretToken42"


def _marker_code(workdir) -> tuple[list[str], object]:
    marker = workdir / "target-ran"
    return [PYTHON, "-c", f"open({str(marker)!r}, 'w').close()"], marker


def test_grpc_endpoint_with_a_password_is_refused_before_start_and_never_printed(workdir):
    command, marker = _marker_code(workdir)
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://user:{PASSWORD}@127.0.0.1:{closed_port()}")
    result = run([*launcher(), *command], env, workdir)
    assert result.returncode == 2
    assert not marker.exists()
    assert len(result.stderr.splitlines()) == 1
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stderr and "OTEL_EXPORTER_OTLP_HEADERS" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "user:***@" in result.stderr


def test_http_endpoint_with_a_password_to_a_dead_collector_never_prints_it(workdir):
    """Accepted over http/protobuf (sent as basic auth), and masked in every line the exporter,
    the retries and the full queue make while the collector is down."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://user:{PASSWORD}@127.0.0.1:{closed_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={TOKEN}",
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
        OTEL_LAUNCH_SHUTDOWN_TIMEOUT="2",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BSP_MAX_QUEUE_SIZE="8",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4",
    )
    code = (
        "import time\n"
        "from opentelemetry import metrics, trace\n"
        "tracer = trace.get_tracer('app')\n"
        "counter = metrics.get_meter('app').create_counter('c')\n"
        "for i in range(200):\n"
        "    with tracer.start_as_current_span(f'span{i}'): counter.add(1)\n"
        "time.sleep(1.0)\n"
        "print('app ran')\n"
    )
    result = run([*launcher(), "--print-config"], env, workdir)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout and TOKEN not in result.stdout
    result = run([*launcher(), PYTHON, "-c", code], env, workdir, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app ran\n"
    streams = result.stdout + result.stderr
    assert result.stderr, "the dead collector went unreported"
    assert PASSWORD not in streams and TOKEN not in streams
    # The full queue is counted, not said once with no number.
    assert "dropped" in result.stderr and "spans" in result.stderr, result.stderr
    assert "Queue full" not in result.stderr


BAD_VALUES = {
    "grpc user in endpoint": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user@collector:4317"},
    "space in endpoint host": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collec tor:4317"},
    "per-signal endpoint password over grpc": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://u:pw@collector:4317"},
    "CR/LF in a header value": {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=a%0D%0Ab"},
    "non-ASCII header value": {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=caf%C3%A9"},
    "newline in the headers text": {"OTEL_EXPORTER_OTLP_HEADERS": "a=b\nc=d"},
    "bad escape in a header": {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=%ZZ"},
    "bad escape in resource attributes": {"OTEL_RESOURCE_ATTRIBUTES": "team=%ZZ"},
    "invalid UTF-8 in the service name": {"OTEL_SERVICE_NAME": "shop\udcff"},
    "invalid UTF-8 in the version": {"OTEL_LAUNCH_SERVICE_VERSION": "1.\udcff"},
    "invalid UTF-8 in the environment": {"OTEL_LAUNCH_DEPLOYMENT_ENVIRONMENT": "\udcffprod"},
    "queue smaller than the batch": {"OTEL_BSP_MAX_QUEUE_SIZE": "64"},
    "batch larger than the queue": {"OTEL_BLRP_MAX_QUEUE_SIZE": "100", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "200"},
    "schedule delay not a number": {"OTEL_BSP_SCHEDULE_DELAY": "soon"},
    "metric interval negative": {"OTEL_METRIC_EXPORT_INTERVAL": "-5"},
    "exporter timeout not a number": {"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "ten"},
    "unknown compression": {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
    "missing certificate": {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/no/such/ca.pem"},
    "SDK disabled neither true nor false": {"OTEL_SDK_DISABLED": "maybe"},
    "unknown resource detector": {"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "bogus"},
    "shutdown timeout too small": {"OTEL_LAUNCH_SHUTDOWN_TIMEOUT": "1e-320"},
    "span limit negative": {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "-1"},
    "redaction pattern not a regex": {"OTEL_LAUNCH_REDACT": "(unclosed"},
}


@pytest.mark.parametrize("values", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_each_class_of_bad_value_is_refused_with_exit_2_before_the_target_runs(workdir, values):
    command, marker = _marker_code(workdir)
    # Surrogates reach the OS as the invalid UTF-8 bytes they stand for.
    result = run([*launcher(), *command], clean_env(**values), workdir)
    assert result.returncode == 2, result.stderr
    assert not marker.exists(), "the target ran"
    (line,) = result.stderr.splitlines()
    assert line.startswith("otel-launch: error: ") and any(name in line for name in values), line
    assert "Traceback" not in result.stderr
    assert "pw@" not in line


def test_an_error_repeats_at_most_80_characters_of_the_value(workdir):
    command, marker = _marker_code(workdir)
    result = run([*launcher(), "--sample-rate", "9" * 10_000, *command], clean_env(), workdir)
    assert result.returncode == 2 and not marker.exists()
    assert len(result.stderr) < 300, result.stderr
    assert "(10000 characters)" in result.stderr


def test_env_file_lines_that_cannot_be_parsed_are_ours_to_report(workdir):
    command, marker = _marker_code(workdir)
    (workdir / ".env").write_text("DEBUG=1\nnot a line\nOTEL_SERVICE_NAME=shop\n")
    result = run([*launcher(), *command], clean_env(), workdir)
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert result.stderr.splitlines() == [
        "otel-launch: warning: .env line 2: cannot be parsed, ignored (otel-launch reads only its OTEL_* lines)"
    ]
    marker.unlink()
    (workdir / ".env").write_text('OTEL_SERVICE_NAME="unclosed\n')
    result = run([*launcher(), *command], clean_env(), workdir)
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.startswith("otel-launch: error: .env line 1: cannot be parsed"), result.stderr
    assert len(result.stderr.splitlines()) == 1
