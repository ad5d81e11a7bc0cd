"""Every otel-launch setting, declared once.

The click options, the environment parsing, the ``--print-config`` rows and the
README's settings table are all generated from :data:`SETTINGS`. This module
imports only the standard library because the bootstrap inside the target
process reads it too, at interpreter start.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable

# The masking lives in _masking; these names stay importable from here.
from otel_launch._masking import MASK, REDACT_PATTERN, mask_url, mask_userinfo  # noqa: F401
from otel_launch._masking import mask_text as mask_urls_in  # noqa: F401

TYPE_CHECKING = False  # typing is not imported when the launcher starts: it costs ~5 ms of every launch
if TYPE_CHECKING:
    from typing import Any


class SettingValueError(ValueError):
    """A value a setting does not accept; the message says what it does accept."""


# --- parsers: text -> value, raising SettingValueError(what is accepted) ---------------------


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise SettingValueError("a non-empty text")
    return value


def bad_text(raw: str) -> str | None:
    """Why a value can never be right, whatever the setting: None when it may be.

    Text from the OS that is not valid UTF-8 arrives as surrogate escapes and breaks the
    encoding of the attribute or header it ends up in; a control character (a newline in a
    header, a service name) breaks the line or the protocol it is written to.
    """
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is valid UTF-8"
    if _CONTROL.search(raw):
        return "text without control characters (newline, tab, ...)"
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A '%' not followed by two hex digits: the SDK would pass it on undecoded.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode(text: str, accepted: str) -> str:
    """Percent-decode strictly: bad escapes and escapes of invalid UTF-8 are refused."""
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise SettingValueError(accepted + " (a '%' must start an escape such as %20)")
    from urllib.parse import unquote  # here: urllib.parse (and ipaddress) cost every launch ~5 ms

    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise SettingValueError(accepted + " (escapes must decode to UTF-8)") from None


def _choices(*names: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in names:
            raise SettingValueError("one of " + ", ".join(names))
        return value

    return parse


def _choice_list(*names: str) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names; ``none`` alone turns the feature off."""

    def parse(raw: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))
        accepted = "a comma-separated list of " + ", ".join(names) + ", or none"
        if not items:
            raise SettingValueError(accepted)
        if "none" in items:
            if len(items) > 1:
                raise SettingValueError(accepted + " (none cannot be combined)")
            return ()
        unknown = [item for item in items if item not in names]
        if unknown:
            raise SettingValueError(accepted)
        return items

    return parse


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    lower = f"greater than {low:g}" if low_open else f"from {low:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingValueError(f"a number {lower} to {high:g}") from None
        too_low = value <= low if low_open else value < low
        if too_low or value > high or value != value:  # NaN compares unequal to itself
            raise SettingValueError(f"a number {lower} to {high:g}")
        return value

    return parse


_INT_MAX = 2**31 - 1  # the SDK passes these on to deques, waits and protobuf fields


def _integer(low: int, high: int = _INT_MAX, *, unset: bool = False) -> Callable[[str], int | None]:
    accepted = f"a whole number from {low} to {high}" + (", or unset" if unset else "")

    def parse(raw: str) -> int | None:
        text = raw.strip()
        if unset and text.lower() == "unset":
            return None
        try:
            value = int(text)  # as the SDK reads them: int(), so no "1.5", no "1e3"
        except ValueError:
            raise SettingValueError(accepted) from None
        if not low <= value <= high:
            raise SettingValueError(accepted)
        return value

    return parse


def _boolean(raw: str) -> bool:
    # The SDK reads anything but "true" as false: "maybe" or "1" would silently mean false.
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise SettingValueError("true or false")
    return value == "true"


def _existing_file(raw: str) -> str:
    import os

    if not os.path.isfile(raw):
        raise SettingValueError("the path of a file that exists")
    return raw


def _key_values(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` with percent-encoded values, as the SDK reads OTEL_RESOURCE_ATTRIBUTES."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
        pairs[key.strip()] = _decode(value.strip(), "comma-separated key=value pairs, e.g. team=web,region=eu")
    if not pairs:
        raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
    return pairs


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def _headers(raw: str) -> dict[str, str]:
    """``name=value,...`` with percent-encoded parts, as the OTLP exporters read them."""
    accepted = "comma-separated name=value pairs with URL-encoded values, e.g. api-key=abc%20123"
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = _decode(name.strip(), accepted)
        if not sep or not _HEADER_NAME.match(name):
            raise SettingValueError(accepted)
        # gRPC metadata and HTTP header values are printable ASCII; the exporters fail every
        # export on anything else (and their error prints the whole header, token included).
        decoded = _decode(value.strip(), accepted).strip()
        if not _HEADER_VALUE.fullmatch(decoded):
            raise SettingValueError(accepted + " (values must decode to printable ASCII, no CR/LF)")
        headers[name.lower()] = decoded
    if not headers:
        raise SettingValueError(accepted)
    return headers


def _endpoint(raw: str) -> str:
    value = raw.strip()
    if any(char.isspace() for char in value):  # urlsplit would drop tabs and newlines silently
        raise SettingValueError("an http:// or https:// URL without spaces, e.g. http://localhost:4317")
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingValueError("an http:// or https:// URL, e.g. http://localhost:4317")
    return value


# Propagator names accepted in OTEL_PROPAGATORS, and the module each needs (None: in the API).
PROPAGATOR_MODULES: dict[str, str | None] = {
    "tracecontext": None,
    "baggage": None,
    "b3": "opentelemetry.propagators.b3",
    "b3multi": "opentelemetry.propagators.b3",
    "jaeger": "opentelemetry.propagators.jaeger",
}
_PROPAGATOR_PACKAGES = {"jaeger": "otel-launch[jaeger]"}


def _propagators(raw: str) -> tuple[str, ...]:
    import importlib.util

    names = _choice_list(*PROPAGATOR_MODULES)(raw)
    for name in names:
        module = PROPAGATOR_MODULES[name]
        if module and importlib.util.find_spec(module) is None:
            package = _PROPAGATOR_PACKAGES.get(name, module.replace(".", "-"))
            raise SettingValueError(f"propagators that are installed ({name} needs: pip install '{package}')")
    return names


def _names(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))


# --- rendering values back to the text of their variable --------------------------------------


def _render_list(value: tuple[str, ...]) -> str:
    return ",".join(value) if value else "none"


def _render_pairs(value: dict[str, str]) -> str:
    from urllib.parse import quote

    return ",".join(f"{key}={quote(val, safe='')}" for key, val in value.items())


def _render_number(value: float) -> str:
    return f"{value:g}"


# --- masking secrets -----------------------------------------------------------------------------


def has_userinfo(url: str) -> bool:
    """Whether a URL carries a user or password before its host: as urlsplit reads it, or as
    the masker does (a password holding a ``/``, which urlsplit takes for the path's start)."""
    from urllib.parse import urlsplit

    url = url.strip()
    try:
        if "@" in urlsplit(url).netloc:
            return True
    except ValueError:
        return False
    return mask_userinfo(url) != url


ECHO_LIMIT = 80


def echo(shown: str) -> str:
    """How an error repeats a value (already masked): quoted, escaped, at most 80 characters."""
    if len(shown) > ECHO_LIMIT:
        return repr(shown[:ECHO_LIMIT]) + f"... ({len(shown)} characters)"
    return repr(shown)


def mask_pairs(raw: str) -> str:
    # Keep header names (they help to debug), never values. An item with no '='
    # may be a pasted token, so it is hidden whole.
    masked = []
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, _ = item.partition("=")
        masked.append(f"{name.strip()}={MASK}" if sep else MASK)
    return ",".join(masked) or MASK


# --- the declaration -----------------------------------------------------------------------------


class Setting(
    namedtuple(
        "Setting",
        ["name", "env", "help", "parse", "accepted", "default", "render", "mask", "extra_flags"],
        defaults=(None, str, None, ()),
    )
):
    """One setting: its name, flag, variable, default, parser and help, in one place.

    ``name``, ``env`` (the variable), ``help``, ``parse`` (text -> value, raising
    SettingValueError), ``accepted`` (what parse accepts, for errors), ``default`` (text or
    None), ``render`` (value -> text), ``mask`` (text -> text shown, for secrets, or None) and
    ``extra_flags``. A named tuple rather than a dataclass or a ``typing.NamedTuple``: the
    launcher runs before every process start, and importing dataclasses (it pulls in inspect and
    ast) costs ~13 ms of it, typing ~5 ms.
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


# The value that stands for the built-in pattern of secret-looking names.
REDACT_DEFAULT = "default"
# REDACT_PATTERN (the built-in pattern) is in _masking, with the maskers that apply it.


def _redact(raw: str) -> str:
    """``default``, ``none`` (keep every value) or a regular expression; the pattern to apply."""
    value = raw.strip()
    if value.lower() == REDACT_DEFAULT:
        return REDACT_PATTERN
    if value.lower() == "none":
        return ""
    try:
        re.compile(value, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError):
        raise SettingValueError("default, none, or a regular expression (Python syntax)") from None
    return value


_EXPORTERS = ("otlp", "console")

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "service_name",
        "OTEL_SERVICE_NAME",
        "Logical name of the service (resource attribute service.name).",
        _text,
        "a non-empty text",
    ),
    Setting(
        "service_version",
        "OTEL_LAUNCH_SERVICE_VERSION",
        "Version of the service (resource attribute service.version).",
        _text,
        "a non-empty text",
    ),
    Setting(
        "deployment_environment",
        "OTEL_LAUNCH_DEPLOYMENT_ENVIRONMENT",
        "Deployment environment, e.g. production (deployment.environment.name, and the older "
        "deployment.environment that many backends still read).",
        _text,
        "a non-empty text",
    ),
    Setting(
        "resource_attributes",
        "OTEL_RESOURCE_ATTRIBUTES",
        "Extra resource attributes, k=v,k2=v2 (values percent-encoded).",
        _key_values,
        "comma-separated key=value pairs",
        render=_render_pairs,
    ),
    Setting(
        "traces_exporter",
        "OTEL_TRACES_EXPORTER",
        "Where spans go.",
        _choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="otlp",
        render=_render_list,
    ),
    Setting(
        "metrics_exporter",
        "OTEL_METRICS_EXPORTER",
        "Where metrics go.",
        _choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="otlp",
        render=_render_list,
    ),
    Setting(
        "logs_exporter",
        "OTEL_LOGS_EXPORTER",
        "Where log records go. Off unless asked for, as with opentelemetry-instrument.",
        _choice_list(*_EXPORTERS),
        "otlp, console, a list of both, or none",
        default="none",
        render=_render_list,
    ),
    Setting(
        "endpoint",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTLP collector URL. Default http://localhost:4317 for grpc, http://localhost:4318 for http/protobuf.",
        _endpoint,
        "an http:// or https:// URL",
        mask=mask_url,
    ),
    Setting(
        "protocol",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTLP transport.",
        _choices("grpc", "http/protobuf"),
        "grpc or http/protobuf",
        default="grpc",
    ),
    Setting(
        "headers",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Headers sent with every export, name=value,... (URL-encoded). Secret: always masked.",
        _headers,
        "comma-separated name=value pairs",
        render=_render_pairs,
        mask=mask_pairs,
    ),
    Setting(
        "sampler",
        "OTEL_TRACES_SAMPLER",
        "Trace sampler.",
        _choices(
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
        _number(0.0, 1.0),
        "a number from 0 to 1",
        render=_render_number,
    ),
    Setting(
        "propagators",
        "OTEL_PROPAGATORS",
        "Context propagation formats.",
        _propagators,
        "tracecontext, baggage, b3, b3multi, jaeger (when installed), or none",
        default="tracecontext,baggage",
        render=_render_list,
    ),
    Setting(
        "disabled_instrumentations",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "Instrumentations to leave off, e.g. redis,sqlite3.",
        _names,
        "a comma-separated list of instrumentation names",
        render=",".join,
        extra_flags=("--disable",),
    ),
    Setting(
        "resource_detectors",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
        "SDK resource detectors to run; service.instance.id is always set, per process.",
        _names,
        "a comma-separated list of detector names",
        default="host,os,process",
        render=",".join,
    ),
    Setting(
        "shutdown_timeout",
        "OTEL_LAUNCH_SHUTDOWN_TIMEOUT",
        "Seconds a process may spend flushing telemetry when it exits; a dead collector never holds an exit longer.",
        _number(0.001, 600.0),
        "a number of seconds from 0.001 to 600",
        default="5",
        render=_render_number,
    ),
    Setting(
        "redact",
        "OTEL_LAUNCH_REDACT",
        "Query parameters (in http.target, http.url, url.full, url.query) and captured HTTP headers "
        "whose names match have their values replaced by *** in every span (and in exception events, status "
        "descriptions and exported log records): default (passwords, tokens, "
        "keys, signatures, sessions, credentials, see Private data), none to keep every value, or your own "
        "regular expression, searched case-insensitively in each name.",
        _redact,
        "default, none, or a regular expression",
        default=REDACT_DEFAULT,
    ),
    Setting(
        "n_plus_one_threshold",
        "OTEL_LAUNCH_N_PLUS_ONE_THRESHOLD",
        "N+1 detection: a statement run this many times in one request or task marks its span; 0 turns it off.",
        _integer(0, 1_000_000),
        "a whole number from 0 to 1000000",
        default="5",
    ),
    Setting(
        "http_active_requests",
        "OTEL_LAUNCH_HTTP_ACTIVE_REQUESTS",
        "Also record http.server.active_requests (two measurements a request; development status in the conventions).",
        _boolean,
        "true or false",
        default="false",
        render=lambda value: "true" if value else "false",
    ),
    Setting(
        "config_file",
        "OTEL_CONFIG_FILE",
        "An OpenTelemetry configuration file (YAML or JSON, file_format 1.x) that builds the SDK instead of the "
        "OTEL_* variables; needs otel-launch[config]. See Configuration file.",
        _text,
        "the path of a configuration file",
    ),
    Setting(
        "celery_flower_metric",
        "OTEL_LAUNCH_CELERY_FLOWER_METRIC",
        "Also record the contrib's flower.task.runtime.seconds (a duplicate of messaging.process.duration).",
        _boolean,
        "true or false",
        default="false",
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


class PassThrough(namedtuple("PassThrough", ["env", "parse", "accepted", "mask"], defaults=(None,))):
    """A standard variable the launcher does not set but validates: the SDK would otherwise
    switch a signal off, or fail every export, in each process, with a traceback."""

    __slots__ = ()
    env: str
    parse: Callable[[str], Any]
    accepted: str
    mask: Callable[[str], str] | None

    def shown(self, raw: str) -> str:
        return self.mask(raw) if self.mask else raw


_SIGNALS = ("TRACES", "METRICS", "LOGS")


def _passthrough() -> tuple[PassThrough, ...]:
    ms = "a whole number of milliseconds from {} to 2147483647"
    table = [PassThrough("OTEL_SDK_DISABLED", _boolean, "true or false")]
    for processor in ("BSP", "BLRP"):  # batch span / log record processors
        table += [
            PassThrough(f"OTEL_{processor}_SCHEDULE_DELAY", _integer(1), ms.format(1)),
            PassThrough(f"OTEL_{processor}_EXPORT_TIMEOUT", _integer(0), ms.format(0)),
            PassThrough(f"OTEL_{processor}_MAX_QUEUE_SIZE", _integer(1), "a whole number from 1 to 2147483647"),
            PassThrough(
                f"OTEL_{processor}_MAX_EXPORT_BATCH_SIZE",
                _integer(1),
                f"a whole number from 1 to OTEL_{processor}_MAX_QUEUE_SIZE (default 2048)",
            ),
        ]
    for name in ("INTERVAL", "TIMEOUT"):
        table.append(
            PassThrough(
                f"OTEL_METRIC_EXPORT_{name}", _number(0.0, _INT_MAX, low_open=True), "a number of milliseconds > 0"
            )
        )
    for signal in ("", *(f"{s}_" for s in _SIGNALS)):
        prefix = f"OTEL_EXPORTER_OTLP_{signal}"
        table += [
            # The Python exporters read their timeout in seconds.
            PassThrough(
                f"{prefix}TIMEOUT", _number(0.0, 86400.0, low_open=True), "a number of seconds > 0, at most 86400"
            ),
            PassThrough(f"{prefix}COMPRESSION", _choices("gzip", "deflate", "none"), "gzip, deflate or none"),
            PassThrough(f"{prefix}INSECURE", _boolean, "true or false"),
            PassThrough(f"{prefix}CERTIFICATE", _existing_file, "the path of a file that exists"),
            PassThrough(f"{prefix}CLIENT_KEY", _existing_file, "the path of a file that exists"),
            PassThrough(f"{prefix}CLIENT_CERTIFICATE", _existing_file, "the path of a file that exists"),
        ]
        if signal:  # the general ones are settings of their own
            table += [
                PassThrough(f"{prefix}ENDPOINT", _endpoint, "an http:// or https:// URL", mask_url),
                PassThrough(f"{prefix}HEADERS", _headers, "comma-separated name=value pairs", mask_pairs),
                PassThrough(f"{prefix}PROTOCOL", _choices("grpc", "http/protobuf"), "grpc or http/protobuf"),
            ]
    limits = ["ATTRIBUTE_VALUE_LENGTH", "ATTRIBUTE_COUNT", "SPAN_ATTRIBUTE_VALUE_LENGTH", "SPAN_ATTRIBUTE_COUNT"]
    limits += ["SPAN_EVENT_COUNT", "SPAN_LINK_COUNT", "EVENT_ATTRIBUTE_COUNT", "LINK_ATTRIBUTE_COUNT"]
    for limit in limits:
        table.append(PassThrough(f"OTEL_{limit}_LIMIT", _integer(0, unset=True), "a whole number from 0, or unset"))
    return tuple(table)


PASSTHROUGH: tuple[PassThrough, ...] = _passthrough()
PASSTHROUGH_BY_ENV: dict[str, PassThrough] = {check.env: check for check in PASSTHROUGH}
