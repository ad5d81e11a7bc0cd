"""Resolved configuration: the seam between the command line and the launched process.

Precedence is flags > process environment > env file > defaults. The env file never
overrides a variable that is already set, and only ``OTEL_*`` variables are taken from
it: the launcher configures telemetry, not the app, so an app's own ``.env`` loader keeps
seeing exactly what it saw before.

Every value is judged before the command starts: the settings, and the standard variables
the SDK reads that are passed through (``CHECKED_VARIABLES`` in ``_core.settings``), so that a bad one is
one line and exit 2 here rather than a signal silently off, or a traceback, in every process.
"""

from __future__ import annotations

import os

from otel_launch._core.masking import mask_text
from otel_launch._core.parsers import SettingValueError, bad_text, echo, has_userinfo, mask_pairs
from otel_launch._core.records import record
from otel_launch._core.settings import BY_ENV, BY_NAME, CHECKED_BY_ENV, CHECKED_VARIABLES, SETTINGS, Setting

TYPE_CHECKING = False  # typing is not imported when the launcher starts (see Setting)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "bootstrap")
DEFAULT_ENV_FILE = ".env"

# Sentinel: read ./.env when it exists. None means "no env file" (--no-env-file).
_AUTO = object()


class ConfigError(Exception):
    """Invalid configuration; the message is one line naming the flag or variable."""


_ResolvedRecord: Any = record("Resolved", ["setting", "value", "raw", "source"])


class Resolved(_ResolvedRecord):
    """One setting's value and where it came from."""

    __slots__ = ()
    setting: Setting
    value: Any
    raw: str | None
    source: str  # "flag", "env", "env file", "default", or "derived"

    @property
    def shown(self) -> str:
        if self.raw is None:
            return "(unset)"
        return self.setting.shown(self.raw)


def _parse(parse: Any, raw: str) -> Any:
    """``parse(raw)``, after the checks every value passes (UTF-8, no control characters)."""
    wrong = bad_text(raw)
    if wrong:
        raise SettingValueError(wrong)
    return parse(raw)


def _origin_label(setting: Setting, source: str, env_file: str | None) -> str:
    if source == "flag":
        return setting.flag
    if source == "env file":
        return f"{setting.env} (in {env_file})"
    return setting.env


def _is_a_regular_file(path: str, warnings: list[str]) -> bool:
    """Whether the default ``.env`` is there to be read: a regular file (or a link to one).

    Nobody named it, so anything else is skipped: a directory (a repository's folder of env
    samples), a device (a link to ``/dev/null``) or a socket silently, as none is an env file; a
    named pipe with one note, since it may well be meant as one (a secrets manager serves ``.env``
    so), but reading it could block the launch, or take what it holds from the app's own loader.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # absent, or a dangling link: as if there were none
    if stat.S_ISFIFO(mode):
        warnings.append(f"{path} is a named pipe: not read (--env-file {path} reads it; --no-env-file: no note)")
    return stat.S_ISREG(mode)


class _Unreadable(Exception):
    """The file cannot be opened or read (permissions): an error only for a file the user named.
    One that reads but is not UTF-8 holds settings that cannot be taken: an error either way."""


def _read_env_file(path: str, label: str, warnings: list[str]) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if label == DEFAULT_ENV_FILE and isinstance(exc, OSError):
            raise _Unreadable(reason) from None
        hint = " (or --no-env-file)" if label == DEFAULT_ENV_FILE else ""
        raise ConfigError(f"{label}: {path!r} cannot be read ({reason}); expected a readable env file{hint}") from None
    # python-dotenv is imported only when there is a file to read: it costs start-up time.
    import io
    import logging

    from dotenv import dotenv_values

    unparsed: list[object] = []

    def keep_line_number(record: logging.LogRecord) -> bool:
        # python-dotenv reports a line it cannot parse through logging, in its own words and
        # without the file's name; we say it once, ourselves.
        if "could not parse" in str(record.msg) and isinstance(record.args, tuple) and record.args:
            unparsed.append(record.args[0])
            return False
        return True

    logger = logging.getLogger("dotenv.main")
    logger.addFilter(keep_line_number)
    try:
        values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    finally:
        logger.removeFilter(keep_line_number)
    lines = text.splitlines()
    for number in unparsed:
        line = lines[number - 1] if isinstance(number, int) and 0 < number <= len(lines) else ""
        if line.strip().removeprefix("export ").lstrip().startswith("OTEL_"):
            raise ConfigError(f"{path} line {number}: cannot be parsed; expected NAME=value (quote values with spaces)")
        warnings.append(f"{path} line {number}: cannot be parsed, ignored (otel-launch reads only its OTEL_* lines)")
    return {key: value for key, value in values.items() if key.startswith("OTEL_") and value is not None}


def _mask_passed_through(name: str, value: str) -> str:
    check = CHECKED_BY_ENV.get(name)
    if check is not None and check.mask is not None:
        value = check.mask(value)
    else:
        value = mask_pairs(value) if "HEADERS" in name else mask_text(value)
    # An unchecked variable may hold anything: printed as escapes, never as a crash of print().
    return value if value.isprintable() else repr(value)[1:-1]


def _refusal(where: str, shown: str, accepted: str) -> ConfigError:
    return ConfigError(f"{where}: {echo(shown)} is not accepted; expected {accepted}")


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
        command: Sequence[str] | None = None,
        **flags: Any,
    ) -> None:
        unknown = set(flags) - set(BY_NAME)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.warnings: list[str] = []
        self.env_file, file_values = self._load_env_file(env_file)
        # The env file's OTEL_* variables that are no setting: passed to the command as they are.
        self.env_file_passthrough = {
            key: value for key, value in file_values.items() if key not in self.environ and key not in BY_ENV
        }
        # With a configuration file the SDK variables it replaces are ignored (one warning names
        # them): a value the SDK would refuse does not refuse the launch either.
        file_setting = BY_NAME["config_file"]
        self._with_file = self._resolve(file_setting, flags.get(file_setting.name), file_values).raw is not None
        self.values: dict[str, Resolved] = {}
        for setting in SETTINGS:
            self.values[setting.name] = self._resolve(setting, flags.get(setting.name), file_values)
        # The checked standard variables that are set: {variable: (parsed value, where it was set)}.
        self.checked_values: dict[str, tuple[Any, str]] = self._check_variables()
        self._apply_cross_rules()
        self.config_file = self._load_config_file()
        self.derivations: dict[str, str] = {"sampler": "derived from --sample-rate"}
        # No name set nor read from the command: the processes under it read their own.
        self.names_inside = False
        self._derive_service_name(command)

    # -- resolution -------------------------------------------------------------------------

    def _load_env_file(self, env_file: Any) -> tuple[str | None, dict[str, str]]:
        if env_file is None or env_file is False:
            return None, {}
        if env_file is _AUTO:
            if not _is_a_regular_file(DEFAULT_ENV_FILE, self.warnings):
                return None, {}
            try:
                return DEFAULT_ENV_FILE, _read_env_file(DEFAULT_ENV_FILE, DEFAULT_ENV_FILE, self.warnings)
            except _Unreadable as exc:  # nobody named it: the launch goes on without it, said once
                self.warnings.append(
                    f"{DEFAULT_ENV_FILE} cannot be read ({exc}): not read "
                    f"(--env-file {DEFAULT_ENV_FILE} requires it; --no-env-file: no note)"
                )
                return None, {}
        path = os.fspath(env_file)
        return path, _read_env_file(path, "--env-file", self.warnings)

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
            value = _parse(setting.parse, raw)
        except SettingValueError as exc:
            if source != "flag" and self._replaced(setting.env):
                default = None if setting.default is None else _parse(setting.parse, setting.default)
                return Resolved(setting, default, raw, source)
            where = _origin_label(setting, source, self.env_file)
            raise _refusal(where, setting.shown(raw), str(exc)) from None
        return Resolved(setting, value, raw, source)

    def _replaced(self, name: str) -> bool:
        """A variable a configuration file (set) makes meaningless."""
        if not getattr(self, "_with_file", False):
            return False
        from otel_launch._launcher.config_file import replaced_by_file

        return replaced_by_file(name)

    def _checked_raw(self, name: str) -> tuple[str | None, str]:
        if self.environ.get(name, "").strip():
            return self.environ[name], name
        if self.env_file_passthrough.get(name, "").strip():
            return self.env_file_passthrough[name], f"{name} (in {self.env_file})"
        return None, name

    def _check_variables(self) -> dict[str, tuple[Any, str]]:
        """Parse the standard variables the SDK reads: {variable: (value, where it was set)}."""
        checked = {}
        for check in CHECKED_VARIABLES:
            raw, where = self._checked_raw(check.env)
            if raw is None or self._replaced(check.env):
                continue
            try:
                value = _parse(check.parse, raw)
            except SettingValueError as exc:
                raise _refusal(where, check.shown(raw), str(exc)) from None
            checked[check.env] = (value, where)
        return checked

    def _apply_cross_rules(self) -> None:
        if self.values["config_file"].raw is not None:
            return  # the SDK settings these rules relate are replaced by the file (one warning says so)
        self._check_batch_sizes()
        self._check_endpoints_for_grpc()
        self._check_resource_detectors()
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
        from otel_launch._core.catalogue import entry_point_names, names

        known = names()
        unknown = [name for name in disabled.value if name not in known and name != "*"]  # "*": all of them
        if unknown:  # also known: an installed instrumentation whose library is not installed
            unknown = [name for name in unknown if name not in entry_point_names()]
        if unknown:
            self.warnings.append(
                f"{_origin_label(disabled.setting, disabled.source, self.env_file)}: "
                f"{', '.join(unknown)} not known to otel-launch (known: {', '.join(known)})"
            )

    def _check_batch_sizes(self) -> None:
        # The SDK refuses a batch larger than the queue, and the signal is then off in every process.
        for processor in ("BSP", "BLRP"):
            queue_var, batch_var = f"OTEL_{processor}_MAX_QUEUE_SIZE", f"OTEL_{processor}_MAX_EXPORT_BATCH_SIZE"
            queue, queue_where = self.checked_values.get(queue_var, (2048, None))
            batch, batch_where = self.checked_values.get(batch_var, (512, None))
            if batch <= queue:
                continue
            if batch_where is not None:
                raise _refusal(batch_where, str(batch), f"at most {queue_var} ({queue})")
            raise _refusal(queue_where or queue_var, str(queue), f"at least {batch_var} ({batch}, its default)")

    def _protocol_of(self, signal: str) -> str:
        specific = self.checked_values.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        return specific[0] if specific else self.protocol

    def _check_endpoints_for_grpc(self) -> None:
        """gRPC takes ``user:password@host`` for a host name: it never connects, and its errors
        print the password. Over http/protobuf the exporter sends it as basic auth."""
        signals = ("TRACES", "METRICS", "LOGS")
        endpoints: list[tuple[str, str, str, tuple[str, ...]]] = []
        general = self.values["endpoint"]
        if general.raw is not None:
            where = _origin_label(general.setting, general.source, self.env_file)
            own = tuple(s for s in signals if f"OTEL_EXPORTER_OTLP_{s}_ENDPOINT" not in self.checked_values)
            endpoints.append((where, general.raw, general.setting.shown(general.raw), own))
        for signal in signals:
            found = self.checked_values.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
            if found:
                check = CHECKED_BY_ENV[f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"]
                endpoints.append((found[1], found[0], check.shown(found[0]), (signal,)))
        for where, raw, shown, used_by in endpoints:
            if has_userinfo(raw) and any(self._protocol_of(signal) == "grpc" for signal in used_by):
                raise ConfigError(
                    f"{where}: {echo(shown)} is not accepted with protocol grpc, which cannot send a user or "
                    "password in the URL; expected a URL without user@, with the credentials in "
                    "OTEL_EXPORTER_OTLP_HEADERS (e.g. authorization=Basic%20...)"
                )

    def _check_resource_detectors(self) -> None:
        detectors = self.values["resource_detectors"]
        if detectors.source == "default" or detectors.raw is None:
            return  # ours, known to be installed: the entry point scan costs start-up time
        from importlib.metadata import entry_points

        # The SDK looks each name up as given (case-sensitive); "*" means all installed.
        installed = sorted({entry.name for entry in entry_points(group="opentelemetry_resource_detector")})
        names = [name.strip() for name in detectors.raw.split(",") if name.strip()]
        unknown = [name for name in names if name != "*" and name not in installed]
        if unknown:
            where = _origin_label(detectors.setting, detectors.source, self.env_file)
            raise _refusal(where, detectors.raw, "names of installed resource detectors: " + ", ".join(installed))

    def _load_config_file(self) -> Any:
        """The checked OTEL_CONFIG_FILE, or None; what it makes meaningless is said in one warning."""
        resolved = self.values["config_file"]
        if resolved.raw is None:
            return None
        from otel_launch._launcher.config_file import ConfigFileError, load, replaced_by_file

        where = _origin_label(resolved.setting, resolved.source, self.env_file)
        try:
            loaded = load(resolved.value, where)
        except ConfigFileError as exc:
            raise ConfigError(str(exc)) from None
        self.warnings.extend(loaded.warnings)
        ignored = [
            _origin_label(r.setting, r.source, self.env_file)
            for r in self.values.values()
            if r.source in ("flag", "env", "env file") and replaced_by_file(r.setting.env)
        ]
        ignored += [
            name
            for name in sorted({*self.env_file_passthrough, *self.environ})
            if name not in BY_ENV and replaced_by_file(name) and str(self._checked_raw(name)[0] or "").strip()
        ]
        kept = [name for name in ignored if name.split(" ")[0] in loaded.referenced]
        ignored = [name for name in ignored if name not in kept]
        if ignored:
            self.warnings.append(
                f"{', '.join(ignored)} ignored: {where} ({resolved.value}) configures the SDK "
                "(use ${VAR} in the file to take a value from the environment)"
            )
        return loaded

    def _derive_service_name(self, command: Sequence[str] | None) -> None:
        """A name read from the command (``_core/service_name.py``), only when the user set none:
        no service name, no ``service.name`` resource attribute, no configuration file (its
        resource is the SDK's whole resource). When the command names none (a shell script),
        ``names_inside``: each Python process started under it reads its own."""
        current = self.values["service_name"]
        if not command or current.raw is not None or self.config_file is not None:
            return
        if "service.name" in (self.resource_attributes or {}):
            return
        from otel_launch._core.service_name import derive

        derived = derive(command, os.getcwd(), self.environ)
        if derived is not None:
            self.values["service_name"] = Resolved(current.setting, derived.name, derived.name, "derived")
            self.derivations["service_name"] = derived.reason
        else:
            self.names_inside = True

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

    def child_env(self, base: Mapping[str, str] | None = None, executable: str | None = None) -> dict[str, str]:
        """The environment of the launched process: standard OTEL_* variables and the bootstrap.

        ``executable``: the file the launcher execs, which, with this process's pid (exec keeps
        it), tells the bootstrap which process is the launcher's own command (``names_inside``).
        """
        env = dict(self.environ if base is None else base)
        from otel_launch._core import NAME_FROM_COMMAND, SAY

        env.pop(NAME_FROM_COMMAND, None)  # an outer launch's: this one decides
        if self.names_inside:
            env[NAME_FROM_COMMAND] = f"{os.getpid()}:{os.path.abspath(executable)}" if executable else SAY
        for key, value in self.env_file_passthrough.items():
            env.setdefault(key, value)
        for check in CHECKED_VARIABLES:
            # Empty means unset (the spec); the SDK would read "" as a number and log a traceback.
            if check.env in env and not env[check.env].strip():
                del env[check.env]
        for resolved in self.values.values():
            if resolved.raw is None or resolved.source == "env":
                continue
            env[resolved.setting.env] = resolved.raw
        attributes = self.resource_attributes_for_child()
        if attributes:
            env["OTEL_RESOURCE_ATTRIBUTES"] = BY_NAME["resource_attributes"].render(attributes)
        from otel_launch._core import catalogue

        env[catalogue.ENV_VAR] = catalogue.for_child_env()  # the scan, once, for every process
        if self.config_file is not None:
            from otel_launch._launcher.config_file import replaced_by_file

            # The file replaces the SDK's variables (the spec); the package would still let an
            # exporter read them for what the file leaves out. Those the file names in ${VAR} stay.
            for key in [key for key in env if replaced_by_file(key) and key not in self.config_file.referenced]:
                del env[key]
            env.update(self.config_file.child_env)
            env["OTEL_CONFIG_FILE"] = self.config_file.path
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
        env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *paths])
        return env

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(flag, variable, value with secrets masked, source) for every setting, then pass-through."""
        replaced: Any = None
        if self.config_file is not None:
            from otel_launch._launcher.config_file import replaced_by_file as replaced
        rows = []
        for resolved in self.values.values():
            setting = resolved.setting
            source = resolved.source
            if source == "env file":
                source = f"env file {self.env_file}"
            elif source == "derived":
                source = self.derivations[setting.name]
            elif setting.name == "service_name" and self.names_inside:
                source = "default; each Python process under this command reads its own from its command line"
            if replaced is not None and replaced(setting.env):
                source = f"{source}; ignored: the configuration file replaces it"
            rows.append((setting.flag, setting.env, resolved.shown, source))
        for key in sorted(self.env_file_passthrough):
            rows.append(
                ("", key, _mask_passed_through(key, self.env_file_passthrough[key]), f"env file {self.env_file}")
            )
        others = sorted(
            key
            for key in self.environ
            if key.startswith("OTEL_") and key not in BY_ENV and key not in self.env_file_passthrough
        )
        for key in others:
            rows.append(("", key, _mask_passed_through(key, self.environ[key]), "env (passed through)"))
        if self.config_file is not None:
            for key, shown in self.config_file.rows():
                rows.append(("", key, shown, f"file {self.config_file.path}"))
        return rows
