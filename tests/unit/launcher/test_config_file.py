"""OTEL_CONFIG_FILE: one-line refusals, what the target is told, --print-config, and the provider build."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from otel_launch._launcher.cli import main
from otel_launch._launcher.config import Config, ConfigError

# At contrib 0.64 the package does not exist: only the test of that case runs there.
needs_package = pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.configuration") is None, reason="opentelemetry-configuration"
)

GOOD = """
file_format: "1.0"
resource:
  attributes:
    - name: service.name
      value: from-file
tracer_provider:
  sampler:
    trace_id_ratio_based:
      ratio: 0.25
  processors:
    - batch:
        exporter:
          otlp_http:
            endpoint: http://collector:4318/v1/traces
            headers:
              - name: api-key
                value: ${API_KEY}
propagator:
  composite_list: tracecontext,b3
instrumentation/development:
  python:
    redis:
      enabled: false
    sqlite3: {}
"""


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("API_KEY", "k")  # contrib 0.65b0's package refuses an unset ${VAR}; later ones make it empty
    return tmp_path


def refusal(path, text: str | None = None, name: str = "otel.yaml") -> str:
    file = path / name
    if text is not None:
        file.write_text(text)
    with pytest.raises(ConfigError) as refused:
        Config(environ={}, config_file=str(file))
    message = str(refused.value)
    assert "\n" not in message
    return message


@needs_package
def test_a_missing_file_names_the_flag_and_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short path, whatever the base of pytest's directories: the value shown is capped
    message = refusal(Path("."))
    assert message.startswith("--config-file='")
    assert "otel.yaml" in message and "cannot be read (No such file or directory)" in message


@needs_package
def test_a_file_that_is_not_yaml_or_json_by_name(tmp_path):
    assert "expected a file named *.yaml, *.yml or *.json" in refusal(tmp_path, "x: 1", "otel.toml")


@needs_package
def test_bad_yaml_gives_its_line_and_column(tmp_path):
    message = refusal(tmp_path, 'file_format: "1.0"\ntracer_provider:\n  sampler: [\n')
    assert "otel.yaml: line " in message and "expected valid YAML" in message


@needs_package
def test_an_unknown_key_is_named_with_its_path(tmp_path):
    text = 'file_format: "1.0"\ntracer_provider:\n  samplr: {}\n  processors: []\n'
    message = refusal(tmp_path, text)
    assert "tracer_provider: unknown key samplr; expected one of" in message


@needs_package
def test_a_wrong_value_shows_its_path_masked_and_capped(tmp_path):
    secret_url = "http://user:hunter2@host/" + "x" * 200
    text = f'file_format: "1.0"\ntracer_provider:\n  sampler:\n    trace_id_ratio_based:\n      ratio: "{secret_url}"\n'
    text += "  processors:\n    - simple:\n        exporter:\n          console: {}\n"
    message = refusal(tmp_path, text)
    assert "tracer_provider.sampler.trace_id_ratio_based.ratio: " in message
    assert "hunter2" not in message and "user:***@host" in message
    assert "characters)" in message and "expected number" in message


@needs_package
def test_a_secret_header_value_of_the_wrong_type_is_never_echoed(tmp_path):
    text = """file_format: "1.0"
tracer_provider:
  processors:
    - batch:
        exporter:
          otlp_grpc:
            headers:
              - name: api-key
                value: [s3cr3t]
"""
    message = refusal(tmp_path, text)
    assert "tracer_provider.processors[0].batch.exporter.otlp_grpc.headers[0].value" in message
    assert "s3cr3t" not in message


@needs_package
def test_an_unsupported_version_is_refused(tmp_path):
    message = refusal(tmp_path, 'file_format: "2.0"\n')
    assert "otel.yaml: file_format: '2.0' is not accepted; expected a version 1.x" in message


@needs_package
def test_an_empty_file_is_refused(tmp_path):
    assert "the file is empty" in refusal(tmp_path, "")


@needs_package
def test_a_propagator_otel_launch_cannot_build_is_refused(tmp_path):
    message = refusal(tmp_path, 'file_format: "1.0"\npropagator:\n  composite_list: tracecontext,xray\n')
    assert message.startswith("--config-file: ")
    assert "otel.yaml: propagator.composite_list: 'xray' is not accepted; expected a comma-separated list" in message


def test_without_the_package_one_line_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "otel.yaml").write_text(GOOD)
    monkeypatch.setitem(sys.modules, "opentelemetry.configuration", None)  # as at contrib 0.64
    message = refusal(tmp_path)
    assert "needs the opentelemetry-configuration package, which is not installed" in message
    assert "pip install 'otel-launch[config]'" in message


@needs_package
def test_the_target_is_told_the_file_and_not_the_variables_it_replaces(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=b")  # ${...} reads the process's environment
    (tmp_path / "otel.yaml").write_text(GOOD.replace("${API_KEY}", "${API_KEY} ${OTEL_EXPORTER_OTLP_HEADERS}"))
    environ = {
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=b",  # named in the file: kept for its ${...}
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "sqlite3",
        "OTEL_LAUNCH_REDACT": "none",  # otel-launch's own: kept
        "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "healthz",  # an instrumentation's: kept
    }
    config = Config(environ=environ, config_file="otel.yaml", endpoint="http://elsewhere:4317")
    env = config.child_env()
    assert env["OTEL_CONFIG_FILE"] == str(tmp_path / "otel.yaml")
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert name not in env
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "a=b"
    assert env["OTEL_LAUNCH_REDACT"] == "none" and env["OTEL_PYTHON_DJANGO_EXCLUDED_URLS"] == "healthz"
    assert env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] == "redis"  # the file's section, not the variable
    assert env["OTEL_PROPAGATORS"] == "tracecontext,b3"
    assert env["OTEL_SERVICE_NAME"] == "from-file"
    assert env["OTEL_LOGS_EXPORTER"] == "none"  # no logger_provider in the file
    (warning,) = [w for w in config.warnings if "configures the SDK" in w]
    for name in ("--endpoint", "OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY"):
        assert name in warning
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in warning
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in warning and "OTEL_LAUNCH_REDACT" not in warning


@needs_package
def test_print_config_shows_the_file_with_secrets_masked(tmp_path, monkeypatch, capsys):
    (tmp_path / "otel.yaml").write_text(GOOD.replace("http://collector", "http://svc:pa55@collector"))
    monkeypatch.setenv("API_KEY", "k-very-secret")
    monkeypatch.setenv("OTEL_CONFIG_FILE", "otel.yaml")
    with pytest.raises(SystemExit) as exited:
        main(["--print-config"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "k-very-secret" not in out and "pa55" not in out
    assert "tracer_provider.processors[0].batch.exporter.otlp_http.headers" in out and "api-key=***" in out
    assert "http://svc:***@collector:4318/v1/traces" in out
    assert "tracer_provider.sampler.trace_id_ratio_based.ratio" in out and "0.25" in out
    (sampler_row,) = [line for line in out.splitlines() if " OTEL_TRACES_SAMPLER " in line]
    assert sampler_row.endswith("ignored: the configuration file replaces it")


@needs_package
def test_the_cli_refuses_a_broken_file_with_exit_2(tmp_path, capsys):
    (tmp_path / "otel.yaml").write_text('file_format: "1.0"\ntracer_provider: 5\n')
    with pytest.raises(SystemExit) as exited:
        main(["--config-file", "otel.yaml", "true"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err == (
        "otel-launch: error: --config-file: otel.yaml: tracer_provider: 'a mapping' is not accepted; expected object\n"
    ) or err.startswith("otel-launch: error: --config-file: otel.yaml: tracer_provider: '5' is not accepted")


@needs_package
def test_the_provider_built_from_the_file_keeps_our_process_handling(tmp_path, monkeypatch):
    """On the installed package: the internals from_file relies on are still there."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_launch._runtime._scrub import ScrubbingSpanProcessor
    from otel_launch._runtime.sdk import from_file, parts

    (tmp_path / "otel.yaml").write_text(
        GOOD + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n            console: {}\n"
    )
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(tmp_path / "otel.yaml"))
    monkeypatch.setattr(from_file, "_state", {})
    from opentelemetry.configuration import _meter_provider

    # The wrapping of the package's metric exporter factory stays in this test.
    monkeypatch.setattr(_meter_provider, "_create_push_metric_exporter", _meter_provider._create_push_metric_exporter)
    provider = from_file.tracer_provider()
    try:
        assert provider.resource.attributes["service.name"] == "from-file"
        assert "TraceIdRatioBased" in provider.sampler.get_description()
        processors = provider._active_span_processor._span_processors
        assert isinstance(processors[0], ScrubbingSpanProcessor)
        assert isinstance(processors[1], BatchSpanProcessor)
        exporter = processors[1]._batch_processor._exporter
        assert isinstance(exporter, parts.PerProcessExporter) and exporter._real is None  # built on first export
        assert hasattr(processors[1], "_drops")  # a full queue's drops are reported
        assert type(provider._meter_provider).__name__ == "NoOpMeterProvider"  # the SDK's own metrics stay off
        assert provider._atexit_handler is None
        assert hasattr(provider, "get_sdk_tracer")  # ours: its tracers follow an app's provider
    finally:
        provider.shutdown()
    meter = from_file.meter_provider()
    try:
        reader = meter._metric_readers[0]
        assert isinstance(reader._exporter, parts.PerProcessExporter) and reader._exporter._real is None
        assert meter._atexit_handler is None
    finally:
        meter.shutdown()


@needs_package
def test_the_target_reads_the_file_without_a_second_schema_check(tmp_path, monkeypatch):
    """The fast path rests on two functions of the package's loader (0.66b2 has them, 0.65b0 not:
    it then reads the file through load_config_file, slower)."""
    from opentelemetry.configuration.file import _loader

    from otel_launch._runtime.sdk import from_file

    (tmp_path / "otel.yaml").write_text(GOOD)
    monkeypatch.setenv("API_KEY", "k")
    if hasattr(_loader, "_parse_config_content") and hasattr(_loader, "_dict_to_model"):
        monkeypatch.setattr(_loader, "load_config_file", lambda path: pytest.fail("the full path was taken"))
    model = from_file._read(str(tmp_path / "otel.yaml"))
    assert model.tracer_provider.sampler.trace_id_ratio_based.ratio == 0.25
    assert model.tracer_provider.processors[0].batch.exporter.otlp_http.headers[0].value == "k"


@needs_package
@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "tracer_provider:\n  sampler:\n    no_such_sampler: {}\n  processors:\n    - simple:\n"
            "        exporter:\n          console: {}\n",
            "tracer_provider.sampler: cannot be built: Plugin 'no_such_sampler' not found",
        ),
        (
            "tracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n"
            "            compression: zstd\n",
            "tracer_provider.processors[0].batch.exporter: cannot be built: Unsupported compression value 'zstd'",
        ),
    ],
)
def test_what_only_building_can_judge_is_refused_too(tmp_path, section, message):
    assert message in refusal(tmp_path, 'file_format: "1.0"\n' + section)


@needs_package
def test_a_password_in_a_grpc_endpoint_is_refused_and_masked(tmp_path):
    text = GOOD.replace(
        "otlp_http:\n            endpoint: http://collector:4318/v1/traces",
        "otlp_grpc:\n            endpoint: http://svc:pa55@collector:4317",
    )
    message = refusal(tmp_path, text)
    assert "tracer_provider.processors[0].batch.exporter.otlp_grpc.endpoint: 'http://svc:***@collector:4317'" in message
    assert "pa55" not in message


@needs_package
def test_variables_the_file_replaces_are_not_judged_against_each_other(tmp_path):
    (tmp_path / "otel.yaml").write_text(GOOD)
    config = Config(environ={"OTEL_TRACES_SAMPLER_ARG": "0.5"}, config_file="otel.yaml")
    assert not [w for w in config.warnings if "has no effect" in w]
    assert [w for w in config.warnings if "OTEL_TRACES_SAMPLER_ARG" in w and "configures the SDK" in w]


LOGS = """
file_format: "1.0"
logger_provider:
  processors:
    - simple:
        exporter:
          console: {}
"""


@needs_package
def test_log_records_from_the_file_are_scrubbed_before_its_processors(tmp_path, monkeypatch):
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    from otel_launch._runtime.sdk import from_file, parts

    (tmp_path / "otel.yaml").write_text(LOGS)
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(tmp_path / "otel.yaml"))
    monkeypatch.setattr(from_file, "_state", {})
    provider = from_file.logger_provider()
    try:
        processors = provider._multi_log_record_processor._log_record_processors
        exporter = processors[-1]._exporter
        assert isinstance(exporter, parts.PerProcessExporter)
        memory = InMemoryLogRecordExporter()
        exporter._make = lambda: memory
        import logging

        from opentelemetry.sdk._logs import LoggingHandler

        logger = logging.getLogger("cfg-scrub-test")
        handler = LoggingHandler(logger_provider=provider)
        logger.addHandler(handler)
        try:
            logger.warning("failed password=PwSecret33 url=https://u:PwSecret44@h/")
        finally:
            logger.removeHandler(handler)
        (record,) = memory.get_finished_logs()
        body = str(record.log_record.body)
        assert "PwSecret33" not in body and "PwSecret44" not in body, body
    finally:
        provider.shutdown()


@needs_package
def test_a_file_plugin_exporter_is_built_in_each_process_not_at_start_up(tmp_path, monkeypatch):
    from opentelemetry.configuration import _tracer_provider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from otel_launch._runtime.sdk import from_file

    built = []

    def plugin(**options):
        built.append(options)
        return ConsoleSpanExporter()

    monkeypatch.setattr(_tracer_provider, "load_entry_point", lambda group, name: plugin)
    text = 'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
    (tmp_path / "otel.yaml").write_text(text + "          my_plugin:\n            option: 1\n")
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(tmp_path / "otel.yaml"))
    monkeypatch.setattr(from_file, "_state", {})
    provider = from_file.tracer_provider()
    try:
        assert built == []  # a process forked now builds its own
        exporter = provider._active_span_processor._span_processors[-1]._batch_processor._exporter
        exporter._exporter()
        assert built == [{"option": 1}]
    finally:
        provider.shutdown()


@needs_package
def test_a_headers_list_item_without_equals_is_refused_with_its_value_masked(tmp_path):
    text = GOOD.replace(
        "headers:\n              - name: api-key\n                value: ${API_KEY}",
        'headers_list: "Authorization: Bearer HdrSecret55,x-api-key=KeySecret66"',
    )
    message = refusal(tmp_path, text)
    assert "tracer_provider.processors[0].batch.exporter.otlp_http.headers_list: item 1 (***)" in message
    assert "HdrSecret55" not in message and "KeySecret66" not in message


@needs_package
def test_the_package_warnings_never_show_a_header_value(tmp_path, monkeypatch, caplog):
    import logging

    from otel_launch._runtime.sdk import from_file

    text = 'file_format: "1.0"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n'
    text += '          otlp_http:\n            headers_list: "a=KeySecret66,Authorization: Bearer HdrSecret55"\n'
    (tmp_path / "otel.yaml").write_text(text)
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(tmp_path / "otel.yaml"))
    monkeypatch.setattr(from_file, "_state", {})
    from opentelemetry.configuration import _common

    monkeypatch.setattr(_common._logger, "filters", [])
    from_file.configuration()
    with caplog.at_level(logging.WARNING):
        _common._parse_headers(None, "Authorization: Bearer HdrSecret55")  # the package's own warning
        _common._logger.warning("got %s", "a=KeySecret66")
    assert "HdrSecret55" not in caplog.text and "KeySecret66" not in caplog.text, caplog.text
    assert "missing '='" in caplog.text and "got a=***" in caplog.text


@needs_package
def test_ignored_variables_do_not_refuse_the_launch(tmp_path, monkeypatch, capsys, caplog):
    (tmp_path / "otel.yaml").write_text(GOOD)
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer HdrSecret77", "OTEL_BSP_MAX_QUEUE_SIZE": "many"}
    with pytest.raises(ConfigError):  # without a file they are the SDK's settings: refused
        Config(environ=environ)
    for name, value in environ.items():  # the trial build's exporters read os.environ
        monkeypatch.setenv(name, value)
    config = Config(environ=environ, config_file="otel.yaml")
    assert "HdrSecret77" not in capsys.readouterr().err + caplog.text  # not parsed by an exporter either
    assert os.environ["OTEL_EXPORTER_OTLP_HEADERS"] == environ["OTEL_EXPORTER_OTLP_HEADERS"]  # put back
    (warning,) = [w for w in config.warnings if "configures the SDK" in w]
    assert "OTEL_EXPORTER_OTLP_HEADERS" in warning and "OTEL_BSP_MAX_QUEUE_SIZE" in warning
    assert "HdrSecret77" not in " ".join(config.warnings)
    env = config.child_env(environ)
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env and "OTEL_BSP_MAX_QUEUE_SIZE" not in env


@needs_package
def test_the_launcher_parses_the_file_once(tmp_path, monkeypatch):
    from opentelemetry.configuration.file import _loader

    from otel_launch._launcher import config_file as _config_file

    if not hasattr(_loader, "_parse_config_content"):
        pytest.skip("this package reads the file only through load_config_file")
    parsed = []
    parse = _loader._parse_config_content
    monkeypatch.setattr(_loader, "_parse_config_content", lambda *args: parsed.append(1) or parse(*args))
    monkeypatch.setattr(_config_file, "_yaml_load", lambda text: pytest.fail("parsed a second time"))
    (tmp_path / "otel.yaml").write_text(GOOD)
    config = Config(environ={}, config_file="otel.yaml")
    assert parsed == [1]
    assert dict(config.config_file.rows())["resource.attributes[0].value"] == "from-file"


def test_the_flush_warning_names_the_configuration_file(monkeypatch, capsys):
    import threading

    from otel_launch._runtime import _lifecycle

    class Stuck:
        pid = os.getpid()
        requested, done = threading.Event(), threading.Event()  # never done
        flushing = "metrics"  # the flush it gave up in

    monkeypatch.setattr(_lifecycle, "_flusher", Stuck())
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://removed:4317")  # the launcher removes it; if not
    monkeypatch.setenv("OTEL_CONFIG_FILE", "/etc/otel.yaml")
    assert _lifecycle.shutdown(0.01) is False
    err = capsys.readouterr().err
    assert "is the collector at the endpoint configured in /etc/otel.yaml reachable?" in err, err
    assert "(in the flush of metrics)" in err, err
