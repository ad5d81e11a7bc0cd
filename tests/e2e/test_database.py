"""SQL spans from the app's own database, SQLite, PostgreSQL (psycopg) and MySQL/MariaDB (PyMySQL), with no
values in them: every Django backend's queries go through otel-launch's SQL path (``execute_wrappers``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.shop import service
from tests.helpers import SERVICES_USED, reachable

pytestmark = pytest.mark.e2e
POSTGRES = ("127.0.0.1", 5432)
MYSQL = ("127.0.0.1", 3306)


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


@pytest.fixture
def mysql_db() -> Iterator[str]:
    """A fresh database on the local MySQL/MariaDB (root, no password), dropped afterwards."""
    if not reachable(MYSQL):
        pytest.skip("no MySQL/MariaDB at 127.0.0.1:3306")
    pymysql = pytest.importorskip("pymysql")
    name = f"otel_launch_e2e_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(host=MYSQL[0], port=MYSQL[1], user="root", connect_timeout=5, autocommit=True)
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"MySQL/MariaDB at 127.0.0.1:3306 refuses root without a password ({exc})")
    with admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        SERVICES_USED.append("mysql: the server at 127.0.0.1:3306 (PyMySQL)")
        try:
            yield name
        finally:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


# Django's quoting of table names, by backend.
QUOTED_TABLE = {"sqlite": '"orders_order"', "postgresql": '"orders_order"', "mysql": "`orders_order`"}


@pytest.mark.parametrize("database", ["sqlite", "postgresql", "mysql"])
def test_command_span_holds_sql_spans_without_parameter_values(shop, request, database):
    env = {}
    if database in ("postgresql", "mysql"):
        variable = {"postgresql": "SHOP_PG_DB", "mysql": "SHOP_MYSQL_DB"}[database]
        env[variable] = request.getfixturevalue({"postgresql": "postgres_db", "mysql": "mysql_db"}[database])
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
        assert statement.startswith(f"INSERT INTO {QUOTED_TABLE[database]}")
        assert "batch" not in statement  # the customer name the command inserts


def test_a_reconnected_mysql_connection_still_makes_one_span_a_query(shop, mysql_db):
    # Django reconnects for every request by default; the second connect goes past the contrib's
    # PyMySQL wrapper only partly (dbapi.py knows sqlite3 and the psycopgs), so its proxy must go too.
    script = (
        "from django.db import connection\nfrom opentelemetry import trace\n"
        "with trace.get_tracer('shop').start_as_current_span('job'):\n"
        "    connection.cursor().execute('SELECT 1')\n"
        "    connection.close()\n"
        "    connection.cursor().execute('SELECT 1')\n"
    )
    code, output = shop.manage("shell", "-c", script, SHOP_MYSQL_DB=mysql_db)
    assert code == 0, output
    assert shop.receiver.wait_for(lambda r: any(s.name == "job" for s in r.spans), timeout=10)
    selects = [s for s in shop.receiver.spans if s.attributes.get("db.statement") == "SELECT 1"]
    assert len(selects) == 2, [(s.name, s.scope) for s in selects]
