"""``otel-launch doctor``: what a launch would do here, and proof that the collector accepts it.

Run with the same flags, variables and env file as a launch (the same options:
``options.py``). One line each: the resolved settings (secrets masked), what this environment
holds (``report.py``), then a test export per signal sent with the configured protocol,
endpoint, headers, TLS and compression, and the collector's answer (``probe.py``). Exit 0 when
every signal that is on was accepted, 1 otherwise, 2 on bad settings.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from otel_launch._core.masking import mask_text, mask_url, secret_values
from otel_launch._launcher.config import _AUTO, Config, ConfigError
from otel_launch._launcher.doctor.probe import SIGNALS, Transport, _all_header_values, _file_delivery
from otel_launch._launcher.doctor.report import (
    integrations_line,
    interpreter_line,
    missing_instrumentations,
    version_line,
)
from otel_launch._launcher.options import configuration_options
from otel_launch._version import __version__


def run_doctor(config: Config, command: tuple[str, ...], timeout: float, out: Any = None) -> int:
    """Print the report; the exit status: 0 when every signal that is on was accepted, else 1."""
    out = out or sys.stdout
    # gRPC's C core logs its own lines (TLS handshakes, connection errors) on stderr: the answer
    # is reported here, once. Read when grpc is first imported, which happens below.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")

    def say(line: str, settings_row: bool = False) -> None:
        out.write(mask_text(line, values=secrets, settings_row=settings_row) + "\n")
        out.flush()

    env = config.child_env()
    secrets = secret_values(_all_header_values(config))
    say(f"otel-launch doctor {__version__}: settings are flags > environment > env file > defaults")
    for flag, variable, value, source in config.rows():
        origin = source if source.startswith("derived") else f"from {source}"
        say(f"setting: {variable}={value}  ({flag or 'pass-through'}, {origin})", settings_row=True)
    for warning in config.warnings:
        say(f"warning: {warning}")
    say(version_line())
    say(integrations_line(config))
    say(interpreter_line(command))
    missing = missing_instrumentations()
    if missing:
        names = ", ".join(f"{library} ({requirement})" for library, requirement in missing)
        say(f"not instrumented: {names}; installed, each loads when its library is imported")
        say("  pip install " + " ".join(f"'{requirement}'" for _, requirement in missing))
    else:
        say("not instrumented: none (every library of the contrib's table that is installed has its instrumentation)")
    transport = Transport.from_env(config, env, timeout)
    service = config.service_name or "otel-launch-doctor"
    exporters = {"traces": config.traces_exporter, "metrics": config.metrics_exporter, "logs": config.logs_exporter}
    status = 0
    tls = "TLS" if transport.endpoint.startswith("https") else "no TLS"
    for signal in SIGNALS:
        if config.config_file is not None:  # the file's exporters, not the variables it replaces
            chosen = _file_delivery(config, signal, timeout)
            if isinstance(chosen, str):
                say(chosen)
                continue
            transport, url, headers = chosen
            answer = transport.send(signal, url, service, headers)
            status = status if answer.accepted else 1
            tls = "TLS" if url.startswith("https") else "no TLS"
            described = f"{transport.protocol} to {mask_url(url)}, {tls}, compression {transport.compression}"
            names = ",".join(headers) or "none"
            say(f"delivery: {signal} (from the file: {described}, headers {names}): {answer.text}")
            continue
        if "otlp" not in (exporters[signal] or ()):
            say(f"delivery: {signal}: not sent (the {signal} exporter is {','.join(exporters[signal]) or 'none'})")
            continue
        url = transport.url(signal, env)
        headers = transport.headers_for(signal, config)
        answer = transport.send(signal, url, service, headers)
        status = status if answer.accepted else 1
        described = f"{transport.protocol} to {mask_url(url)}, {tls}, compression {transport.compression}"
        header_names = ",".join(headers) or "none"
        say(f"delivery: {signal} ({described}, headers {header_names}): {answer.text}")
    say("result: " + ("every signal that is on was accepted" if status == 0 else "NOT every signal was accepted"))
    return status


def _command() -> click.Command:
    def doctor(command: tuple[str, ...], env_file: str | None, no_env_file: bool, timeout: float, **settings: Any):
        """Check the configuration and prove delivery: otel-launch doctor [OPTIONS] [-- COMMAND]."""
        if env_file is not None and no_env_file:
            raise _usage("--env-file and --no-env-file cannot be used together")
        chosen = None if no_env_file else (env_file if env_file is not None else _AUTO)
        try:
            config = Config(env_file=chosen, command=command, **{k: v for k, v in settings.items() if v is not None})
        except ConfigError as exc:
            raise _usage(str(exc)) from None
        return run_doctor(config, command, timeout)

    decorated: Any = click.argument("command", nargs=-1, type=click.UNPROCESSED)(doctor)
    decorated = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 120),
        default=5.0,
        show_default=True,
        help="Seconds to wait for the collector's answer, per signal.",
    )(decorated)
    decorated = configuration_options(decorated)
    return click.command(name="doctor", context_settings={"help_option_names": ["-h", "--help"]})(decorated)


class _UsageError(click.ClickException):
    exit_code = 2


def _usage(message: str) -> click.ClickException:
    return _UsageError(message)


doctor_command = _command()
