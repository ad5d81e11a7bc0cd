"""Every otel-launch setting, declared once.

The click options, the environment parsing, the ``--print-config`` rows and the
README's settings table are all generated from :data:`SETTINGS`. This module
imports only the standard library because the bootstrap inside the target
process reads it too, at interpreter start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"


class SettingValueError(ValueError):
    """A value a setting does not accept; the message says what it does accept."""


# --- parsers: text -> value, raising SettingValueError(what is accepted) ---------------------


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise SettingValueError("a non-empty text")
    return value


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


def _key_values(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` with percent-encoded values, as the SDK reads OTEL_RESOURCE_ATTRIBUTES."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
        pairs[key.strip()] = unquote(value.strip())
    if not pairs:
        raise SettingValueError("comma-separated key=value pairs, e.g. team=web,region=eu")
    return pairs


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _headers(raw: str) -> dict[str, str]:
    """``name=value,...`` with percent-encoded parts, as the OTLP exporters read them."""
    accepted = "comma-separated name=value pairs with URL-encoded values, e.g. api-key=abc%20123"
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = unquote(name.strip())
        if not sep or not _HEADER_NAME.match(name):
            raise SettingValueError(accepted)
        headers[name.lower()] = unquote(value.strip())
    if not headers:
        raise SettingValueError(accepted)
    return headers


def _endpoint(raw: str) -> str:
    value = raw.strip()
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
    return ",".join(f"{key}={quote(val, safe='')}" for key, val in value.items())


def _render_number(value: float) -> str:
    return f"{value:g}"


# --- masking secrets -----------------------------------------------------------------------------

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def mask_url(url: str) -> str:
    """Hide the password and query values of a URL; keep what helps to debug it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        # "user:password@" keeps the user; a lone "token@" is all secret.
        netloc = f"{user}:{MASK}@{hostport}" if has_password and user else f"{MASK}@{hostport}"
    query = "&".join(
        f"{item.partition('=')[0]}={MASK}" if "=" in item else item for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls_in(text: str) -> str:
    """Mask every URL found in free text (log lines, error messages)."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


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


class Setting(NamedTuple):
    """One setting: its name, flag, variable, default, parser and help, in one place.

    A NamedTuple rather than a dataclass: the launcher runs before every process start,
    and importing dataclasses (it pulls in inspect and ast) costs ~13 ms of it.
    """

    name: str
    env: str
    help: str
    parse: Callable[[str], Any]
    accepted: str
    default: str | None = None
    render: Callable[[Any], str] = str
    mask: Callable[[str], str] | None = None
    extra_flags: tuple[str, ...] = ()

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
        return "--" + re.sub(r"^OTEL_(PYTHON_)?", "", self.env).lower()

    @property
    def flags(self) -> tuple[str, ...]:
        names = [self.flag, *self.extra_flags]
        if self.upstream_flag:
            names.append(self.upstream_flag)
        return tuple(dict.fromkeys(names))

    def shown(self, raw: str) -> str:
        """The text of a value as it may appear in output: secrets masked."""
        return self.mask(raw) if self.mask else raw


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingValueError(f"a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise SettingValueError(f"a whole number from {low} to {high}")
        return value

    return parse


def _on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise SettingValueError("true or false")
    return value == "true"


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
        _number(0.0, 600.0, low_open=True),
        "a number of seconds greater than 0, at most 600",
        default="5",
        render=_render_number,
    ),
    Setting(
        "n_plus_one_threshold",
        "OTEL_LAUNCH_N_PLUS_ONE_THRESHOLD",
        "N+1 detection: a statement run this many times in one request or task marks its span; 0 turns it off.",
        _whole_number(0, 1_000_000),
        "a whole number from 0 to 1000000",
        default="5",
    ),
    Setting(
        "http_active_requests",
        "OTEL_LAUNCH_HTTP_ACTIVE_REQUESTS",
        "Also record http.server.active_requests (two measurements a request; development status in the conventions).",
        _on_off,
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
