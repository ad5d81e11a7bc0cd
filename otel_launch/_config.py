"""Resolved configuration: the seam between the command line and the launched process.

Precedence is flags > process environment > env file > defaults. The env file never
overrides a variable that is already set, and only ``OTEL_*`` variables are taken from
it: the launcher configures telemetry, not the app, so an app's own ``.env`` loader keeps
seeing exactly what it saw before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from otel_launch._settings import (
    BY_ENV,
    BY_NAME,
    SETTINGS,
    Setting,
    SettingValueError,
    mask_pairs,
    mask_urls_in,
)

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "bootstrap")
DEFAULT_ENV_FILE = ".env"

# Sentinel: read ./.env when it exists. None means "no env file" (--no-env-file).
_AUTO = object()


class ConfigError(Exception):
    """Invalid configuration; the message is one line naming the flag or variable."""


class Resolved(NamedTuple):
    """One setting's value and where it came from."""

    setting: Setting
    value: Any
    raw: str | None
    source: str  # "flag", "env", "env file", "default", or "derived"

    @property
    def shown(self) -> str:
        if self.raw is None:
            return "(unset)"
        return self.setting.shown(self.raw)


def _origin_label(setting: Setting, source: str, env_file: str | None) -> str:
    if source == "flag":
        return setting.flag
    if source == "env file":
        return f"{setting.env} (in {env_file})"
    return setting.env


def _read_env_file(path: str, label: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{label}: {path!r} cannot be read ({reason}); expected a readable env file") from None
    # python-dotenv is imported only when there is a file to read: it costs start-up time.
    import io

    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    return {key: value for key, value in values.items() if key.startswith("OTEL_") and value is not None}


def _mask_passthrough(name: str, value: str) -> str:
    return mask_pairs(value) if "HEADERS" in name else mask_urls_in(value)


class Config:
    """Settings resolved from keyword arguments (the flags), the environment and an env file.

    The CLI and the programmatic API build the same object::

        Config(service_name="shop", sample_rate=0.25).child_env()
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: Any = _AUTO,
        **flags: Any,
    ) -> None:
        unknown = set(flags) - set(BY_NAME)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.warnings: list[str] = []
        self.env_file, file_values = self._load_env_file(env_file)
        self.passthrough = {
            key: value for key, value in file_values.items() if key not in self.environ and key not in BY_ENV
        }
        self.values: dict[str, Resolved] = {}
        for setting in SETTINGS:
            self.values[setting.name] = self._resolve(setting, flags.get(setting.name), file_values)
        self._apply_cross_rules()

    # -- resolution -------------------------------------------------------------------------

    def _load_env_file(self, env_file: Any) -> tuple[str | None, dict[str, str]]:
        if env_file is None or env_file is False:
            return None, {}
        if env_file is _AUTO:
            if not os.path.exists(DEFAULT_ENV_FILE):
                return None, {}
            return DEFAULT_ENV_FILE, _read_env_file(DEFAULT_ENV_FILE, DEFAULT_ENV_FILE)
        path = os.fspath(env_file)
        return path, _read_env_file(path, "--env-file")

    def _resolve(self, setting: Setting, flag_value: Any, file_values: Mapping[str, str]) -> Resolved:
        if flag_value is not None:
            raw = flag_value if isinstance(flag_value, str) else setting.render(flag_value)
            source = "flag"
        elif self.environ.get(setting.env, "").strip():
            # An empty variable counts as unset, as the SDK reads it (compose files use that).
            raw, source = self.environ[setting.env], "env"
        elif file_values.get(setting.env, "").strip():
            raw, source = file_values[setting.env], "env file"
        elif setting.default is not None:
            raw, source = setting.default, "default"
        else:
            return Resolved(setting, None, None, "default")
        try:
            value = setting.parse(raw)
        except SettingValueError as exc:
            where = _origin_label(setting, source, self.env_file)
            raise ConfigError(f"{where}: {setting.shown(raw)!r} is not accepted; expected {exc}") from None
        return Resolved(setting, value, raw, source)

    def _apply_cross_rules(self) -> None:
        rate, sampler = self.values["sample_rate"], self.values["sampler"]
        if rate.source == "flag" and sampler.source == "default":
            # "--sample-rate 0.1" alone means "keep 10%": pick the sampler that honours it.
            self.values["sampler"] = Resolved(
                sampler.setting, "parentbased_traceidratio", "parentbased_traceidratio", "derived"
            )
        elif rate.raw is not None and "traceidratio" not in self.values["sampler"].value:
            self.warnings.append(
                f"{_origin_label(rate.setting, rate.source, self.env_file)}={rate.raw} has no effect with "
                f"sampler {self.values['sampler'].value}; use --sampler parentbased_traceidratio"
            )
        disabled = self.values["disabled_instrumentations"]
        if not disabled.value:
            return
        # Others are accepted with a warning: a container env written for
        # opentelemetry-instrument may list instrumentations otel-launch does not ship.
        from otel_launch._runtime.integrations import names

        known = names()
        unknown = [name for name in disabled.value if name not in known]
        if unknown:  # also known: an installed instrumentation whose library is not installed
            from otel_launch._runtime.integrations._dist_info import entry_point_names

            unknown = [name for name in unknown if name not in entry_point_names()]
        if unknown:
            self.warnings.append(
                f"{_origin_label(disabled.setting, disabled.source, self.env_file)}: "
                f"{', '.join(unknown)} not known to otel-launch (known: {', '.join(known)})"
            )

    # -- reading --------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name].value
        raise AttributeError(name)

    def resource_attributes_for_child(self) -> dict[str, str]:
        attributes = dict(self.resource_attributes or {})
        if self.service_version:
            attributes["service.version"] = self.service_version
        if self.deployment_environment:
            attributes["deployment.environment.name"] = self.deployment_environment
            attributes["deployment.environment"] = self.deployment_environment
        return attributes

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the launched process: standard OTEL_* variables and the bootstrap."""
        env = dict(self.environ if base is None else base)
        for key, value in self.passthrough.items():
            env.setdefault(key, value)
        for resolved in self.values.values():
            if resolved.raw is None or resolved.source == "env":
                continue
            env[resolved.setting.env] = resolved.raw
        attributes = self.resource_attributes_for_child()
        if attributes:
            env["OTEL_RESOURCE_ATTRIBUTES"] = BY_NAME["resource_attributes"].render(attributes)
        from otel_launch._runtime.integrations import _catalogue

        env[_catalogue.ENV_VAR] = _catalogue.for_child_env()  # the scan, once, for every process
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
        env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *paths])
        return env

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(flag, variable, value with secrets masked, source) for every setting, then pass-through."""
        rows = []
        for resolved in self.values.values():
            setting = resolved.setting
            source = resolved.source
            if source == "env file":
                source = f"env file {self.env_file}"
            elif source == "derived":
                source = "derived from --sample-rate"
            rows.append((setting.flag, setting.env, resolved.shown, source))
        for key in sorted(self.passthrough):
            rows.append(("", key, _mask_passthrough(key, self.passthrough[key]), f"env file {self.env_file}"))
        others = sorted(
            key for key in self.environ if key.startswith("OTEL_") and key not in BY_ENV and key not in self.passthrough
        )
        for key in others:
            rows.append(("", key, _mask_passthrough(key, self.environ[key]), "env (passed through)"))
        return rows
