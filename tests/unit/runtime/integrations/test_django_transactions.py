"""Tasks flagged as sent inside a Django transaction: a connection keeps a bounded list of them,
and counts the rest; a connection closed before its transaction committed counts its tasks as
rolled back, also when Django closes it after a failed commit's failed rollback."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("django")
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from otel_launch._runtime.integrations.django import transactions  # noqa: E402


class Connection:
    """What the module reads of a Django connection; its own methods do nothing."""

    alias = "default"

    def __init__(self) -> None:
        self.in_atomic_block = True
        self.savepoint_ids: list[str] = []

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def reader(monkeypatch):
    found = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[found])
    monkeypatch.setattr(transactions.metrics, "get_meter_provider", lambda: provider)
    monkeypatch.setattr(transactions, "_instruments", [None, None, None, None])
    monkeypatch.setattr(transactions, "_wrapped", [True])  # the methods are wrapped below, not Django's
    return found


def counted(reader: InMemoryMetricReader, name: str) -> Counter:
    found: Counter = Counter()
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[point.attributes["celery.task_name"]] += point.value
    return found


def send(connection: Connection, span: object, names: list[str]) -> None:
    for number, name in enumerate(names):
        transactions._flag(connection, span, {}, name, f"id-{number}")


def test_a_million_tasks_in_one_transaction_are_counted_not_kept(reader, monkeypatch):
    monkeypatch.setattr(transactions, "MAX_PENDING", 3, raising=False)
    connection = Connection()
    with TracerProvider().get_tracer(__name__).start_as_current_span("migrate") as span:
        send(connection, span, ["a"] * 5 + ["b"] * 2)
        pending = connection.__dict__[transactions._PENDING]
        assert len(pending) == 3 + 2  # three kept, one counted entry for each name beyond
        transactions._wrapper(Connection.rollback, transactions._after_rollback)(connection)
    assert counted(reader, transactions.ROLLED_BACK) == {"a": 5, "b": 2}
    (event,) = span.events
    assert event.attributes[transactions.TASK_COUNT] == 7
    assert list(event.attributes[transactions.TASKS]) == ["a", "a", "a"]


def test_a_connection_closed_after_a_failed_rollback_counts_its_tasks_rolled_back(reader):
    connection = Connection()
    with TracerProvider().get_tracer(__name__).start_as_current_span("request") as span:
        send(connection, span, ["a", "b"])
        # Atomic.__exit__ left the block before its commit; the commit and the rollback failed.
        connection.in_atomic_block = False
        transactions._wrapper(Connection.close, transactions._after_close)(connection)
    assert counted(reader, transactions.ROLLED_BACK) == {"a": 1, "b": 1}
    assert [event.name for event in span.events] == [transactions.ROLLBACK_EVENT]
