"""Parsers, masking and flag spellings of the settings table (pure functions)."""

from __future__ import annotations

import pytest

from otel_launch._core.masking import mask_text, mask_url
from otel_launch._core.parsers import SettingValueError, mask_pairs
from otel_launch._core.settings import BY_NAME, SETTINGS


def parse(name: str, raw: str):
    return BY_NAME[name].parse(raw)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("sample_rate", "0", 0.0),
        ("sample_rate", " 1 ", 1.0),
        ("sample_rate", "0.25", 0.25),
        ("traces_exporter", "otlp", ("otlp",)),
        ("traces_exporter", "OTLP, console", ("otlp", "console")),
        ("traces_exporter", "none", ()),
        ("protocol", "http/protobuf", "http/protobuf"),
        ("sampler", "ParentBased_TraceIdRatio", "parentbased_traceidratio"),
        ("propagators", "tracecontext,baggage,b3,b3multi", ("tracecontext", "baggage", "b3", "b3multi")),
        ("endpoint", "https://collector.example:4317/", "https://collector.example:4317/"),
        ("headers", "Authorization=Bearer%20abc,x-team=web", {"authorization": "Bearer abc", "x-team": "web"}),
        ("resource_attributes", "team=web,note=a%2Cb", {"team": "web", "note": "a,b"}),
        ("shutdown_timeout", "0.5", 0.5),
        ("disabled_instrumentations", "Redis, sqlite3", ("redis", "sqlite3")),
    ],
)
def test_valid_values_parse(name, raw, expected):
    assert parse(name, raw) == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("sample_rate", "1.5"),
        ("sample_rate", "-0.1"),
        ("sample_rate", "half"),
        ("sample_rate", "nan"),
        ("sampler", "sometimes"),
        ("traces_exporter", "zipkin"),
        ("traces_exporter", "otlp,none"),
        ("metrics_exporter", "prometheus"),
        ("protocol", "http/json"),
        ("propagators", "xray"),
        ("endpoint", "localhost:4317"),
        ("endpoint", "ftp://collector:21"),
        ("endpoint", "http://"),
        ("endpoint", "http://host:99999"),
        ("headers", "no-equals-sign"),
        ("headers", "bad name=x"),
        ("resource_attributes", "=value"),
        ("resource_attributes", "team"),
        ("shutdown_timeout", "0"),
        ("shutdown_timeout", "601"),
        ("service_name", "   "),
    ],
)
def test_invalid_values_are_refused(name, raw):
    with pytest.raises(SettingValueError):
        parse(name, raw)


def test_every_default_parses():
    for setting in SETTINGS:
        if setting.default is not None:
            setting.parse(setting.default)


def test_jaeger_propagator_is_refused_when_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if "jaeger" in name else real(name))
    with pytest.raises(SettingValueError, match=r"pip install 'otel-launch\[jaeger\]'"):
        parse("propagators", "tracecontext,jaeger")


def test_upstream_flag_spellings_are_aliases():
    assert BY_NAME["service_name"].flags == ("--service-name", "--service_name")
    assert "--traces_exporter" in BY_NAME["traces_exporter"].flags
    assert "--exporter_otlp_endpoint" in BY_NAME["endpoint"].flags
    assert "--traces_sampler_arg" in BY_NAME["sample_rate"].flags
    assert "--disabled_instrumentations" in BY_NAME["disabled_instrumentations"].flags
    assert BY_NAME["shutdown_timeout"].upstream_flag is None  # ours: no upstream spelling


def test_every_flag_and_variable_is_declared_once():
    flags = [flag for setting in SETTINGS for flag in setting.flags]
    assert len(flags) == len(set(flags))
    assert len({setting.env for setting in SETTINGS}) == len(SETTINGS)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:pw@host:4317/v1", "https://user:***@host:4317/v1"),
        ("https://token@host", "https://***@host"),
        ("http://host:4318/v1/traces?api_key=abc&x", "http://host:4318/v1/traces?api_key=***&x"),
        ("http://localhost:4317", "http://localhost:4317"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_mask_pairs_keeps_names_hides_values_and_bare_tokens():
    assert mask_pairs("authorization=Bearer%20x,oops-token") == "authorization=***,***"


def test_mask_text_masks_urls_in_free_text():
    text = "Failed to export to https://u:secret@collector:4318/v1/traces, retrying"
    assert mask_text(text) == "Failed to export to https://u:***@collector:4318/v1/traces, retrying"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("endpoint", "http://exa mple:4317"),
        ("headers", "a=b%0D%0Ac"),
        ("headers", "a=caf%C3%A9"),
        ("headers", "a=%ZZ"),
        ("headers", "a=%FF"),
        ("headers", "api-key%0A=x"),  # a name that decodes to a token and a newline
        ("resource_attributes", "team=%ZZ"),
        ("resource_attributes", "team=%2"),
        ("resource_attributes", "team=%FF"),
        ("shutdown_timeout", "1e-320"),
        ("shutdown_timeout", "inf"),
        ("redact", "(unclosed"),
    ],
)
def test_values_the_transport_or_sdk_would_reject_are_refused(name, raw):
    with pytest.raises(SettingValueError):
        parse(name, raw)


def test_redact_setting():
    from otel_launch._core.masking import REDACT_PATTERN

    assert parse("redact", "default") == REDACT_PATTERN
    assert parse("redact", "None") == ""
    assert parse("redact", "^q$") == "^q$"


@pytest.mark.parametrize(
    ("env", "good", "bad"),
    [
        ("OTEL_BSP_SCHEDULE_DELAY", "5000", "1.5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096", "0"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "0", "-1"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000.5", "nan"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2.5", "0"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP", "zstd"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc", "http/json"),
        ("OTEL_SDK_DISABLED", "TRUE", "1"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "unset", "-3"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "k=v%0A", "k=v%0Aw"),  # stripped, as the SDK does
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", __file__, "/no/such/file.pem"),
    ],
)
def test_passthrough_checks(env, good, bad):
    from otel_launch._core.settings import CHECKED_BY_ENV

    check = CHECKED_BY_ENV[env]
    check.parse(good)
    with pytest.raises(SettingValueError):
        check.parse(bad)


def test_mask_text_hides_schemeless_passwords_and_leaves_emails():
    text = "failed to connect to user:Secret1@collector:4317; mail ops@example.com; error: x@y"
    assert mask_text(text) == "failed to connect to user:***@collector:4317; mail ops@example.com; error: x@y"
