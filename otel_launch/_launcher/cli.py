"""The ``otel-launch`` command line, generated from the settings table.

Click parses structure only: every setting arrives as text and is validated by
:class:`~otel_launch._launcher.config.Config`, so a value is judged the same way whether it came
from a flag, the environment or an env file.

The launcher sits in front of every process start, so the common form
``otel-launch [--setting VALUE]... [--] COMMAND`` is parsed without importing click
(:func:`parse_plain_launch`, ~20 ms saved, from the same table). Everything else (help,
``--version``, ``--print-config``, subcommands and every malformed command line) goes
through click; tests check that both parsers agree.
"""

from __future__ import annotations

import os
import sys

from otel_launch._core.records import record
from otel_launch._core.settings import SETTINGS
from otel_launch._launcher.config import _AUTO, Config, ConfigError
from otel_launch._launcher.launch import LaunchError, exec_target
from otel_launch._version import __version__

TYPE_CHECKING = False  # typing is not imported when the launcher starts (see Setting)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PROG = "otel-launch"
USAGE_ERROR = 2
# Subcommands are reserved first words; a program with such a name is launched after "--".
SUBCOMMAND_NAMES = ("tail", "ui", "doctor")
_SETTING_BY_FLAG = {flag: setting.name for setting in SETTINGS for flag in setting.flags}


def fail(message: str, status: int = USAGE_ERROR) -> None:
    """One line on stderr and a non-zero exit: the contract for every bad input."""
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(status)


_LaunchRequestRecord: Any = record(
    "LaunchRequest",
    ["command", "settings", "env_file", "no_env_file", "print_config", "separated"],
    (None, False, False, False),
)


class LaunchRequest(_LaunchRequestRecord):
    """A parsed ``otel-launch`` command line, whichever parser read it (a named tuple: typing is
    not imported when the launcher starts)."""

    __slots__ = ()
    command: list[str]
    settings: dict  # an option's name -> its value, as click or the plain parser read it
    env_file: str | None
    no_env_file: bool
    print_config: bool
    separated: bool  # the command came after "--"


def parse_plain_launch(args: Sequence[str]) -> LaunchRequest | None:
    """Parse ``[--setting VALUE | --setting=VALUE | --env-file PATH | --no-env-file]... [--] COMMAND``.

    Returns None for anything else, which click then parses (and explains, if wrong).
    """
    settings: dict[str, str] = {}
    env_file, no_env_file, separated = None, False, False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            separated = True
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, has_value, value = arg.partition("=")
        if name == "--no-env-file" and not has_value:
            no_env_file = True
            index += 1
            continue
        if name != "--env-file" and name not in _SETTING_BY_FLAG:
            return None
        if not has_value:
            if index + 1 >= len(args):
                return None
            value = args[index + 1]
        index += 1 if has_value else 2
        if name == "--env-file":
            env_file = value
        else:
            settings[_SETTING_BY_FLAG[name]] = value
    command = list(args[index:])
    if not command or (command[0] in SUBCOMMAND_NAMES and not separated):
        return None
    return LaunchRequest(command, settings, env_file, no_env_file, separated=separated)


def show_config(config: Config) -> None:
    rows = [("FLAG", "VARIABLE", "VALUE", "SOURCE"), *config.rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{PROG} {__version__}: flags > environment > env file ({config.env_file or 'none'}) > defaults")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=False)) + "  " + row[3])
    for warning in config.warnings:
        print(f"warning: {warning}")


def run(request: LaunchRequest) -> None:
    """Validate, then exec the target or print the configuration. Never returns on exec."""
    if request.env_file is not None and request.no_env_file:
        fail("--env-file and --no-env-file cannot be used together")
    env_file = None if request.no_env_file else (request.env_file if request.env_file is not None else _AUTO)
    try:
        config = Config(env_file=env_file, command=request.command, **request.settings)
    except ConfigError as exc:
        fail(str(exc))
    if request.print_config:
        show_config(config)
        sys.exit(0)
    if not request.command:
        fail(f"no command given; usage: {PROG} [OPTIONS] [--] COMMAND [ARGS]...")
    name = request.command[0]
    if name in SUBCOMMAND_NAMES and not request.separated:
        fail(
            f"'{name}' is an {PROG} subcommand and takes no launcher options; to launch a program named {name}, "
            f"put it after '--'"
        )
    for warning in config.warnings:
        sys.stderr.write(f"{PROG}: warning: {warning}\n")
    try:
        exec_target(request.command, config)
    except LaunchError as exc:
        fail(str(exc), exc.status)


def _complete_command(ctx, param, incomplete: str) -> list:
    """COMMAND's completions: a subcommand or a program on PATH first, then the program's files."""
    from click.shell_completion import CompletionItem

    if ctx.params.get("command") or "/" in incomplete:  # the program's arguments, or a path to it
        return [CompletionItem(incomplete, type="file")]
    found = {name for name in SUBCOMMAND_NAMES if name.startswith(incomplete)}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        try:
            with os.scandir(folder or ".") as entries:
                found.update(
                    entry.name
                    for entry in entries
                    if entry.name.startswith(incomplete) and entry.is_file() and os.access(entry.path, os.X_OK)
                )
        except OSError:
            continue
    return [CompletionItem(name) for name in sorted(found)]


def _click_launch_command():  # click is imported here, off the fast path
    import click

    from otel_launch._launcher.options import configuration_options

    class LaunchCommand(click.Command):
        def shell_complete(self, ctx: click.Context, incomplete: str) -> list:
            """Past COMMAND, a word starting with '-' is the program's option, not ours."""
            if ctx.params.get("command"):
                return _complete_command(ctx, None, incomplete)
            return super().shell_complete(ctx, incomplete)

    def launch_command(command: tuple[str, ...], **options: object) -> None:
        """Run COMMAND with OpenTelemetry set up: otel-launch [OPTIONS] [--] COMMAND [ARGS]..."""
        ctx = click.get_current_context()
        args = ctx.obj["args"]
        settings = {s.name: options.pop(s.name) for s in SETTINGS if s.name in options}
        ctx.obj["request"] = LaunchRequest(
            command=list(command),
            settings={name: value for name, value in settings.items() if value is not None},
            separated="--" in args[: len(args) - len(command)],
            **options,
        )

    # Decorators apply bottom-up and help lists the last applied first: settings come first.
    decorated = click.argument("command", nargs=-1, type=click.UNPROCESSED, shell_complete=_complete_command)(
        launch_command
    )
    decorated = click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")(
        decorated
    )
    decorated = click.option(
        "--print-config", is_flag=True, help="Show resolved settings and where each came from; exit 0."
    )(decorated)
    decorated = configuration_options(decorated)
    return click.command(
        cls=LaunchCommand,
        name=PROG,
        context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
        epilog="Subcommands: 'otel-launch tail --help' runs a local OTLP receiver that prints traces. "
        "Each setting also reads its variable; flags win over the environment, which wins over the env file. "
        "A program named like a subcommand is launched after '--'.",
    )(decorated)


def parse_with_click(args: Sequence[str], prog: str = PROG) -> LaunchRequest | None:
    """Parse with click; returns None when click handled it all (help, version)."""
    import click

    obj: dict = {"args": list(args)}
    command = _click_launch_command()
    try:
        command.main(list(args), prog_name=prog, standalone_mode=False, obj=obj)
    except click.ClickException as exc:
        fail(f"{exc.format_message()} (see '{prog} --help')", exc.exit_code or USAGE_ERROR)
    return obj.get("request")


def _run_subcommand(name: str, args: list[str]) -> None:
    import click

    if name == "tail":
        from otel_launch.local.tail import tail_command as command
    elif name == "ui":
        from otel_launch.local.ui import ui_command as command
    else:
        from otel_launch._launcher.doctor import doctor_command as command

    prog = f"{PROG} {name}"
    try:
        status = command.main(args, prog_name=prog, standalone_mode=False)
        if isinstance(status, int):
            sys.exit(status)
    except click.ClickException as exc:
        fail(f"{exc.format_message()} (see '{prog} --help')", exc.exit_code or USAGE_ERROR)
    except click.Abort:
        sys.exit(130)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMAND_NAMES:
        _run_subcommand(args[0], args[1:])
        sys.exit(0)
    request = parse_plain_launch(args)
    if request is None:
        request = parse_with_click(args)
        if request is None:  # --help or --version, already printed
            sys.exit(0)
    run(request)
    sys.exit(0)
