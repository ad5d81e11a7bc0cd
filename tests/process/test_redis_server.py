"""The Redis of ``make test`` and ``make demo``: a private redis-server, a shared one only when asked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from examples.redis_server import SHARED_VARIABLE, RedisUnavailable, planned, redis_for_run, shared_url

pytestmark = [pytest.mark.process, pytest.mark.once]
redis = pytest.importorskip("redis")
needs_server = pytest.mark.skipif(not shutil.which("redis-server"), reason="no redis-server installed here")


@needs_server
def test_a_private_server_is_started_even_when_6379_answers(tmp_path: Path):
    """A developer's Redis on 6379 (there is one on these machines) is never taken for answering."""
    with redis_for_run(tmp_path, environ={}) as chosen:
        assert chosen.url and not chosen.url.startswith("redis://127.0.0.1:6379")
        assert "private redis-server" in chosen.description and not chosen.shared
        pid = int(chosen.description.rpartition("pid ")[2].rstrip(")"))
        client = redis.Redis.from_url(chosen.url, socket_timeout=5)
        assert client.ping()
        client.set("k", "v")
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("dir") == {"dir": str(tmp_path)}
    with pytest.raises(ProcessLookupError):  # stopped and reaped at the end
        os.kill(pid, 0)
    assert not list(tmp_path.glob("*.rdb")) and not list(tmp_path.glob("appendonly*"))


def test_without_redis_server_and_variable_there_is_no_redis(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    with redis_for_run(tmp_path, environ={}) as chosen:
        assert chosen.url is None
    assert "filesystem://" in planned({})


@needs_server
def test_the_shared_redis_is_the_one_the_variable_names(tmp_path: Path):
    """Stands in for a shared server: one we started, named through the variable with its database."""
    with redis_for_run(tmp_path, environ={}) as private:
        named = private.url.rpartition("/")[0] + "/5"
        with redis_for_run(tmp_path / "unused", environ={SHARED_VARIABLE: named}) as chosen:
            assert chosen.url == named and chosen.shared
            assert SHARED_VARIABLE in chosen.description
        assert not (tmp_path / "unused").exists()  # nothing started


def test_a_shared_redis_that_does_not_answer_stops_the_run(tmp_path: Path):
    closed = "redis://user:Secret99@127.0.0.1:1/3"
    with pytest.raises(RedisUnavailable) as raised, redis_for_run(tmp_path, environ={SHARED_VARIABLE: closed}):
        pass
    assert SHARED_VARIABLE in str(raised.value) and "Secret99" not in str(raised.value)


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:6379", "redis://127.0.0.1:x/0", "redis://127.0.0.1:6379/db", "redis:///0"]
)
def test_a_malformed_variable_is_named_in_one_line(value: str):
    with pytest.raises(RedisUnavailable) as raised:
        shared_url({SHARED_VARIABLE: value})
    message = str(raised.value)
    assert message.startswith(f"{SHARED_VARIABLE}=") and "\n" not in message and "redis://HOST:PORT/DB" in message
    assert message in planned({SHARED_VARIABLE: value})


def test_an_empty_variable_is_unset():
    assert shared_url({SHARED_VARIABLE: " "}) is None
