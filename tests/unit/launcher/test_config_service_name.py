"""The service name the launcher gives its command (otel_launch/_core/service_name.py's rules), and when."""

from __future__ import annotations

import pytest

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
