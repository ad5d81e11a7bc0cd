"""Replace the launcher with the target: same PID, so signals and exit status are the target's."""

from __future__ import annotations

import os
import stat
import sys

from otel_launch._launcher.config import Config

TYPE_CHECKING = False  # typing is not imported when the launcher starts (see Setting)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

# Exit statuses a shell uses for these cases, so scripts that check them keep working.
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


class LaunchError(Exception):
    """The target cannot be started; carries the shell-compatible exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _is_executable_file(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and os.access(path, os.X_OK)


def resolve_executable(name: str, env: Mapping[str, str]) -> str:
    """Find ``name`` the way a shell does, with its 127 (not found) and 126 (not executable)."""
    if os.sep in name:
        if not os.path.exists(name):
            raise LaunchError(f"{name}: command not found", EXIT_NOT_FOUND)
        if not _is_executable_file(name):
            raise LaunchError(f"{name}: not an executable file (permission denied)", EXIT_NOT_EXECUTABLE)
        return name
    found_but_not_executable = None
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if _is_executable_file(candidate):
            return candidate
        if found_but_not_executable is None and os.path.isfile(candidate):
            found_but_not_executable = candidate
    if found_but_not_executable:
        raise LaunchError(
            f"{found_but_not_executable}: not an executable file (permission denied)", EXIT_NOT_EXECUTABLE
        )
    raise LaunchError(f"{name}: command not found", EXIT_NOT_FOUND)


def exec_target(command: Sequence[str], config: Config) -> None:
    """Exec ``command`` with the configured environment. Returns only by raising LaunchError."""
    # The child's PATH is the launcher's: only OTEL_* and PYTHONPATH differ.
    path = resolve_executable(command[0], config.environ)
    env = config.child_env(executable=path)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, list(command), env)
    except OSError as exc:  # e.g. a script with a bad interpreter line
        raise LaunchError(f"{command[0]}: cannot execute ({exc.strerror})", EXIT_NOT_EXECUTABLE) from None


def launch(command: Sequence[str], config: Config | None = None, **settings: Any) -> None:
    """Programmatic twin of ``otel-launch [OPTIONS] COMMAND``: never returns on success."""
    if not command:
        raise ValueError("no command given")
    exec_target(command, config if config is not None else Config(command=command, **settings))
