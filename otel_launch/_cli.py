"""The ``otel-launch`` command line, generated from the settings table.

Click parses structure only: every setting arrives as text and is validated by
:class:`~otel_launch._config.Config`, so a value is judged the same way whether it came
from a flag, the environment or an env file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from otel_launch._config import _AUTO, Config, ConfigError
from otel_launch._launch import LaunchError, exec_target
from otel_launch._settings import SETTINGS
from otel_launch._version import __version__

PROG = "otel-launch"
USAGE_ERROR = 2


def fail(message: str, status: int = USAGE_ERROR) -> None:
    """One line on stderr and a non-zero exit: the contract for every bad input."""
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(status)


def _help_for(setting: Any) -> str:
    default = f"; default: {setting.default}" if setting.default is not None else ""
    return f"{setting.help} [env: {setting.env}{default}]"


def _setting_options(function: Any) -> Any:
    for setting in reversed(SETTINGS):
        function = click.option(
            *setting.flags,
            setting.name,
            default=None,
            metavar="TEXT",
            help=_help_for(setting),
        )(function)
    return function


# Subcommands are reserved first words; a program with such a name is launched after "--".
def _subcommands() -> dict[str, click.Command]:
    from otel_launch._tail import tail_command

    return {"tail": tail_command}


SUBCOMMAND_NAMES = ("tail",)


def show_config(config: Config) -> None:
    rows = [("FLAG", "VARIABLE", "VALUE", "SOURCE"), *config.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    env_file = config.env_file or "none"
    click.echo(f"{PROG} {__version__}: flags > environment > env file ({env_file}) > defaults")
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False)) + "  " + row[3])
    for warning in config.warnings:
        click.echo(f"warning: {warning}")


@click.command(
    name=PROG,
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
    epilog="Subcommands: 'otel-launch tail --help' runs a local OTLP receiver that prints traces. "
    "Settings also read their OTEL_* variable; flags win over the environment, which wins over the "
    "env file. Run a program named like a subcommand after '--'.",
)
@_setting_options
@click.option("--env-file", "env_file", metavar="PATH", default=None, help="Read OTEL_* settings from this file.")
@click.option("--no-env-file", is_flag=True, help="Do not read ./.env.")
@click.option("--print-config", is_flag=True, help="Show the resolved settings and where each came from; exit 0.")
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def launch_command(
    ctx: click.Context,
    command: tuple[str, ...],
    env_file: str | None,
    no_env_file: bool,
    print_config: bool,
    **settings: str | None,
) -> None:
    """Run COMMAND with OpenTelemetry set up: otel-launch [OPTIONS] [--] COMMAND [ARGS]..."""
    if env_file is not None and no_env_file:
        fail("--env-file and --no-env-file cannot be used together")
    try:
        config = Config(env_file=None if no_env_file else (env_file if env_file is not None else _AUTO), **settings)
    except ConfigError as exc:
        fail(str(exc))
    if print_config:
        show_config(config)
        return
    if not command:
        fail(f"no command given; usage: {PROG} [OPTIONS] [--] COMMAND [ARGS]...")
    args = (ctx.obj or {}).get("args", list(command))
    separated = "--" in args[: len(args) - len(command)]
    if command[0] in SUBCOMMAND_NAMES and not separated:
        fail(
            f"'{command[0]}' is an {PROG} subcommand and takes no launcher options; to launch a program "
            f"named {command[0]}, put it after '--'"
        )
    for warning in config.warnings:
        click.echo(f"{PROG}: warning: {warning}", err=True)
    try:
        exec_target(command, config)
    except LaunchError as exc:
        fail(str(exc), exc.status)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMAND_NAMES:
        command, args, prog = _subcommands()[args[0]], args[1:], f"{PROG} {args[0]}"
    else:
        command, prog = launch_command, PROG
    try:
        command.main(args, prog_name=prog, standalone_mode=False, obj={"args": args})
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        fail(f"{exc.format_message()} (see '{prog} --help')", exc.exit_code or USAGE_ERROR)
    sys.exit(0)
