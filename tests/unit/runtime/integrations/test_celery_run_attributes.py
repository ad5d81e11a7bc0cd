"""A run span's attributes read from Celery's ``Context`` as one dict (celery/worker.py ``_readable``)
against the contrib's ``set_attributes_from_context`` reading the ``Context`` itself: the same
attributes, in the same order, for the requests a worker meets."""

from __future__ import annotations

import pytest

pytest.importorskip("celery")

from celery.app.task import Context  # noqa: E402
from opentelemetry.instrumentation.celery import utils  # noqa: E402

from otel_launch._runtime.integrations.celery import BEAT_ENTRY, worker  # noqa: E402
from otel_launch._runtime.integrations.django import transactions  # noqa: E402

BASE = {
    "id": "a1",
    "task": "shop.tasks.charge",
    "root_id": "a1",
    "parent_id": None,
    "group": None,
    "retries": 0,
    "eta": None,
    "expires": None,
    "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False},
    "hostname": "worker@host",
    "args": [],
    "kwargs": {},
    "is_eager": False,
}
REQUESTS = [
    {},
    {"retries": 2, "eta": "2026-12-08T00:00:00+00:00", "expires": "2026-12-09T00:00:00+00:00"},
    {"timelimit": (10, None), "correlation_id": "a1", "reply_to": "reply-queue", "origin": "gen1@web"},
    {"timelimit": [None, None], "priority": 5, "routing_key": "celery", "exchange": "", "serializer": "json"},
    {"delivery_info": None, "hostname": "", "compression": "gzip", "countdown": 3, "queue": "q", "state": "x"},
    {transactions.IN_TRANSACTION: 1, BEAT_ENTRY: "nightly"},
]


def _contribs(request: Context) -> dict:
    collected = worker._Collected({"celery.action": "run"})
    utils.set_attributes_from_context(collected, request)
    return collected


@pytest.mark.parametrize("extra", REQUESTS)
def test_the_same_attributes_as_the_contrib_reading_the_context(extra):
    request = Context({**BASE, **extra}, args=[], called_directly=False, kwargs={})  # as Celery's tracer builds it
    assert isinstance(worker._readable(request), dict)  # read as a dict, not through Context.get
    expected = _contribs(request)
    ours = worker.span_attributes(request, "shop.tasks.charge", "celery", "redis", None)
    assert list(ours.items())[: len(expected)] == list(expected.items())
    # Ours after the contrib's: those of a Context read through its own get().
    rest = dict(list(ours.items())[len(expected) :])
    assert rest.pop(transactions.SENT, None) == (True if request.get(transactions.IN_TRANSACTION) else None)
    assert rest.pop("celery.beat.entry", None) == request.get(BEAT_ENTRY)
    assert rest == {
        "celery.task_name": "shop.tasks.charge",
        "messaging.operation.type": "process",
        "messaging.system": "redis",
        "messaging.destination.name": "celery",
    }


def test_a_context_class_that_computes_a_value_is_read_as_it_is():
    class Computed(Context):
        @property
        def hostname(self):
            return "computed@host"

    request = Computed(BASE)
    assert worker._readable(request) is request
    assert worker.span_attributes(request, "t", "celery", "redis", None)["celery.hostname"] == "computed@host"
