"""The service name the launcher gives its command (otel_launch/_core/service_name.py's rules) and, when
it gives none, its hand-off to the Python processes under the command (``NAME_FROM_COMMAND``)."""

from __future__ import annotations

import os

import pytest

from otel_launch._core import NAME_FROM_COMMAND, SAY
from otel_launch._launcher.config import Config


def _config(command, **env):
    return Config(environ=env, env_file=None, command=command)


def test_the_child_gets_the_derived_name_and_print_config_says_where_it_came_from():
    config = _config(["celery", "-A", "shop", "worker"])
    assert config.child_env()["OTEL_SERVICE_NAME"] == "shop-worker"
    row = next(row for row in config.rows() if row[1] == "OTEL_SERVICE_NAME")
    assert row[2:] == ("shop-worker", "derived from the command (celery: app shop, role worker)")


@pytest.mark.parametrize(
    "explicit",
    [
        {"OTEL_SERVICE_NAME": "mine"},
        {"OTEL_RESOURCE_ATTRIBUTES": "team=a,service.name=mine"},
    ],
    ids=["OTEL_SERVICE_NAME", "service.name in OTEL_RESOURCE_ATTRIBUTES"],
)
def test_a_name_the_user_set_always_wins(explicit):
    config = _config(["celery", "-A", "shop", "worker"], **explicit)
    env = config.child_env(base=explicit)
    assert env.get("OTEL_SERVICE_NAME") == explicit.get("OTEL_SERVICE_NAME")
    assert "shop-worker" not in repr(config.rows())
    flag = Config(environ={}, env_file=None, command=["celery", "-A", "shop", "worker"], service_name="flagged")
    assert flag.child_env(base={})["OTEL_SERVICE_NAME"] == "flagged"


def test_the_sample_rate_derivation_keeps_its_own_label():
    config = Config(environ={}, env_file=None, command=["gunicorn", "shop.wsgi"], sample_rate=0.5)
    sources = {row[1]: row[3] for row in config.rows()}
    assert sources["OTEL_TRACES_SAMPLER"] == "derived from --sample-rate"
    assert sources["OTEL_SERVICE_NAME"].startswith("derived from the command (gunicorn")


def test_a_command_that_names_nothing_hands_the_naming_to_the_processes_under_it(tmp_path):
    """``otel-launch ./entrypoint.sh``: no name, and the child is told to read its own, with which
    process is the launcher's own command (this pid, exec keeps it, and the file exec'd)."""
    script = tmp_path / "entrypoint.sh"
    config = _config([str(script)])
    env = config.child_env(executable=str(script))
    assert "OTEL_SERVICE_NAME" not in env
    assert env[NAME_FROM_COMMAND] == f"{os.getpid()}:{script}"
    assert config.child_env()[NAME_FROM_COMMAND] == SAY  # not exec'd by the launcher: no process is its own
    row = next(row for row in config.rows() if row[1] == "OTEL_SERVICE_NAME")
    assert row[2:] == ("(unset)", "default; each Python process under this command reads its own from its command line")


@pytest.mark.parametrize(
    ("command", "flags", "env"),
    [
        (["gunicorn", "shop.wsgi"], {}, {}),
        (["./entrypoint.sh"], {"service_name": "shop"}, {}),
        (["./entrypoint.sh"], {}, {"OTEL_SERVICE_NAME": "shop"}),
        (["./entrypoint.sh"], {}, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=shop"}),
    ],
    ids=["derived", "flag", "OTEL_SERVICE_NAME", "service.name attribute"],
)
def test_a_named_command_hands_nothing_on_and_drops_an_outer_launchs_request(command, flags, env):
    """A name set or read: the processes under the command keep it; the variable an outer
    ``otel-launch`` set (a script that runs ``otel-launch gunicorn ...``) is removed."""
    environ = {**env, NAME_FROM_COMMAND: SAY}
    config = Config(environ=environ, env_file=None, command=command, **flags)
    assert not config.names_inside
    assert NAME_FROM_COMMAND not in config.child_env(executable="/usr/bin/gunicorn")
    row = next(row for row in config.rows() if row[1] == "OTEL_SERVICE_NAME")
    assert "each Python process" not in row[3]
