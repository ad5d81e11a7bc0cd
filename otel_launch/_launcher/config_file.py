"""``OTEL_CONFIG_FILE``: the OpenTelemetry configuration file, judged in the launcher.

The file is read by the ``opentelemetry-configuration`` package (the SDK's own reader,
experimental, an optional extra of otel-launch): the same parsing, ``${VAR}`` substitution and
schema check happen here, before the command starts, as in every process of the target, so a
broken file is one line and exit 2 rather than telemetry silently off everywhere.

When a file is used the specification says the SDK's environment variables are ignored (except
in ``${VAR}`` references inside the file). The package still lets an exporter or a batch
processor read them for what the file leaves out, so the launcher takes them out of the
target's environment, with one warning line naming those that were set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from otel_launch._core.masking import MASK, REDACT_PATTERN, header_values, mask_text, mask_url
from otel_launch._core.parsers import SettingValueError, echo, has_userinfo, mask_pairs, propagators

PACKAGE = "opentelemetry-configuration"
EXTRA = "otel-launch[config]"
ENV = "OTEL_CONFIG_FILE"
INSTRUMENTATION = "instrumentation/development"

# Variables the SDK reads that a configuration file replaces (the specification's SDK
# variables, and ours that feed the same SDK parts). Instrumentation-specific variables
# (OTEL_PYTHON_DJANGO_*, OTEL_INSTRUMENTATION_*) and otel-launch's own behaviour
# (OTEL_LAUNCH_REDACT, ..._SHUTDOWN_TIMEOUT, ...) keep working.
_REPLACED_NAMES = frozenset(
    {
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_LOG_LEVEL",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXEMPLAR_FILTER",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "OTEL_PYTHON_ID_GENERATOR",
        "OTEL_LAUNCH_SERVICE_VERSION",
        "OTEL_LAUNCH_DEPLOYMENT_ENVIRONMENT",
    }
)
_REPLACED_PREFIXES = ("OTEL_EXPORTER_", "OTEL_BSP_", "OTEL_BLRP_", "OTEL_METRIC_EXPORT_")
_REPLACED_LIMIT = re.compile(r"^OTEL_(ATTRIBUTE|SPAN|EVENT|LINK|LOGRECORD)_\w*LIMIT$")

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SECRET_KEY = re.compile(REDACT_PATTERN, re.IGNORECASE)
_SUFFIXES = (".yaml", ".yml", ".json")


class ConfigFileError(Exception):
    """The file cannot be used; the message is one line naming the file and the key."""


def replaced_by_file(name: str) -> bool:
    """Whether a configuration file makes this variable meaningless."""
    return name in _REPLACED_NAMES or name.startswith(_REPLACED_PREFIXES) or bool(_REPLACED_LIMIT.match(name))


class ConfigFile(NamedTuple):
    """What the launcher learned from a valid file, and passes on to the target."""

    path: str  # absolute: the target may change its directory
    data: dict[str, Any]  # after ${VAR} substitution, for --print-config (masked there)
    referenced: frozenset[str]  # variables named in ${VAR} references: kept for the target
    child_env: dict[str, str]  # variables the launcher sets from the file
    warnings: list[str]

    def rows(self) -> Iterator[tuple[str, str]]:
        """(key path, value with secrets masked) for every value in the file."""
        yield from _flatten(self.data, "")


# --- reading ----------------------------------------------------------------------------------


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.messages.append(record.getMessage())


def load(path: str, where: str) -> ConfigFile:
    """Read and check ``path`` as the target will; raise ConfigFileError (one line) if it cannot be used.

    ``where`` names the setting as the user gave it (``--config-file``, ``OTEL_CONFIG_FILE``).
    """
    shown = echo(mask_text(path))
    try:
        from opentelemetry.configuration import ConfigurationError, load_config_file
    except ImportError:
        raise ConfigFileError(
            f"{where}={shown}: reading a configuration file needs the {PACKAGE} package, which is not installed "
            f"(it exists for OpenTelemetry SDK 1.44 / contrib 0.65b0 and newer); expected it installed: "
            f"pip install '{EXTRA}'"
        ) from None
    if not path.lower().endswith(_SUFFIXES):
        raise ConfigFileError(f"{where}={shown}: not accepted; expected a file named *.yaml, *.yml or *.json")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        accepted = "expected a readable YAML or JSON file"
        raise ConfigFileError(f"{where}={shown}: cannot be read ({reason}); {accepted}") from None
    # The package logs each failure with a traceback, and a newer minor file_format as a
    # warning: the first is said once, here, in one line; the second becomes ours.
    logger = logging.getLogger("opentelemetry.configuration")
    collected, propagate = _Collected(), logger.propagate
    logger.addHandler(collected)
    logger.propagate = False
    try:
        try:
            model, data = _parsed(path, text, load_config_file, ConfigurationError)
        except ConfigurationError as exc:
            raise ConfigFileError(f"{where}: {path}: {_describe(exc)}") from None
        problem = _headers_list_pairs(data) or _grpc_userinfo(data)
        if problem is None:
            with _as_in_the_target(frozenset(_REFERENCE.findall(text))):
                problem = _trial_build(model)
        if problem:
            raise ConfigFileError(f"{where}: {path}: {problem}")
    finally:
        logger.removeHandler(collected)
        logger.propagate = propagate
    secrets = header_values(file_data=data)
    warnings = [f"{path}: {mask_text(message, values=secrets)}" for message in collected.messages]
    try:
        child_env = _for_child(model, data, path, warnings)
    except ConfigFileError as exc:
        raise ConfigFileError(f"{where}: {exc}") from None
    referenced = frozenset(_REFERENCE.findall(text))
    return ConfigFile(os.path.abspath(path), data, referenced, child_env, warnings)


def _headers_list_pairs(data: dict[str, Any]) -> str | None:
    """An item without ``=`` is dropped by the exporter with a warning that prints it whole:
    often a header written ``Name: value``, whose value is a secret."""
    for key, value in _values(data, ""):
        if key.endswith("headers_list") and isinstance(value, str):
            for number, item in enumerate(value.split(","), 1):
                if item.strip() and "=" not in item:
                    return (
                        f"{key}: item {number} ({MASK}) is not accepted, it has no '='; "
                        "expected name=value pairs separated by commas, e.g. api-key=..."
                    )
    return None


def _grpc_userinfo(data: dict[str, Any]) -> str | None:
    """gRPC takes ``user:password@host`` for a host name: it never connects, and its errors print
    the password (the same refusal as for OTEL_EXPORTER_OTLP_ENDPOINT over grpc)."""
    for key, value in _values(data, ""):
        if key.endswith("otlp_grpc.endpoint") and isinstance(value, str) and has_userinfo(value):
            return (
                f"{key}: {echo(mask_url(value))} is not accepted with otlp_grpc, which cannot send a user or "
                "password in the URL; expected a URL without user@, with the credentials in headers"
            )
    return None


def _values(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(key path, value) of each leaf; an empty mapping or list, and a ``headers`` list, are leaves."""
    if isinstance(value, dict) and value:
        for name, item in value.items():
            yield from _values(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list) and value and not key.endswith(".headers"):
        for index, item in enumerate(value):
            yield from _values(item, f"{key}[{index}]")
    else:
        yield key, value


@contextlib.contextmanager
def _as_in_the_target(referenced: frozenset[str]) -> Iterator[None]:
    """The launcher's environment without the variables the target will not have: an exporter
    built here reads them as the target's would (an ignored OTEL_EXPORTER_OTLP_HEADERS would be
    parsed, and its value printed in the SDK's warning)."""
    removed = {
        name: os.environ.pop(name) for name in list(os.environ) if replaced_by_file(name) and name not in referenced
    }
    try:
        yield
    finally:
        os.environ.update(removed)


def _trial_build(model: Any) -> str | None:
    """Build each sampler and exporter the file names, as the target will, and keep none.

    The schema accepts names that only building can judge (a sampler or exporter plugin that is
    not installed, a compression the exporter does not know). Exporters connect on first use,
    so nothing is sent; the launcher's exec discards them. Pull readers (a Prometheus server)
    are not built here: they would listen.
    """
    from opentelemetry.configuration import _logger_provider, _meter_provider, _tracer_provider

    steps: list[tuple[str, Any]] = []
    traces, metrics, logs = model.tracer_provider, model.meter_provider, model.logger_provider
    if traces is not None and traces.sampler is not None:
        steps.append(("tracer_provider.sampler", lambda: _tracer_provider._create_sampler(traces.sampler)))
    processors = [
        ("tracer_provider", traces, _tracer_provider._create_span_exporter),
        ("logger_provider", logs, _logger_provider._create_log_record_exporter),
    ]
    for section, provider, create in processors:
        for index, processor in enumerate((provider.processors or []) if provider is not None else []):
            for kind in ("batch", "simple"):
                part = getattr(processor, kind, None)
                if part is not None:
                    key = f"{section}.processors[{index}].{kind}.exporter"
                    steps.append((key, lambda create=create, part=part: create(part.exporter)))
    # The package's own factory, not the per-process one a target process may have installed.
    create_push = getattr(_meter_provider._create_push_metric_exporter, "original", None)
    create_push = create_push or _meter_provider._create_push_metric_exporter
    for index, reader in enumerate((metrics.readers or []) if metrics is not None else []):
        if reader.periodic is not None:
            key = f"meter_provider.readers[{index}].periodic.exporter"
            steps.append((key, lambda r=reader: create_push(r.periodic.exporter)))
    for key, build in steps:
        try:
            build()
        except Exception as exc:
            return f"{key}: cannot be built: {_capped(mask_text(str(exc)))}"
    return None


def _capped(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _parsed(path: str, text: str, load_config_file: Any, error: type) -> tuple[Any, dict[str, Any]]:
    """(model, plain data after ``${VAR}`` substitution), the file parsed once, by the steps of the
    package's ``load_config_file`` (0.66b0 and newer); an older package: its ``load_config_file``,
    and the data by :func:`_substituted`."""
    from opentelemetry.configuration.file import _loader

    names = ("_parse_config_content", "_validate_schema", "_validate_file_format", "_dict_to_model")
    steps: list[Any] = [getattr(_loader, name, None) for name in names]
    if None in steps:
        return load_config_file(path), _substituted(text, path)
    parse, validate_schema, validate_file_format, to_model = steps
    data = parse(text, os.path.splitext(path)[1].lower(), path)
    if data is None:
        raise error("Configuration file is empty")
    if not isinstance(data, dict):
        raise error(f"Configuration must be a mapping/object, got {type(data).__name__}")
    validate_schema(data)
    validate_file_format(data)
    try:
        return to_model(data), data
    except Exception as exc:
        raise error(f"Failed to validate configuration: {exc}") from exc


def _substituted(text: str, path: str) -> dict[str, Any]:
    """The file as plain data, ``${VAR}`` substituted by the package's own function (display only;
    a package without ``_parse_config_content``)."""
    import json

    from opentelemetry.configuration.file import substitute_env_vars

    raw = json.loads(text) if path.lower().endswith(".json") else _yaml_load(text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return substitute_env_vars(value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        return value

    return walk(raw) if isinstance(raw, dict) else {}


def _yaml_load(text: str) -> Any:
    import yaml  # a dependency of the package

    return yaml.safe_load(text)


# --- what the target is told --------------------------------------------------------------------


def _for_child(model: Any, data: dict[str, Any], path: str, warnings: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    if model.disabled:
        env["OTEL_SDK_DISABLED"] = "true"
    # Log export starts with the logging module, only where the file has a logger provider.
    env["OTEL_LOGS_EXPORTER"] = "otlp" if model.logger_provider is not None else "none"
    service_name = _service_name(data)
    if service_name:
        env["OTEL_SERVICE_NAME"] = service_name  # log correlation shows it, as without a file
    propagators = _propagator_names(data, path)
    if propagators is not None:
        env["OTEL_PROPAGATORS"] = ",".join(propagators) or "none"
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(_disabled_instrumentations(data, path, warnings))
    ignored = [key for key in ("log_level", "distribution") if data.get(key) is not None]
    if ignored:
        warnings.append(f"{path}: {', '.join(ignored)} not applied by otel-launch, ignored")
    return env


def _service_name(data: dict[str, Any]) -> str | None:
    resource = data.get("resource") or {}
    for attribute in resource.get("attributes") or []:
        if isinstance(attribute, dict) and attribute.get("name") == "service.name" and attribute.get("value"):
            return str(attribute["value"])
    for item in str(resource.get("attributes_list") or "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return None


def _propagator_names(data: dict[str, Any], path: str) -> tuple[str, ...] | None:
    """The file's propagators, as OTEL_PROPAGATORS names (the API builds them lazily from those)."""
    section = data.get("propagator")
    if section is None:
        return None
    names: list[tuple[str, str]] = []
    for index, entry in enumerate(section.get("composite") or []):
        names += [(f"propagator.composite[{index}].{name}", name) for name in (entry or {})]
    for name in str(section.get("composite_list") or "").split(","):
        if name.strip():
            names.append(("propagator.composite_list", name.strip()))
    for key, name in names:
        try:
            propagators(name)
        except SettingValueError as exc:
            raise ConfigFileError(f"{path}: {key}: {echo(name)} is not accepted; expected {exc}") from None
    return tuple(dict.fromkeys(name.lower() for _, name in names if name.lower() != "none"))


def _disabled_instrumentations(data: dict[str, Any], path: str, warnings: list[str]) -> list[str]:
    """``instrumentation/development.python.<name>.enabled: false`` as OTEL_PYTHON_DISABLED_INSTRUMENTATIONS.

    Every instrumentation otel-launch knows is on unless disabled, as without a file; options
    other than ``enabled`` are not passed to instrumentations (a warning says so).
    """
    section = data.get(INSTRUMENTATION) or {}
    if section.get("general"):
        warnings.append(f"{path}: {INSTRUMENTATION}.general not applied by otel-launch, ignored")
    python = section.get("python") or {}
    disabled, unknown = [], []
    from otel_launch._core.catalogue import entry_point_names, names

    known = set(names())
    for name, options in python.items():
        options = options or {}
        enabled = options.get("enabled", True)
        if not isinstance(enabled, bool):
            key = f"{INSTRUMENTATION}.python.{name}.enabled"
            raise ConfigFileError(f"{path}: {key}: {echo(str(enabled))} is not accepted; expected true or false")
        if not enabled:
            disabled.append(name)
        others = sorted(key for key in options if key != "enabled")
        if others:
            warnings.append(
                f"{path}: {INSTRUMENTATION}.python.{name}: {', '.join(others)} not applied by otel-launch "
                "(only enabled is), ignored"
            )
        if name not in known and name not in entry_point_names():
            unknown.append(name)
    if unknown:
        warnings.append(
            f"{path}: {INSTRUMENTATION}.python: {', '.join(unknown)} not known to otel-launch "
            f"(known: {', '.join(sorted(known))})"
        )
    return disabled


# --- one line for each failure -----------------------------------------------------------------


def key_path(parts: Any) -> str:
    """``tracer_provider.processors[0].batch`` from a jsonschema path (keys and indexes)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(key: str, value: Any) -> str:
    """A value as an error or --print-config may show it: secrets masked, anything else capped."""
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, dict):
        return "a mapping with keys " + ", ".join(map(str, value)) if value else "an empty mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if last == "headers_list":
        return mask_pairs(text)
    if "headers" in key or _SECRET_KEY.search(last):
        return MASK
    return mask_text(text)


def _describe(exc: Exception) -> str:
    cause = exc.__cause__
    mark = getattr(cause, "problem_mark", None)
    if mark is not None:  # yaml's MarkedYAMLError
        problem = getattr(cause, "problem", None) or "cannot be parsed"
        return f"line {mark.line + 1} column {mark.column + 1}: {problem}; expected valid YAML"
    import json  # free: a JSONDecodeError exists only once json is imported

    if isinstance(cause, json.JSONDecodeError):
        return f"line {cause.lineno} column {cause.colno}: {cause.msg}; expected valid JSON"
    if type(cause).__name__ == "ValidationError" and hasattr(cause, "validator"):
        return _describe_schema_error(cause)
    message = str(exc)
    if "file_format" in message:
        found = re.search(r"file_format '([^']*)'", message)
        value = echo(found.group(1)) if found else "the value"
        return f"file_format: {value} is not accepted; expected a version 1.x, e.g. '1.0'"
    if "empty" in message:
        return "the file is empty; expected a mapping with at least file_format"
    if "mapping/object" in message:
        return "the file is not a mapping; expected a mapping with at least file_format"
    return _capped(mask_text(message))


def _describe_schema_error(error: Any) -> str:
    key = key_path(error.absolute_path) or "the top level"
    validator, expected = error.validator, error.validator_value
    scalar = not isinstance(error.instance, (dict, list))
    shown = echo(_shown(key, error.instance)) if scalar else _shown(key, error.instance)
    if validator == "required":
        missing = [name for name in expected if name not in (error.instance or {})]
        return f"{key}: missing key {', '.join(missing)}"
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties") or {})
        unknown = [name for name in error.instance if name not in allowed]
        accepted = f"; expected one of {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key {', '.join(map(str, unknown))}{accepted}"
    if validator == "type":
        names = expected if isinstance(expected, list) else [expected]
        return f"{key}: {shown} is not accepted; expected {' or '.join(names)}"
    if validator == "enum":
        return f"{key}: {shown} is not accepted; expected one of {', '.join(map(str, expected))}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[validator]
        return f"{key}: {shown} is not accepted; expected a number {bound} {expected}"
    if validator in ("minProperties", "maxProperties"):
        allowed = sorted(error.schema.get("properties") or {})
        choices = f" of {', '.join(allowed)}" if allowed else ""
        return f"{key}: {shown} is not accepted; expected exactly one key{choices}"
    if validator == "minItems":
        return f"{key}: {shown} is not accepted; expected at least {expected} item(s)"
    return f"{key}: {shown} is not accepted ({validator} {echo(str(expected))})"


def _flatten(value: Any, key: str) -> Iterator[tuple[str, str]]:
    for path, item in _values(value, key):
        if isinstance(item, list) and item:  # headers: [{name, value}, ...]: names help, values are secret
            names = [str(header.get("name")) for header in item if isinstance(header, dict)]
            yield path, ",".join(f"{name}={MASK}" for name in names) or MASK
        elif isinstance(item, (dict, list)):
            yield path, "{}" if item == {} else "[]"
        else:
            yield path, _shown(path, item)


# --- what the doctor checks -------------------------------------------------------------------------

_EXPORTERS = {
    "traces": ("tracer_provider", "processors", ("batch", "simple")),
    "metrics": ("meter_provider", "readers", ("periodic",)),
    "logs": ("logger_provider", "processors", ("batch", "simple")),
}


class OtlpExporter(NamedTuple):
    """A signal's first OTLP exporter in the file, as its exporter will send."""

    key: str  # its key path, for the report
    protocol: str  # "grpc" or "http/protobuf"
    url: str
    headers: dict[str, str]
    compression: str


def otlp_exporter(data: dict[str, Any], signal: str) -> OtlpExporter | None:
    """The first otlp_grpc/otlp_http exporter of a signal's provider, with the package's defaults;
    None when the file sends none of this signal over OTLP."""
    section, listed, kinds = _EXPORTERS[signal]
    for index, item in enumerate((data.get(section) or {}).get(listed) or []):
        for kind in kinds:
            exporter = ((item or {}).get(kind) or {}).get("exporter") or {}
            for name, protocol in (("otlp_grpc", "grpc"), ("otlp_http", "http/protobuf")):
                if name not in exporter:
                    continue
                options = exporter[name] or {}
                default = "http://localhost:4317" if protocol == "grpc" else f"http://localhost:4318/v1/{signal}"
                headers = {}
                for pair in str(options.get("headers_list") or "").split(","):
                    key, _, value = pair.partition("=")
                    if key.strip():
                        headers[key.strip()] = value.strip()
                for header in options.get("headers") or []:
                    headers[str(header.get("name"))] = str(header.get("value") or "")
                # The package passes no tls settings to the exporters (0.66b1): not read here either.
                return OtlpExporter(
                    key=f"{section}.{listed}[{index}].{kind}.exporter.{name}",
                    protocol=protocol,
                    url=str(options.get("endpoint") or default),
                    headers=headers,
                    compression=str(options.get("compression") or "none").lower(),
                )
    return None
