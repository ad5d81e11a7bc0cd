"""The example shop on real servers: gunicorn, uvicorn, runserver, a Celery worker, a real broker.

Brokers, in order of preference: Redis (a private ``redis-server`` on a free port, or the shared
one that ``OTEL_LAUNCH_TEST_REDIS_URL`` names: see ``examples/redis_server.py``), RabbitMQ
(127.0.0.1:5672), kombu's ``filesystem://`` (no server).
The header of the test run says which are used. The shop and the readers of what the receiver got
are in ``tests/e2e/shop.py``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_launch.local.receiver import OTLPReceiver
from tests.e2e.shop import SHOP, Shop
from tests.helpers import (
    LOCAL_RABBITMQ,
    PYTHON,
    SERVICES_USED,
    RedisUnavailable,
    clean_env,
    kill_group,
    launcher,
    reachable,
    redis_for_run,
    start,
)

pytest.importorskip("celery")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A Redis URL with its database: a private redis-server, the shared one only when asked, else None."""
    with contextlib.ExitStack() as stack:
        try:
            redis = stack.enter_context(redis_for_run(tmp_path_factory.mktemp("redis")))
        except RedisUnavailable as error:
            pytest.fail(str(error), pytrace=False)
        SERVICES_USED.append(f"redis: {redis.description}")
        yield redis.url


@pytest.fixture(scope="session")
def broker_urls(redis_url: str | None) -> dict[str, str]:
    """Broker name -> URL, for each broker usable here (filesystem always)."""
    urls = {"filesystem": "filesystem://"}
    if redis_url:
        urls["redis"] = redis_url
    if reachable(LOCAL_RABBITMQ):
        urls["rabbitmq"] = "amqp://guest:guest@127.0.0.1:5672//"
    return urls


@pytest.fixture(scope="session")
def primary_broker(broker_urls: dict[str, str]) -> str:
    name = next(name for name in ("redis", "rabbitmq", "filesystem") if name in broker_urls)
    SERVICES_USED.append(f"broker of the scenarios: {name} ({broker_urls[name].rpartition('@')[2]})")
    return name


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test."""
    db = tmp_path_factory.mktemp("shop-db") / "template.sqlite3"
    env = clean_env(SHOP_DB=str(db), SHOP_BROKER_URL="filesystem://")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=SHOP, env=env, check=True, timeout=120)
    return db


@pytest.fixture
def shop(tmp_path: Path, receiver: OTLPReceiver, migrated_db: Path, broker_urls, primary_broker, redis_url):
    shutil.copy(migrated_db, tmp_path / "shop.sqlite3")
    # The cache shares the broker's database: its keys carry the test's queue name (SHOP_CACHE_PREFIX).
    started = Shop(tmp_path, receiver, primary_broker, broker_urls[primary_broker], redis_url)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def ui(tmp_path: Path):
    """A real ``otel-launch ui`` on free ports, its store in memory: (page URL, OTLP/gRPC endpoint)."""
    args = [*launcher(), "ui", "--port", "0", "--grpc-port", "0", "--http-port", "0", "--db", ":memory:"]
    process = start(args, clean_env(), tmp_path)
    line = process.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/ .*OTLP/gRPC on 127\.0\.0\.1:(\d+)", line)
    if not found:
        kill_group(process)
        pytest.fail(f"otel-launch ui did not start: {line!r} {process.stderr.read()}")
    try:
        yield found.group(1), f"http://127.0.0.1:{found.group(2)}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            kill_group(process)
