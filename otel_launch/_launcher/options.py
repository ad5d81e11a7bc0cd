"""The click options every command that resolves a configuration takes: one per setting of the
table (its flags, its variable and default in the help), then ``--env-file`` and ``--no-env-file``.
The launch and ``otel-launch doctor`` take the same, so that the doctor checks what a launch does."""

from __future__ import annotations

from collections.abc import Callable

import click

from otel_launch._core.settings import SETTINGS, Setting

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def help_for(setting: Setting) -> str:
    default = f"; default: {setting.default}" if setting.default is not None else ""
    return f"{setting.help} [env: {setting.env}{default}]"


def configuration_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates a command's function; help lists the settings first (decorators apply bottom-up)."""
    decorated = click.option("--no-env-file", is_flag=True, help="Do not read ./.env.")(function)
    decorated = click.option(
        "--env-file", "env_file", metavar="PATH", default=None, help="Read OTEL_* settings from this file."
    )(decorated)
    for setting in reversed(SETTINGS):
        decorated = click.option(*setting.flags, setting.name, default=None, metavar="TEXT", help=help_for(setting))(
            decorated
        )
    return decorated
