"""SQL spans from the app's own database, SQLite and PostgreSQL (psycopg), with no values in them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import SERVICES_USED, reachable
from tests.e2e.conftest import service

pytestmark = pytest.mark.e2e
POSTGRES = ("127.0.0.1", 5432)


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (trust auth), dropped afterwards."""
    if not reachable(POSTGRES):
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    psycopg = pytest.importorskip("psycopg")
    name = f"otel_launch_e2e_{uuid.uuid4().hex[:12]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    SERVICES_USED.append("postgresql: the server at 127.0.0.1:5432")
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_command_span_holds_sql_spans_without_parameter_values(shop, request, database):
    env = {}
    if database == "postgresql":
        env["SHOP_PG_DB"] = request.getfixturevalue("postgres_db")
        code, output = shop.manage("migrate", "-v0", service=None, **env)  # set-up, without the launcher
        assert code == 0, output
    code, output = shop.manage("place_orders", "2", **env)
    assert code == 0, output

    (command,) = [s for s in shop.receiver.spans if s.name == "place_orders"]
    assert service(command) == "shop-command" and not command.parent_span_id
    sql = [s for s in shop.receiver.spans if s.attributes.get("db.system") == database]
    assert sql and all(s.trace_id == command.trace_id for s in sql)
    inserts = [s for s in sql if s.name == "INSERT"]
    assert len(inserts) == 2
    for insert in inserts:
        statement = insert.attributes["db.statement"]
        assert statement.startswith('INSERT INTO "orders_order"')
        assert "batch" not in statement  # the customer name the command inserts
