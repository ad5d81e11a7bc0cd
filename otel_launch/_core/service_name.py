"""A default service name read from the command, when the user set none.

Without one, every process is ``unknown_service:python``: web and worker of one app look the
same. The launcher knows the command it starts, so ``otel-launch gunicorn shop.wsgi`` runs as
``shop-web``, ``otel-launch celery -A shop worker`` as ``shop-worker``. The name is the project
(the Django project or Celery app the command names) and the role:

====================================================================  ========
command                                                               role
====================================================================  ========
gunicorn, uwsgi / pyuwsgi, uvicorn, granian, daphne, hypercorn,
``manage.py runserver``                                               ``web``
``celery worker`` / ``beat`` / ``flower`` / ``events``                the same
any other ``celery`` command                                          ``celery``
``manage.py <command>``, ``django-admin <command>``                   ``manage``
====================================================================  ========

The project is the first part of the app module the command names (``shop.wsgi``,
``shop.asgi:application``, ``-A shop``, uWSGI's ``--module``, ``--wsgi-file shop/wsgi.py`` or
the same keys in its ``--ini`` file), else of ``DJANGO_SETTINGS_MODULE`` (the environment's,
``--settings``, or the one ``manage.py`` sets), else the working directory's name. A part that
names no project (``config``, ``app``, ``src``, ...: cookiecutter-django's ``config.wsgi``) is
passed over for the next source. Names are lower case, ``_`` becomes ``-``.

Pure functions of the command line, the working directory and the environment (a reader of
small files is passed in for ``manage.py`` and uWSGI's ini file): stdlib only, and no regular
expression: this runs before every launch, where importing ``re`` (with ``enum``) would cost more
than the rest of the launcher's own code, and at the start of a Python process the launcher could
not name itself.

Both sides read the same rules. The launcher names the command it starts (``--print-config``
says where the name came from); when it names none and the user set none, it sets
``NAME_FROM_COMMAND`` (``otel_launch/_core/__init__.py``) in the command's environment, and each
Python process started under it (by a shell script, say) reads its own name from its own command
line at interpreter start (``otel_launch/_runtime/_service_name.py``).
"""

from __future__ import annotations

import os

from otel_launch._core.parsers import DIGITS, LETTERS, LOWER
from otel_launch._core.records import record

TYPE_CHECKING = False  # typing is not imported when the launcher starts (see Setting)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

# What starts a name in a Python module path (``\w`` continues it: str.isalnum() or "_").
_NAME_START = frozenset("_" + LETTERS)
# What a service name keeps; any other run of characters becomes one "-".
_SERVICE_NAME_CHARACTERS = frozenset(LOWER + DIGITS + ".-")
# First parts that name no project: passed over for the next source.
_GENERIC = frozenset(
    {
        "config", "conf", "configs", "settings", "app", "apps", "application", "src", "source", "core",
        "project", "projects", "main", "server", "servers", "site", "web", "www", "wsgi", "asgi", "backend",
        "django", "code", "srv", "opt", "workspace", "workdir", "home", "root", "tmp", "service", "services",
    }
)  # fmt: skip
_WEB_SERVERS = frozenset({"gunicorn", "uvicorn", "granian", "daphne", "hypercorn", "uwsgi", "pyuwsgi"})
_CELERY_ROLES = {"worker": "worker", "beat": "beat", "flower": "flower", "events": "events"}
# gunicorn's options that take no value (its parser's, gunicorn 27: tests/unit/launcher/test_service_name.py
# compares them with the installed gunicorn's). Every other option takes one (``--certfile
# cert.pem``, ``-p app.pid``), which is never taken for the app; an option gunicorn adds later
# is taken to have a value, so at worst the app is missed, never a value taken for it.
_GUNICORN_FLAGS = frozenset(
    {
        "-h", "--help", "-v", "--version", "--reload", "--spew", "--check-config", "--print-config", "--preload",
        "--no-sendfile", "--reuse-port", "-D", "--daemon", "--initgroups", "--disable-redirect-access-to-syslog",
        "--capture-output", "--log-syslog", "-R", "--enable-stdio-inheritance", "--enable-backlog-metric",
        "--suppress-ragged-eofs", "--do-handshake-on-connect", "--permit-obsolete-folding", "--strip-header-spaces",
        "--permit-unconventional-http-method", "--permit-unconventional-http-version", "--casefold-http-method",
        "--no-control-socket", "--proxy-protocol",
    }
)  # fmt: skip
# Options of the other servers whose value may look like a module path, so it is never taken for the app.
_VALUE_OPTIONS = {
    "uvicorn": {"--app-dir", "--env-file", "--log-config", "--loop", "--http", "--ws", "--uds", "--host",
                "--root-path", "--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certs"},
}  # fmt: skip
_CELERY_VALUE_OPTIONS = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}
_SETTINGS_KEY = "DJANGO_SETTINGS_MODULE"
_QUOTES = ("'", '"')
_PYTHON_VALUE_OPTIONS = {"-W", "-X", "-Q"}
_MAX_READ = 64 * 1024
_MAX_REASON = 160


_DerivedRecord: Any = record("Derived", ["name", "reason"])


class Derived(_DerivedRecord):
    """A service name and what it was read from (for ``--print-config`` and the doctor; a named
    tuple: typing is not imported when the launcher starts)."""

    __slots__ = ()
    name: str
    reason: str


def read_small_file(path: str) -> str | None:
    """The text of a small file (the first 64 KiB), or None when it cannot be read.

    Only a regular file: ``--ini /dev/stdin`` or a named pipe is read by uWSGI itself, and
    reading it here would take what it holds from uWSGI (or wait for a writer for good), and
    opening a pipe at all would let its writer go on to write to no one. So the path is
    looked at before it is opened, and what was opened is looked at again.
    """
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never waits, were it replaced by a pipe
        with open(descriptor, encoding="utf-8", errors="replace") as handle:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # replaced in between
                return None
            return handle.read(_MAX_READ)
    except (OSError, ValueError):
        return None


def derive(
    command: Sequence[str],
    cwd: str,
    environ: Mapping[str, str],
    read: Callable[[str], str | None] = read_small_file,
) -> Derived | None:
    """The default service name for ``command``, or None when it is not one we know."""
    found = _derived(command, cwd, environ, read)
    if found is None:
        return None
    name, program, (kind, text), role = found
    return Derived(name, _shown(f"derived from the command ({program}: {kind} {_short(text)}, role {role})"))


def derive_name(
    command: Sequence[str],
    cwd: str,
    environ: Mapping[str, str],
    read: Callable[[str], str | None] = read_small_file,
) -> str | None:
    """The name alone, as :func:`derive` reads it: no reason to show, so nothing is masked (the
    masker may import ``re``, which a process starting should not pay for)."""
    found = _derived(command, cwd, environ, read)
    return None if found is None else found[0]


def program_of(command: Sequence[str]) -> str:
    """What a command runs, for a message: ``python script.py`` -> ``script``, ``python -m
    celery.__main__`` -> ``celery``, ``python -c ...`` -> ``python -c`` (its code is not shown)."""
    if not command:
        return ""
    program = _program(list(command))[0]
    if program:
        return program
    name = os.path.basename(command[0])
    return f"{name} -c" if _is_python(name) and "-c" in command[1:] else name


def _derived(
    command: Sequence[str], cwd: str, environ: Mapping[str, str], read: Callable[[str], str | None]
) -> tuple[str, str, tuple[str, str], str] | None:
    """(name, program, (what the project was read from, its text), role), or None."""
    program, args, script = _program(list(command))
    if program is None:
        return None
    script = os.path.normpath(os.path.join(cwd, script)) if script else ""
    found = _role_and_app(program, args, script, cwd, read)
    if found is None:
        return None
    role, app, settings = found
    folder = os.path.dirname(script) if script else cwd  # manage.py's project folder
    settings = settings or environ.get("DJANGO_SETTINGS_MODULE", "")
    project, source = _project(app, settings, folder)
    if not project:
        return None
    return f"{project}-{role}", program, source, role


def _shown(reason: str) -> str:
    """The reason as it may be printed: the command's text masked (a URL's password, a
    ``--password=`` value), then capped (after masking: a cut never leaves half a secret)."""
    from otel_launch._core.masking import mask_text

    reason = mask_text(reason)
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


def _program(command: list[str]) -> tuple[str | None, list[str], str]:
    """The program a command runs, its arguments and the script's path (``python manage.py``),
    seen through ``python [options] [-m module | script]``."""
    if not command:
        return None, [], ""
    name = os.path.basename(command[0])
    args = command[1:]
    if not _is_python(name):
        return _normalised(name), args, command[0] if name == "manage.py" else ""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m" and index + 1 < len(args):
            return _normalised(args[index + 1]), args[index + 2 :], ""
        if arg.startswith("-m") and len(arg) > 2:
            return _normalised(arg[2:]), args[index + 1 :], ""
        if arg in ("-c", "-"):
            return None, [], ""
        if not arg.startswith("-"):  # a script: only manage.py is one we know
            return _normalised(os.path.basename(arg)), args[index + 1 :], arg
        index += 2 if arg in _PYTHON_VALUE_OPTIONS else 1
    return None, [], ""


def _is_python(name: str) -> bool:
    """``python``, ``python3``, ``python3.12``: an interpreter, whose arguments name the script."""
    if not name.startswith("python"):
        return False
    version = name[len("python") :]
    major, dot, minor = version.partition(".")
    return not version or (major.isdecimal() and (not dot or minor.isdecimal()))


def _is_word(text: str, also: str = "") -> bool:
    return all(char.isalnum() or char == "_" or char in also for char in text)


def _is_module_path(arg: str) -> bool:
    """A Python module path, optionally ``:attribute`` (gunicorn's ``module:app()`` call included)."""
    module, colon, attribute = arg.partition(":")
    for part in module.split("."):
        if not part or part[0] not in _NAME_START or not _is_word(part[1:]):
            return False
    if not colon:
        return True
    head, call, arguments = attribute.partition("(")
    if not head or head[0] not in _NAME_START or not _is_word(head[1:], "."):
        return False
    return not call or (arguments.endswith(")") and "\n" not in arguments)


def _settings_in(text: str) -> str:
    """The module of ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")`` in a
    ``manage.py`` (the first such call), or ""."""
    start = text.find(_SETTINGS_KEY)
    while start != -1:
        index = start + len(_SETTINGS_KEY)
        if text[index : index + 1] in _QUOTES:
            index = _after_spaces(text, index + 1)
            if text[index : index + 1] == ",":
                index = _after_spaces(text, index + 1)
                if text[index : index + 1] in _QUOTES:
                    end = index + 1
                    while end < len(text) and (text[end].isalnum() or text[end] in "_."):
                        end += 1
                    if end > index + 1 and text[end : end + 1] in _QUOTES:
                        return text[index + 1 : end]
        start = text.find(_SETTINGS_KEY, start + 1)
    return ""


def _after_spaces(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _normalised(program: str) -> str:
    if program == "manage.py":
        return "manage.py"
    if program in ("django", "django-admin", "django-admin.py"):
        return "django-admin"
    return program.removesuffix(".py").partition(".")[0]  # python -m celery.__main__ -> celery


def _role_and_app(
    program: str, args: list[str], script: str, cwd: str, read: Callable[[str], str | None]
) -> tuple[str, str, str] | None:
    """(role, app module or path, settings module) for a program we know."""
    if program == "celery":
        return _celery(args)
    if program in ("manage.py", "django-admin"):
        command = next((arg for arg in args if not arg.startswith("-")), "")
        settings = _option_value(args, "--settings")
        if program == "manage.py" and not settings:
            text = read(script)
            settings = _settings_in(text or "")
        return ("web" if command == "runserver" else "manage"), "", settings
    if program in ("uwsgi", "pyuwsgi"):
        return "web", _uwsgi_app(args, cwd, read), ""
    if program in _WEB_SERVERS:
        return "web", _app_argument(args, _VALUE_OPTIONS.get(program, _VALUE_OPTIONS["uvicorn"]), program), ""
    return None


def _option_value(args: list[str], *names: str) -> str:
    """The value of an option given as ``--name value``, ``--name=value`` or ``-Nvalue``."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
            if len(name) == 2 and arg.startswith(name) and len(arg) > 2 and not arg.startswith("--"):
                return arg[2:]
    return ""


def _celery(args: list[str]) -> tuple[str, str, str]:
    app = _option_value(args, "-A", "--app")
    subcommand, skip = "", False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _CELERY_VALUE_OPTIONS
        else:
            subcommand = arg
            break
    return _CELERY_ROLES.get(subcommand, "celery"), app, ""


def _takes_a_value(arg: str, program: str, value_options: set[str]) -> bool:
    """Whether the argument after ``arg`` (an option) is its value."""
    if "=" in arg:
        return False
    if program != "gunicorn":
        return arg in value_options
    if arg.startswith("--") or len(arg) == 2:
        return arg not in _GUNICORN_FLAGS
    return False  # -w4, -b0.0.0.0:8000 (the value attached), or -DR (flags together)


def _app_argument(args: list[str], value_options: set[str], program: str) -> str:
    """The app a web server serves: ``module:attribute`` (or a module, for gunicorn)."""
    candidates, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = _takes_a_value(arg, program, value_options)
        elif _is_module_path(arg):
            candidates.append(arg)
    with_attribute = [arg for arg in candidates if ":" in arg]
    if with_attribute:
        return with_attribute[0]
    dotted = [arg for arg in candidates if "." in arg] if program == "gunicorn" else []
    return dotted[0] if dotted else ""


def _uwsgi_app(args: list[str], cwd: str, read: Callable[[str], str | None]) -> str:
    module = _option_value(args, "--module", "-w", "--wsgi")
    if module:
        return module
    path = _option_value(args, "--wsgi-file", "--file")
    if path:
        return path
    ini = _option_value(args, "--ini") or next((arg for arg in args if arg.endswith(".ini")), "")
    if ini:
        return _uwsgi_ini_app(ini, cwd, read)
    return ""


def _uwsgi_ini_app(ini: str, cwd: str, read: Callable[[str], str | None]) -> str:
    """``module``/``wsgi``/``wsgi-file`` of the ``[uwsgi]`` section (or ``file.ini:section``)."""
    path, _, section = ini.partition(":")
    text = read(path if os.path.isabs(path) else os.path.join(cwd, path))
    if not text:
        return ""
    wanted, current = section or "uwsgi", ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == wanted and "=" in line and not line.startswith((";", "#")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip().replace("_", "-"), value.strip())
    return found.get("module") or found.get("wsgi") or found.get("wsgi-file") or found.get("file") or ""


def _project(app: str, settings: str, folder: str) -> tuple[str, tuple[str, str]]:
    """The project's name, and where it was read: the app, the settings module, or the folder
    (what, and its text)."""
    candidates = [
        (_first_part(app), ("app", app)),
        (_first_part(settings), ("settings", settings)),
        (os.path.basename(os.path.normpath(folder)), ("folder", folder)),
    ]
    usable = [(name, source) for name, source in candidates if name]
    name, source = next(
        ((n, s) for n, s in usable if n.lower() not in _GENERIC), usable[0] if usable else ("", ("", ""))
    )
    kept: list[str] = []
    in_other_run = False  # one "-" for a run of other characters
    for char in name.lower().replace("_", "-"):
        if char in _SERVICE_NAME_CHARACTERS:
            kept.append(char)
            in_other_run = False
        elif not in_other_run:
            kept.append("-")
            in_other_run = True
    return "".join(kept).strip("-."), source


def _short(text: str) -> str:
    from otel_launch._core.masking import mask_text

    text = mask_text(text)  # before the cut, which could leave a secret its rule no longer finds
    return text if len(text) <= 60 else text[:57] + "..."


def _first_part(app: str) -> str:
    """``shop`` of ``shop.wsgi:application``; of a path ``shop/wsgi.py``, its folder (or its name)."""
    if not app:
        return ""
    if "/" in app or app.endswith(".py"):
        path = os.path.normpath(app)
        folder, name = os.path.basename(os.path.dirname(path)), os.path.basename(path).removesuffix(".py")
        return folder if name in ("wsgi", "asgi", "app", "main") and folder else name
    return app.partition(":")[0].split(".")[0]
