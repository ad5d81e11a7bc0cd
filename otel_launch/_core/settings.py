"""Every otel-launch setting, declared once.

The click options, the environment parsing, the ``--print-config`` rows and the
settings reference are all generated from :data:`SETTINGS`; the standard ``OTEL_*`` variables the
launcher passes through but checks first are declared after it (:data:`CHECKED_VARIABLES`). This module
imports only the standard library because the bootstrap inside the target process reads it too,
at interpreter start.
"""

from __future__ import annotations

from otel_launch._core import parsers
from otel_launch._core.masking import mask_url
from otel_launch._core.parsers import SettingValueError, mask_pairs
from otel_launch._core.records import record

TYPE_CHECKING = False  # typing is not imported when the launcher starts: it costs ~5 ms of every launch
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# --- the declaration -----------------------------------------------------------------------------


_SettingRecord: Any = record(
    "Setting",
    ["name", "env", "help", "parse", "accepted", "default", "render", "mask", "extra_flags"],
    (None, str, None, ()),
)


class Setting(_SettingRecord):
    """One setting: its name, flag, variable, default, parser and help, in one place.

    ``name``, ``env`` (the variable), ``help``, ``parse`` (text -> value, raising
    SettingValueError), ``accepted`` (what parse accepts, for errors), ``default`` (text or
    None), ``render`` (value -> text), ``mask`` (text -> text shown, for secrets, or None) and
    ``extra_flags``. A named tuple (:func:`~otel_launch._core.records.record`) rather than a
    dataclass or a ``typing.NamedTuple``: the launcher runs before every process start, and
    importing dataclasses (it pulls in inspect and ast) costs ~13 ms of it, typing ~5 ms.
    """

    __slots__ = ()
    name: str
    env: str
    help: str
    parse: Callable[[str], Any]
    accepted: str
    default: str | None
    render: Callable[[Any], str]
    mask: Callable[[str], str] | None
    extra_flags: tuple[str, ...]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def secret(self) -> bool:
        return self.mask is not None

    @property
    def upstream_flag(self) -> str | None:
        """How ``opentelemetry-instrument`` spells this flag: the variable less ``OTEL_[PYTHON_]``."""
        if not self.env.startswith("OTEL_") or self.env.startswith("OTEL_LAUNCH_"):
            return None
        return "--" + self.env.removeprefix("OTEL_").removeprefix("PYTHON_").lower()

    @property
    def flags(self) -> tuple[str, ...]:
        names = [self.flag, *self.extra_flags]
        if self.upstream_flag:
            names.append(self.upstream_flag)
        return tuple(dict.fromkeys(names))

    def shown(self, raw: str) -> str:
        """The text of a value as it may appear in output: secrets masked."""
        return self.mask(raw) if self.mask else raw


_EXPORTERS = ("otlp", "console")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "service_name",
        "OTEL_SERVICE_NAME",
        "Logical name of the service (resource attribute service.name).",
        parsers.text,
        "a non-empty text",
    ),
    Setting(
        "service_version",
        "OTEL_LAUNCH_SERVICE_VERSION",
        "Version of the service (resource attribute service.version).",
        parsers.text,
        "a non-empty text",
    ),
    Setting(
        "deployment_environment",
        "OTEL_LAUNCH_DEPLOYMENT_ENVIRONMENT",
        "Deployment environment, e.g. production (deployment.environment.name, and the older "
        "deployment.environment that many backends still read).",
        parsers.text,
        "a non-empty text",
    ),
    Setting(
        "resource_attributes",
        "OTEL_RESOURCE_ATTRIBUTES",
        "Extra resource attributes, k=v,k2=v2 (values percent-encoded).",
        parsers.key_values,
        "comma-separated key=value pairs",
        render=parsers.render_pairs,
    ),
    Setting(
        "traces_exporter",
        "OTEL_TRACES_EXPORTER",
        "Where spans go.",
        parsers.choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="otlp",
        render=parsers.render_list,
    ),
    Setting(
        "metrics_exporter",
        "OTEL_METRICS_EXPORTER",
        "Where metrics go.",
        parsers.choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="otlp",
        render=parsers.render_list,
    ),
    Setting(
        "logs_exporter",
        "OTEL_LOGS_EXPORTER",
        "Where log records go. Off unless asked for, as with opentelemetry-instrument.",
        parsers.choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="none",
        render=parsers.render_list,
    ),
    Setting(
        "endpoint",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP collector URL. Default http://localhost:4317 for grpc, http://localhost:4318 for http/protobuf.",
        parsers.endpoint,
        "an http:// or https:// URL",
        mask=mask_url,
    ),
    Setting(
        "protocol",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTLP transport.",
        parsers.choices("grpc", "http/protobuf"),
        "grpc or http/protobuf",
        default="grpc",
    ),
    Setting(
        "headers",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Headers sent with every export, name=value,... (URL-encoded). Secret: always masked.",
        parsers.headers,
        "comma-separated name=value pairs",
        render=parsers.render_pairs,
        mask=mask_pairs,
    ),
    Setting(
        "sampler",
        "OTEL_TRACES_SAMPLER",
        "Trace sampler.",
        parsers.choices(
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
            "always_on",
            "always_off",
            "traceidratio",
        ),
        "parentbased_always_on, parentbased_always_off, parentbased_traceidratio, always_on, "
        "always_off or traceidratio",
        default="parentbased_always_on",
    ),
    Setting(
        "sample_rate",
        "OTEL_TRACES_SAMPLER_ARG",
        "Fraction of traces kept by the ratio samplers, 0 to 1. Given as a flag with no sampler set "
        "anywhere, it selects parentbased_traceidratio.",
        parsers.number(0.0, 1.0),
        "a number from 0 to 1",
        render=parsers.render_number,
    ),
    Setting(
        "propagators",
        "OTEL_PROPAGATORS",
        "Context propagation formats.",
        parsers.propagators,
        "tracecontext, baggage, b3, b3multi, jaeger (when installed), or none",
        default="tracecontext,baggage",
        render=parsers.render_list,
    ),
    Setting(
        "disabled_instrumentations",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "Instrumentations to leave off, e.g. redis,sqlite3.",
        parsers.names,
        "a comma-separated list of instrumentation names",
        render=",".join,
        extra_flags=("--disable",),
    ),
    Setting(
        "resource_detectors",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
        "SDK resource detectors to run; service.instance.id is always set, per process.",
        parsers.names,
        "a comma-separated list of detector names",
        default="host,os,process",
        render=",".join,
    ),
    Setting(
        "shutdown_timeout",
        "OTEL_LAUNCH_SHUTDOWN_TIMEOUT",
        "Seconds a process may spend flushing telemetry when it exits; a dead collector never holds an exit longer.",
        parsers.number(0.001, 600.0),
        "a number of seconds from 0.001 to 600",
        default="5",
        render=parsers.render_number,
    ),
    Setting(
        "redact",
        "OTEL_LAUNCH_REDACT",
        "Query parameters (in http.target, http.url, url.full, url.query) and captured HTTP headers "
        "whose names match have their values replaced by *** in every span (and in exception events, status "
        "descriptions and exported log records): default (passwords, tokens, "
        "keys, signatures, sessions, credentials, see Private data), none to keep every value, or your own "
        "regular expression, searched case-insensitively in each name.",
        parsers.redact,
        "default, none, or a regular expression",
        default=parsers.REDACT_DEFAULT,
    ),
    Setting(
        "n_plus_one_threshold",
        "OTEL_LAUNCH_N_PLUS_ONE_THRESHOLD",
        "N+1 detection: a statement run this many times in one request or task marks its span; 0 turns it off.",
        parsers.integer(0, 1_000_000),
        "a whole number from 0 to 1000000",
        default="5",
    ),
    Setting(
        "http_active_requests",
        "OTEL_LAUNCH_HTTP_ACTIVE_REQUESTS",
        "Also record http.server.active_requests (two measurements a request; development status in the conventions).",
        parsers.boolean,
        "true or false",
        default="false",
        render=lambda value: "true" if value else "false",
    ),
    Setting(
        "enduser_id",
        "OTEL_LAUNCH_ENDUSER_ID",
        "Record enduser.id, the authenticated user's primary key, on Django server spans: personal data, off "
        "unless asked for (see Private data). Taken from the user the request already loaded, and on a 5xx also "
        "from the key its session holds when it had not (read only: the user is not loaded).",
        parsers.boolean,
        "true or false",
        default="false",
        render=lambda value: "true" if value else "false",
    ),
    Setting(
        "config_file",
        "OTEL_CONFIG_FILE",
        "An OpenTelemetry configuration file (YAML or JSON, file_format 1.x) that builds the SDK instead of the "
        "OTEL_* variables; needs otel-launch[config]. See Configuration file.",
        parsers.text,
        "the path of a configuration file",
    ),
    Setting(
        "celery_flower_metric",
        "OTEL_LAUNCH_CELERY_FLOWER_METRIC",
        "Also record the contrib's flower.task.runtime.seconds (a duplicate of messaging.process.duration).",
        parsers.boolean,
        "true or false",
        default="false",
        render=lambda value: "true" if value else "false",
    ),
    Setting(
        "runtime_metrics",
        "OTEL_LAUNCH_RUNTIME_METRICS",
        "Report each process's CPU time, memory, thread count and garbage collections "
        "(process.* and cpython.gc.* metrics, read when metrics are collected).",
        parsers.boolean,
        "true or false",
        default="true",
        render=lambda value: "true" if value else "false",
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
BY_ENV: dict[str, Setting] = {setting.env: setting for setting in SETTINGS}


def read_setting(name: str, environ: dict[str, str] | Any) -> Any:
    """The parsed value of one setting from an environment, or its default.

    Used inside the target, where the launcher already validated the values: a value
    that does not parse (set by hand in a child's environment) falls back to the default.
    """
    setting = BY_NAME[name]
    raw = environ.get(setting.env)
    if raw is not None:
        try:
            return setting.parse(raw)
        except SettingValueError:
            pass
    return setting.parse(setting.default) if setting.default is not None else None


# --- OTEL_* variables the SDK reads, passed through unchanged but checked first ------------------


_CheckedVariableRecord: Any = record("CheckedVariable", ["env", "parse", "accepted", "mask"], (None,))


class CheckedVariable(_CheckedVariableRecord):
    """A standard variable the launcher does not set but validates: the SDK would otherwise
    switch a signal off, or fail every export, in each process, with a traceback."""

    __slots__ = ()
    env: str
    parse: Callable[[str], Any]
    accepted: str
    mask: Callable[[str], str] | None

    def shown(self, raw: str) -> str:
        return self.mask(raw) if self.mask else raw


# The signals as the per-signal variables spell them (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
_SIGNAL_VARIABLE_WORDS = ("TRACES", "METRICS", "LOGS")


def _checked_variables() -> tuple[CheckedVariable, ...]:
    ms = "a whole number of milliseconds from {} to 2147483647"
    table = [CheckedVariable("OTEL_SDK_DISABLED", parsers.boolean, "true or false")]
    for processor in ("BSP", "BLRP"):  # batch span / log record processors
        table += [
            CheckedVariable(f"OTEL_{processor}_SCHEDULE_DELAY", parsers.integer(1), ms.format(1)),
            CheckedVariable(f"OTEL_{processor}_EXPORT_TIMEOUT", parsers.integer(0), ms.format(0)),
            CheckedVariable(
                f"OTEL_{processor}_MAX_QUEUE_SIZE", parsers.integer(1), "a whole number from 1 to 2147483647"
            ),
            CheckedVariable(
                f"OTEL_{processor}_MAX_EXPORT_BATCH_SIZE",
                parsers.integer(1),
                f"a whole number from 1 to OTEL_{processor}_MAX_QUEUE_SIZE (default 2048)",
            ),
        ]
    for name in ("INTERVAL", "TIMEOUT"):
        table.append(
            CheckedVariable(
                f"OTEL_METRIC_EXPORT_{name}",
                parsers.number(0.0, parsers.INT_MAX, low_open=True),
                "a number of milliseconds > 0",
            )
        )
    for signal in ("", *(f"{s}_" for s in _SIGNAL_VARIABLE_WORDS)):
        prefix = f"OTEL_EXPORTER_OTLP_{signal}"
        table += [
            # The Python exporters read their timeout in seconds.
            CheckedVariable(
                f"{prefix}TIMEOUT",
                parsers.number(0.0, 86400.0, low_open=True),
                "a number of seconds > 0, at most 86400",
            ),
            CheckedVariable(
                f"{prefix}COMPRESSION", parsers.choices("gzip", "deflate", "none"), "gzip, deflate or none"
            ),
            CheckedVariable(f"{prefix}INSECURE", parsers.boolean, "true or false"),
            CheckedVariable(f"{prefix}CERTIFICATE", parsers.existing_file, "the path of a file that exists"),
            CheckedVariable(f"{prefix}CLIENT_KEY", parsers.existing_file, "the path of a file that exists"),
            CheckedVariable(f"{prefix}CLIENT_CERTIFICATE", parsers.existing_file, "the path of a file that exists"),
        ]
        if signal:  # the general ones are settings of their own
            table += [
                CheckedVariable(f"{prefix}ENDPOINT", parsers.endpoint, "an http:// or https:// URL", mask_url),
                CheckedVariable(f"{prefix}HEADERS", parsers.headers, "comma-separated name=value pairs", mask_pairs),
                CheckedVariable(f"{prefix}PROTOCOL", parsers.choices("grpc", "http/protobuf"), "grpc or http/protobuf"),
            ]
    limits = ["ATTRIBUTE_VALUE_LENGTH", "ATTRIBUTE_COUNT", "SPAN_ATTRIBUTE_VALUE_LENGTH", "SPAN_ATTRIBUTE_COUNT"]
    limits += ["SPAN_EVENT_COUNT", "SPAN_LINK_COUNT", "EVENT_ATTRIBUTE_COUNT", "LINK_ATTRIBUTE_COUNT"]
    for limit in limits:
        table.append(
            CheckedVariable(f"OTEL_{limit}_LIMIT", parsers.integer(0, unset=True), "a whole number from 0, or unset")
        )
    return tuple(table)


CHECKED_VARIABLES: tuple[CheckedVariable, ...] = _checked_variables()
CHECKED_BY_ENV: dict[str, CheckedVariable] = {check.env: check for check in CHECKED_VARIABLES}
