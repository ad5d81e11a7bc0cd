"""This process's service name, read from its own command line when the launcher could not name it.

``otel-launch ./entrypoint.sh`` starts a shell, whose command names no service; the Python
processes the script starts (``python manage.py migrate``, ``gunicorn shop.wsgi``) would all be
``unknown_service:python``. The launcher then sets ``NAME_FROM_COMMAND`` (``_core/__init__.py``), and
each of them, at interpreter start, reads its name from its own command by the launcher's rules
(``shop-manage``, ``shop-web``) and sets ``OTEL_SERVICE_NAME``: the SDK's resource is built later,
and what the process starts (a worker it forks, a subprocess) keeps the name, as a name the
launcher set is kept. One that finds none says so once, naming the fix.

The command line is ``sys.orig_argv``: the interpreter's own (``python /venv/bin/gunicorn ...``,
``python -m celery ...``), complete at interpreter start, where ``sys.argv`` still says ``-m`` for
the module (runpy puts its path there later), ``-c`` for the code. A program that embeds Python
(uWSGI) leaves it empty: then the kernel's copy, /proc/self/cmdline (Linux; elsewhere no name).
"""

from __future__ import annotations

import os
import sys

from otel_launch._core import NAME_FROM_COMMAND, QUIET, SAY

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import MutableMapping


def name_this_process(environ: MutableMapping[str, str] | None = None) -> None:
    """Set ``OTEL_SERVICE_NAME`` from this process's command when the launcher asked for it
    (``NAME_FROM_COMMAND``) and nothing names the process yet; else say so once."""
    environ = os.environ if environ is None else environ
    asked = environ.get(NAME_FROM_COMMAND)
    if asked is None:
        return
    if _named(environ):  # by the user, e.g. in the script, or by a process above
        del environ[NAME_FROM_COMMAND]
        return
    if asked not in (SAY, QUIET) and _is_the_launchers_own(asked):
        environ[NAME_FROM_COMMAND] = QUIET  # the launcher read this command: it names none
        return
    from otel_launch._core.service_name import derive_name, program_of

    command = _command_line()
    name = derive_name(command, os.getcwd(), environ) if command else None
    if name:
        environ["OTEL_SERVICE_NAME"] = name
        del environ[NAME_FROM_COMMAND]
        return
    if asked != QUIET:
        from otel_launch._runtime._log import warn

        environ[NAME_FROM_COMMAND] = QUIET  # said here, not again in what this process starts
        # The SDK's default: unknown_service:<executable>, which SDK releases spell differently
        # (the executable's name, or its path), so the line names only its stem.
        warn(
            f"no service name for this process ({program_of(command) or 'python'}): its telemetry is "
            "reported as the SDK's default, unknown_service; set OTEL_SERVICE_NAME to name it"
        )


def _named(environ: MutableMapping[str, str]) -> bool:
    """A name set: ``OTEL_SERVICE_NAME``, ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, or a
    configuration file (its resource is the whole resource): the launcher's rules."""
    if environ.get("OTEL_SERVICE_NAME", "").strip() or environ.get("OTEL_CONFIG_FILE", "").strip():
        return True
    attributes = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return any(pair.partition("=")[0].strip() == "service.name" for pair in attributes.split(","))


def _is_the_launchers_own(asked: str) -> bool:
    """Whether this is the process the launcher exec'd (``"<pid>:<path>"``): the same pid, and the
    file it exec'd is this interpreter (``python ...``, or a program embedding it) or the script
    it runs (a console script, ``./run.py``). A shell script's ``exec python ...`` keeps the pid
    but runs another file: it is not the launcher's own."""
    pid, _, path = asked.partition(":")
    if pid != str(os.getpid()) or not path:
        return False
    if any(os.path.abspath(arg) == path for arg in sys.orig_argv[1:]):
        return True
    try:
        return os.path.samefile(path, sys.executable)
    except (OSError, ValueError):
        return False


def _command_line() -> list[str]:
    """This process's command line: ``sys.orig_argv``, or /proc/self/cmdline when it is empty."""
    if sys.orig_argv:
        return list(sys.orig_argv)
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            raw = handle.read(64 * 1024)
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]]
