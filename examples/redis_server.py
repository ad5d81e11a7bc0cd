"""The Redis that ``make demo`` and ``make test`` use: one they start, a shared one only when asked.

A developer's Redis on 127.0.0.1:6379 holds someone else's data, so it is never used on the
strength of answering. In order:

1. ``OTEL_LAUNCH_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/5``): that server and database,
   when set. It must answer, or the run stops with one line naming the variable.
2. A private ``redis-server`` (when one is installed) on a free port, persisting nothing
   (``--save "" --appendonly no``), its files in a temporary directory, stopped by PID at the end.
3. None: the caller falls back to kombu's ``filesystem://`` transport.

The demo and the benchmarks import this file from its own directory; the tests through
``tests/helpers.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SHARED_VARIABLE = "OTEL_LAUNCH_TEST_REDIS_URL"
_SCHEMES = ("redis", "rediss")


class RedisUnavailable(Exception):
    """The Redis asked for (shared, or a private server that should have started) is not there."""


@dataclass(frozen=True)
class Redis:
    """What was chosen: ``url`` (with its database) or None, a line saying which, whether it is shared."""

    url: str | None
    description: str
    shared: bool = False


def _masked(url: str) -> str:
    try:  # the installed otel-launch's masking, the same as its own output uses
        from otel_launch._core.masking import mask_url
    except ImportError:  # pragma: no cover - the demo and the tests run in its venv
        return url.rpartition("@")[2]
    return mask_url(url)


def shared_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The shared Redis the variable asks for, checked for form; None when it is unset or empty."""
    raw = environ.get(SHARED_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        database = parts.path.strip("/")
        valid = parts.scheme in _SCHEMES and bool(parts.hostname) and (not database or database.isdigit())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise RedisUnavailable(
            f"{SHARED_VARIABLE}={_masked(raw)[:80]!r}: not a Redis URL; expected redis://HOST:PORT/DB"
            " (e.g. redis://127.0.0.1:6379/5), or leave it unset for a private redis-server"
        )
    return raw


def planned(environ: Mapping[str, str] = os.environ) -> str:
    """Which Redis a run would use, without starting anything (for the test run's header)."""
    try:
        url = shared_url(environ)
    except RedisUnavailable as error:
        return str(error)
    if url:
        return f"the shared one in {SHARED_VARIABLE} ({_masked(url)})"
    if shutil.which("redis-server"):
        return "a private redis-server on a free port"
    return f"none (no redis-server installed, {SHARED_VARIABLE} unset): filesystem:// instead"


def free_port() -> int:
    """A port on 127.0.0.1 free at the time of asking (the demo's servers and the tests take theirs here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    import redis  # the demo extra's client, which Celery's Redis transport uses too

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _start(server: str, workdir: Path, timeout: float) -> tuple[subprocess.Popen, str]:
    """Start redis-server on a free port; a port taken between our bind and its own gets one retry."""
    log = workdir / "redis-server.log"
    for _ in range(2):
        port = free_port()
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)]
        process = subprocess.Popen(
            args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                return process, url
            time.sleep(0.05)  # polling with a bound
        _stop(process)
    tail = log.read_text(errors="replace")[-300:].strip() if log.exists() else ""
    raise RedisUnavailable(f"redis-server ({server}) did not answer within {timeout:g}s: {tail or 'no log'}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def redis_for_run(
    workdir: Path | None = None, environ: Mapping[str, str] = os.environ, timeout: float = 10
) -> Iterator[Redis]:
    """The Redis of one run (see the module's docstring), stopped at the end when it is ours.

    Raises RedisUnavailable when the shared Redis asked for does not answer, or when an installed
    redis-server does not start: falling back then would hide what the caller asked for.
    """
    url = shared_url(environ)
    if url:
        if not _answers(url):
            raise RedisUnavailable(f"{SHARED_VARIABLE}={_masked(url)!r}: no Redis answers there")
        yield Redis(url, f"the shared Redis in {SHARED_VARIABLE} ({_masked(url)})", shared=True)
        return
    server = shutil.which("redis-server")
    if server is None:
        yield Redis(None, f"none (no redis-server installed, {SHARED_VARIABLE} unset)")
        return
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="otel-launch-redis-")))
        process, url = _start(server, workdir, timeout)
        stack.callback(_stop, process)
        yield Redis(url, f"a private redis-server on {url.rpartition('/')[0]} (pid {process.pid})")
