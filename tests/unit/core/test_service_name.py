"""Default service names read from a command (otel_launch/_core/service_name.py): the command the launcher
starts, and the command line a Python process sees at its start."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_launch._core.service_name import derive, derive_name, program_of

MANAGE_PY = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")\n'
UWSGI_INI = "[uwsgi]\nhttp = :8000\nmodule = shop.wsgi:application\nmaster = true\n\n[other]\nmodule = nope.wsgi\n"
FILES = {
    "/srv/repo/manage.py": MANAGE_PY,
    "/srv/repo/src/manage.py": MANAGE_PY,
    "/srv/repo/deploy/uwsgi.ini": UWSGI_INI,
}

DERIVED = [
    ("gunicorn shop.wsgi -w 4", "shop-web"),
    ("gunicorn -w 4 -b 0.0.0.0:8000 shop.wsgi:application", "shop-web"),
    ("gunicorn -k uvicorn.workers.UvicornWorker shop.asgi:application", "shop-web"),
    ("gunicorn --config python:shop.gunicorn_conf my_shop.wsgi", "my-shop-web"),
    ("python -m gunicorn shop.wsgi", "shop-web"),
    ("uwsgi --http :8000 --module shop.wsgi --master --processes 2", "shop-web"),
    ("uwsgi --http :8000 --module=shop.wsgi:application", "shop-web"),
    ("uwsgi --http :8000 -w shop.wsgi", "shop-web"),
    ("uwsgi --http :8000 --wsgi-file shop/wsgi.py", "shop-web"),
    ("uwsgi --ini deploy/uwsgi.ini", "shop-web"),
    ("pyuwsgi deploy/uwsgi.ini", "shop-web"),
    ("uvicorn --host api.example.com --port 8000 shop.asgi:application", "shop-web"),
    ("granian --interface asgi --workers 2 shop.asgi:application", "shop-web"),
    ("daphne -b 0.0.0.0 -p 8000 shop.asgi:application", "shop-web"),
    ("hypercorn -b localhost:8000 shop.asgi:application", "shop-web"),
    ("celery -A shop worker --concurrency 8", "shop-worker"),
    ("celery --app=shop.celery:app beat", "shop-beat"),
    ("celery -Ashop flower", "shop-flower"),
    ("celery -A shop inspect active", "shop-celery"),
    ("python -m celery -A shop worker -P solo", "shop-worker"),
    ("/usr/local/bin/python3.12 -u -m celery -A shop worker", "shop-worker"),
    ("python manage.py migrate", "shop-manage"),  # the settings manage.py sets
    ("python src/manage.py migrate", "shop-manage"),
    ("./manage.py runserver 0.0.0.0:8000", "shop-web"),
    ("python -X dev manage.py place_orders", "shop-manage"),
    ("django-admin migrate --settings=shop.settings", "shop-manage"),
    ("python -m django check --settings shop.settings", "shop-manage"),
    ("gunicorn --certfile cert.pem --keyfile key.pem shop.wsgi", "shop-web"),  # values that look like modules
    ("gunicorn --error-logfile gunicorn.log -p app.pid --access-logfile - shop.wsgi", "shop-web"),
    ("gunicorn --preload -D --reload shop.wsgi -w4 -b0.0.0.0:8000", "shop-web"),  # flags take no value
    ("gunicorn --worker-tmp-dir /dev/shm -u www.data -g www.data shop.wsgi", "shop-web"),
    ("gunicorn config.wsgi", "repo-web"),  # cookiecutter-django: "config" names no project, the folder does
]


def _read(path: str) -> str | None:
    return FILES.get(path)


@pytest.mark.parametrize(("command", "name"), DERIVED, ids=[command for command, _ in DERIVED])
def test_names_read_from_the_command(command, name):
    derived = derive(command.split(), "/srv/repo", {}, _read)
    assert derived is not None and derived.name == name
    assert derived.reason.startswith("derived from the command (")


def test_the_settings_module_names_the_project_when_the_app_does_not():
    derived = derive(["gunicorn", "config.wsgi"], "/app", {"DJANGO_SETTINGS_MODULE": "bookshop.settings.prod"}, _read)
    assert derived.name == "bookshop-web" and "settings bookshop.settings.prod" in derived.reason
    # nothing better anywhere: the app's first part, rather than no name
    assert derive(["gunicorn", "config.wsgi"], "/app", {}, _read).name == "config-web"


@pytest.mark.parametrize(
    "command",
    ["python -c pass", "python script.py", "bash -c true", "node server.js", "python", "uwsgi --http :8000", ""],
)
def test_no_name_for_commands_it_does_not_know(command):
    assert derive(command.split(), "/", {}, _read) is None


def test_an_unreadable_ini_or_manage_py_is_no_error():
    assert derive(["uwsgi", "--ini", "missing.ini"], "/", {}, _read) is None
    assert derive(["python", "manage.py", "migrate"], "/srv/elsewhere", {}, _read).name == "elsewhere-manage"


@pytest.mark.parametrize(
    "command",
    [
        ["uwsgi", "--wsgi-file=https://deploy:hunter2@example.com/shop/wsgi.py"],
        ["django-admin", "migrate", "--settings=shop.settings?password=hunter2"],
        ["uwsgi", "--module", "shop.wsgi:application?token=hunter2"],
    ],
    ids=["url-password", "password-pair", "token-pair"],
)
def test_the_reason_printed_masks_secrets_in_the_command(command):
    derived = derive(command, "/srv/repo", {}, _read)
    assert derived is not None and "hunter2" not in derived.reason and "***" in derived.reason, derived


def test_gunicorns_options_without_a_value_are_the_installed_gunicorns():
    """The table the launcher keeps (it never imports gunicorn) against gunicorn's own parser."""
    from gunicorn.config import Config as GunicornConfig

    from otel_launch._core.service_name import _GUNICORN_FLAGS

    parser = GunicornConfig().parser()
    flags = {option for action in parser._actions if action.nargs in (0, "?") for option in action.option_strings}
    assert flags == _GUNICORN_FLAGS


# The launcher reads commands without regular expressions (importing re costs every launch): its
# readers accept what these patterns accept, matched in full (a trailing newline is no module).
_PATTERNS = {
    "module path": r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_][\w.]*(\(.*\))?)?",
    "python": r"python(\d+(\.\d+)?)?",
}
_PIECES = [*"aZ_9.:()'\", \t\n", "\u00e9", "\u0663", "\u00b2", "python", "3", "12", "DJANGO_SETTINGS_MODULE"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_command_readers_accept_what_their_patterns_accept(text):
    import re

    from otel_launch._core.service_name import _is_module_path, _is_python, _settings_in

    assert _is_module_path(text) == bool(re.fullmatch(_PATTERNS["module path"], text))
    assert _is_python(text) == bool(re.fullmatch(_PATTERNS["python"], text))
    found = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""", text)
    assert _settings_in(text) == (found.group(1) if found else "")


@pytest.mark.parametrize(
    ("app", "name"),
    [("Shop_Front", "shop-front-web"), ("caf\u00e9!!bar", "caf-bar-web"), ("a-_b", "a--b-web"), ("x.y", "x-web")],
)
def test_service_name_keeps_lower_case_letters_digits_dots_and_dashes(app, name):
    assert derive(["uwsgi", "--module", f"{app}:application"], "/srv", {}, _read).name == name


# What a Python process sees of its own command at interpreter start: sys.orig_argv, the
# interpreter's (a console script runs as "python /venv/bin/gunicorn"), or uWSGI's /proc/self/cmdline.
IN_PROCESS = [
    (["/venv/bin/python", "/venv/bin/gunicorn", "shop.wsgi:application", "-b", "0.0.0.0:8080"], "shop-web"),
    (["/venv/bin/python", "/venv/bin/gunicorn", "--preload", "shop.wsgi", "-w", "4"], "shop-web"),
    (["/venv/bin/python", "/venv/bin/celery", "-A", "shop", "worker", "-c", "8"], "shop-worker"),
    (["/usr/local/bin/python3.12", "-X", "dev", "-u", "-m", "celery", "-A", "shop", "beat"], "shop-beat"),
    (["/venv/bin/python", "manage.py", "migrate", "--noinput"], "shop-manage"),
    (["/usr/bin/python3", "-u", "./manage.py", "runserver"], "shop-web"),  # "#!/usr/bin/env -S python3 -u"
    (["/venv/bin/python", "/venv/bin/django-admin", "migrate", "--settings=shop.settings"], "shop-manage"),
    (["/venv/bin/python", "/venv/bin/uvicorn", "shop.asgi:application", "--port", "8000"], "shop-web"),
    (["/venv/bin/uwsgi", "--http", ":8000", "--module", "shop.wsgi", "--master"], "shop-web"),
    (["/venv/bin/uwsgi", "--ini", "deploy/uwsgi.ini"], "shop-web"),
]


@pytest.mark.parametrize(("argv", "name"), IN_PROCESS, ids=[" ".join(argv[:3]) for argv, _ in IN_PROCESS])
def test_names_read_from_a_processs_own_command_line(argv, name):
    assert derive_name(argv, "/srv/repo", {}, _read) == name
    assert derive(argv, "/srv/repo", {}, _read).name == name  # the launcher's rules, the same name


@pytest.mark.parametrize(
    "argv",
    [
        ["/venv/bin/python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"],
        ["/venv/bin/python", "wait_for_db.py"],
        ["/venv/bin/python"],
        [],
    ],
    ids=["multiprocessing spawn", "script", "interpreter", "empty"],
)
def test_no_name_in_process_for_commands_it_does_not_know(argv):
    assert derive_name(argv, "/srv/repo", {}, _read) is None


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["/venv/bin/python", "-X", "dev", "-c", "import secrets; token = 'hunter2'"], "python -c"),
        (["/venv/bin/python", "/srv/repo/wait_for_db.py", "--password", "hunter2"], "wait_for_db"),
        (["/venv/bin/python", "-m", "myapp.worker"], "myapp"),
        (["/venv/bin/uwsgi", "--http", ":8000"], "uwsgi"),
        (["/venv/bin/python3.12"], "python3.12"),
    ],
)
def test_what_a_command_runs_as_a_message_shows_it(argv, shown):
    assert program_of(argv) == shown
