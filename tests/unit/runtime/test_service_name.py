"""A process's service name read from its own command line at start (otel_launch/_runtime/_service_name.py),
when the launcher asked for it; the command line and the environment are this test's."""

from __future__ import annotations

import os
import sys

import pytest

from otel_launch._core import NAME_FROM_COMMAND, QUIET, SAY
from otel_launch._runtime._service_name import name_this_process

GUNICORN = ["/venv/bin/python", "/venv/bin/gunicorn", "shop.wsgi:application", "-w", "2"]
UNNAMED = ["/venv/bin/python", "wait_for_db.py"]


@pytest.fixture
def argv(monkeypatch):
    def set_to(command: list[str]) -> None:
        monkeypatch.setattr(sys, "orig_argv", command)

    return set_to


def test_a_process_names_itself_and_what_it_starts_keeps_the_name(argv, capsys):
    argv(GUNICORN)
    environ = {NAME_FROM_COMMAND: SAY}
    name_this_process(environ)
    assert environ == {"OTEL_SERVICE_NAME": "shop-web"}  # the request is gone: a subprocess keeps shop-web
    assert capsys.readouterr().err == ""


def test_one_that_cannot_says_so_once_and_what_it_starts_does_not_repeat_it(argv, capsys):
    argv(UNNAMED)
    environ = {NAME_FROM_COMMAND: SAY}
    name_this_process(environ)
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "otel-launch: warning: no service name for this process (wait_for_db): its telemetry is reported as "
        "the SDK's default, unknown_service; set OTEL_SERVICE_NAME to name it"
    )
    assert environ == {NAME_FROM_COMMAND: QUIET}
    name_this_process(environ)  # a process it starts, unnamed too: said already
    assert capsys.readouterr().err == ""
    argv(GUNICORN)  # one it starts that can name itself still does
    name_this_process(environ)
    assert environ == {"OTEL_SERVICE_NAME": "shop-web"}


@pytest.mark.parametrize(
    "named",
    [
        {"OTEL_SERVICE_NAME": "billing"},
        {"OTEL_RESOURCE_ATTRIBUTES": "team=a, service.name =billing"},
        {"OTEL_CONFIG_FILE": "/etc/otel.yaml"},
    ],
    ids=["OTEL_SERVICE_NAME", "service.name attribute", "configuration file"],
)
def test_a_name_set_under_the_launcher_is_kept(argv, capsys, named):
    """A script that sets a name for one of its commands: that name, not one read from the command."""
    argv(GUNICORN)
    environ = {**named, NAME_FROM_COMMAND: SAY}
    name_this_process(environ)
    assert environ == named
    assert capsys.readouterr().err == ""


def test_without_the_launchers_request_nothing_changes(argv, capsys):
    argv(GUNICORN)
    environ: dict[str, str] = {}
    name_this_process(environ)
    assert environ == {}
    assert capsys.readouterr().err == ""


def test_the_launchers_own_command_is_left_as_the_launcher_left_it(argv, capsys):
    """``otel-launch python script.py``: the launcher read this very command and named nothing, as
    ``--print-config`` shows; no warning in it, nor in what it starts."""
    argv([sys.executable, "script.py"])
    environ = {NAME_FROM_COMMAND: f"{os.getpid()}:{sys.executable}"}
    name_this_process(environ)
    assert environ == {NAME_FROM_COMMAND: QUIET}
    assert capsys.readouterr().err == ""


def test_a_console_script_the_launcher_execd_is_its_own_too(argv, capsys, tmp_path):
    script = tmp_path / "mytool"
    script.write_text("")
    argv([sys.executable, str(script), "--serve"])  # the kernel ran its "#!" line
    environ = {NAME_FROM_COMMAND: f"{os.getpid()}:{script}"}
    name_this_process(environ)
    assert environ == {NAME_FROM_COMMAND: QUIET}
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("pid", ["same", "other"])
def test_a_process_a_shell_script_starts_is_not_the_launchers_own(argv, capsys, tmp_path, pid):
    """``otel-launch ./entrypoint.sh``: its last line's ``exec gunicorn ...`` keeps the launcher's pid but
    runs another file than the one the launcher exec'd."""
    script = tmp_path / "entrypoint.sh"
    script.write_text("")
    number = os.getpid() if pid == "same" else os.getpid() + 1
    argv(GUNICORN)
    environ = {NAME_FROM_COMMAND: f"{number}:{script}"}
    name_this_process(environ)
    assert environ == {"OTEL_SERVICE_NAME": "shop-web"}
    argv(UNNAMED)
    environ = {NAME_FROM_COMMAND: f"{number}:{script}"}
    name_this_process(environ)
    assert "no service name for this process (wait_for_db)" in capsys.readouterr().err


def test_manage_py_is_read_in_the_working_directory(argv, monkeypatch, tmp_path):
    manage_py = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shynet.settings")\n'
    (tmp_path / "manage.py").write_text(manage_py)
    monkeypatch.chdir(tmp_path)
    argv(["/venv/bin/python", "manage.py", "migrate"])
    environ = {NAME_FROM_COMMAND: SAY}
    name_this_process(environ)
    assert environ == {"OTEL_SERVICE_NAME": "shynet-manage"}


def test_a_program_embedding_python_is_read_from_the_kernels_command_line(argv, capsys):
    """uWSGI starts its interpreter with an empty ``sys.orig_argv``: /proc/self/cmdline holds its command."""
    if not os.path.exists("/proc/self/cmdline"):
        pytest.skip("no /proc")
    from otel_launch._core.service_name import program_of

    with open("/proc/self/cmdline", "rb") as handle:
        own = [os.fsdecode(arg) for arg in handle.read().split(b"\0")[:-1]]
    argv([])
    environ = {NAME_FROM_COMMAND: SAY}
    name_this_process(environ)  # this test's own command (pytest) names no service
    assert f"no service name for this process ({program_of(own)})" in capsys.readouterr().err
