"""Celery tasks sent inside a Django transaction that had not committed, and what became of it.

``process_order.delay(order.id)`` inside ``transaction.atomic()`` (or under ``ATOMIC_REQUESTS``)
races the commit: the worker can start before it and not find the row, and when the transaction
rolls back the task runs for data that never existed. ``transaction.on_commit`` and Celery's
``delay_on_commit`` send after the commit; nothing tells a team where they still need them.

At each publish (``check_publish``, called by the Celery publish handler) the current thread's
initialized Django connections are asked whether one is inside an atomic block: a hook on the
connection runs its callbacks after the commit, with no atomic block open, so a task sent from
``on_commit`` or ``delay_on_commit`` is never flagged. A flagged publish:

- gets ``celery.task.sent_in_transaction`` on its span, counts in the counter of that name, and
  carries the header ``IN_TRANSACTION`` (the database alias), which puts the same attribute on
  the task's run span, in the worker;
- is remembered on that connection with the savepoints open at the time (as Django remembers an
  ``on_commit`` callback), until the transaction ends. Its commit records the event
  ``otel_launch.transaction.commit`` on the span current then (the request's, the task's) and
  each task's publish-to-commit delay (``celery.task.commit_delay``); a rollback of the
  transaction, or of a savepoint the task was sent under, or a connection closed before the
  transaction committed records ``otel_launch.transaction.rollback`` there and counts the tasks
  in ``celery.task.sent_in_rolled_back_transaction``.

A connection remembers at most ``MAX_PENDING`` tasks one by one (a migration that sends a million
tasks in one ``atomic()`` would otherwise hold them all); the ones beyond are counted, by task name
and savepoints, so the counters and the events' task count stay right, but they are not named in
the events nor measured in the commit delay.

The worker cannot see the sender's transaction: what says that a run started before the commit
is the trace, which holds both times: the run span's start and the commit event, in the sender's
clock (as for queue time: off by the hosts' clock difference). The viewer compares them; the
counters and the delay histogram are what a team alerts on (docs/django-celery.md).

Cost: a publish outside any transaction costs one attribute of each of the thread's connected
Django connections, kept in a thread-local list (seeded once a thread from Django's handler, then
by Django's ``connection_created`` signal); a process that never imported Django, one dict
lookup. The connection's ``commit``, ``rollback``, ``savepoint_rollback`` and ``close`` are
wrapped at the first flagged publish only, and then cost a dict lookup unless tasks are pending
on that connection.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from typing import Any

from opentelemetry import metrics, trace

IN_TRANSACTION = "otel_launch_in_transaction"  # header: the alias of the database whose transaction was open
SENT = "celery.task.sent_in_transaction"  # span attribute (publish and run spans) and counter
ROLLED_BACK = "celery.task.sent_in_rolled_back_transaction"  # counter
COMMIT_DELAY = "celery.task.commit_delay"  # histogram: from the publish to the commit, seconds
COMMIT_EVENT = "otel_launch.transaction.commit"
ROLLBACK_EVENT = "otel_launch.transaction.rollback"
TASKS = "otel_launch.transaction.tasks"  # event attribute: the names of the tasks sent inside
TASK_IDS = "otel_launch.transaction.task_ids"  # event attribute: their ids (messaging.message.id)
DATABASE = "otel_launch.transaction.database"  # event attribute: the connection's alias
ENDED_AT = "otel_launch.transaction.ended_at"  # event attribute: its time, epoch seconds (viewers drop event times)
_MAX_NAMED = 100  # tasks an event names (TASK_COUNT says how many there were)
TASK_COUNT = "otel_launch.transaction.task_count"
_PENDING = "_otel_launch_sent"  # connection attribute: [(savepoint ids, task name, task id, publish time, count)]
_OVERFLOW = "_otel_launch_overflow"  # connection attribute: (savepoint ids, name) -> its counted entry of _PENDING
MAX_PENDING = 10_000  # tasks a connection remembers one by one; the ones beyond are counted
_SCOPE = "otel_launch.transactions"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)

_instruments: list[Any] = [None, None, None, None]  # [meter provider, sent, rolled back, commit delay]
_wrapped: list[bool] = []
_lock = threading.Lock()
_thread = threading.local()  # .opened: this thread's Django connections (see _seed)
_receiving: list[bool] = []  # connection_created connected
_MAX_OPENED = 64


def check_publish(span: Any, headers: Any, name: str, task_id: Any) -> None:
    """At a publish, with its span: flag it when a Django transaction is open in this thread."""
    connection = _in_transaction()
    if connection is None:
        return
    with contextlib.suppress(Exception):  # telemetry never fails a publish
        _flag(connection, span, headers, name, task_id)


def _flag(connection: Any, span: Any, headers: Any, name: str, task_id: Any) -> None:
    if headers is not None:
        headers[IN_TRANSACTION] = connection.alias
    if span.is_recording():
        span.set_attribute(SENT, True)
    _counters()[1].add(1, {"celery.task_name": name})
    if not _wrapped:
        _wrap(type(connection))
    pending = connection.__dict__.get(_PENDING)
    if pending is None:
        pending = connection.__dict__[_PENDING] = []
    sids = frozenset(connection.savepoint_ids)
    if len(pending) < MAX_PENDING:
        pending.append((sids, name, str(task_id), time.time(), 1))
        return
    overflow = connection.__dict__.setdefault(_OVERFLOW, {})
    counted = overflow.get((sids, name))
    if counted is None:  # one entry a task name and savepoints: not named, not measured, counted
        counted = overflow[sids, name] = [sids, name, None, time.time(), 0]
        pending.append(counted)
    counted[4] += 1


def _in_transaction() -> Any:
    """The first of this thread's connected Django connections inside an atomic block, or None."""
    opened = getattr(_thread, "opened", None)
    if opened is None:
        opened = _seed()
        if opened is None:
            return None
    for connection in opened:
        if connection.in_atomic_block:
            return connection
    return None


def _seed() -> list | None:
    """This thread's Django connections, listed once through Django's handler (its thread-local
    store costs ~27k instructions a look); the connections that connect later in this thread are
    added by ``connection_created``: a transaction opens only on a connected connection."""
    db = sys.modules.get("django.db")
    if db is None:  # Django not loaded: no transaction of its
        return None
    try:
        if not _receiving:
            with _lock:
                if not _receiving:
                    from django.db.backends.signals import connection_created

                    connection_created.connect(_connected, weak=False, dispatch_uid="otel-launch-transactions")
                    _receiving.append(True)
        opened = list(_initialized_lister(db.connections)())
    except Exception:  # Django imported but not configured (no settings)
        return None
    _thread.opened = opened
    return opened


def _connected(sender: Any = None, connection: Any = None, **_: Any) -> None:
    """``connection_created``: a connection of this thread connected (or reconnected)."""
    opened = getattr(_thread, "opened", None)
    if opened is None or connection is None or any(known is connection for known in opened):
        return  # not seeded yet in this thread (the seed lists it), or known
    if len(opened) >= _MAX_OPENED:  # one a database alias; more only for connections of async contexts
        del opened[0]
    opened.append(connection)


def _initialized_lister(connections: Any) -> Any:
    try:  # Django 4.1+
        connections.all(initialized_only=True)
        return functools.partial(connections.all, initialized_only=True)
    except TypeError:  # older: the handler's thread-local store says which aliases were opened
        store = connections._connections
        return lambda: [connections[alias] for alias in connections if hasattr(store, alias)]


# -- the transaction's end: wrappers of the connection's methods, installed at the first flagged publish


def _wrap(connection_class: type) -> None:
    from django.db.backends.base.base import BaseDatabaseWrapper

    with _lock:
        if _wrapped:
            return
        base = BaseDatabaseWrapper if issubclass(connection_class, BaseDatabaseWrapper) else connection_class
        for method, after in (
            ("commit", _after_commit),
            ("rollback", _after_rollback),
            ("savepoint_rollback", _after_savepoint_rollback),
            ("close", _after_close),
        ):
            setattr(base, method, _wrapper(getattr(base, method), after))
        _wrapped.append(True)


def _wrapper(method: Any, after: Any) -> Any:
    @functools.wraps(method)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        pending = self.__dict__.get(_PENDING)
        in_atomic_block = self.in_atomic_block
        result = method(self, *args, **kwargs)
        if pending:
            with contextlib.suppress(Exception):  # telemetry never fails the app's transaction handling
                after(self, pending, in_atomic_block, *args)
        return result

    return wrapped


def _ended(connection: Any, pending: list) -> list:
    """All the connection's pending tasks, forgotten: its transaction ended."""
    ended = pending[:]
    pending.clear()
    connection.__dict__.pop(_OVERFLOW, None)
    return ended


def _after_commit(connection: Any, pending: list, _: bool) -> None:
    now = time.time()
    ended = _ended(connection, pending)
    delay = _counters()[3]
    for _sids, name, task_id, published, _count in ended:
        if task_id is not None:  # the counted ones beyond MAX_PENDING are not measured
            delay.record(max(0.0, now - published), {"celery.task_name": name})
    _event(COMMIT_EVENT, connection, ended, now)


def _after_rollback(connection: Any, pending: list, _: bool) -> None:
    _rolled_back(connection, _ended(connection, pending))


def _after_savepoint_rollback(connection: Any, pending: list, _: bool, sid: Any = None) -> None:
    ended = [entry for entry in pending if sid in entry[0]]
    if ended:
        pending[:] = [entry for entry in pending if sid not in entry[0]]
        overflow = connection.__dict__.get(_OVERFLOW)
        if overflow:
            for key in [key for key in overflow if sid in key[0]]:
                del overflow[key]
        _rolled_back(connection, ended)


def _after_close(connection: Any, pending: list, _: bool) -> None:
    # Tasks still pending were never committed (a commit forgets them): the database rolls their
    # transaction back, also when a failed commit's rollback failed too and Django closes the
    # connection with its atomic block already left.
    _rolled_back(connection, _ended(connection, pending))


def _rolled_back(connection: Any, ended: list) -> None:
    counter = _counters()[2]
    for _sids, name, _id, _published, count in ended:
        counter.add(count, {"celery.task_name": name})
    _event(ROLLBACK_EVENT, connection, ended, time.time())


def _event(name: str, connection: Any, ended: list, now: float) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    named = [entry for entry in ended[:_MAX_NAMED] if entry[2] is not None]
    attributes = {
        TASKS: [entry[1] for entry in named],
        TASK_IDS: [entry[2] for entry in named],
        TASK_COUNT: sum(entry[4] for entry in ended),
        DATABASE: connection.alias,
        ENDED_AT: now,
    }
    span.add_event(name, attributes, timestamp=int(now * 1e9))


def _counters() -> list[Any]:
    """The instruments of the meter provider of the moment (an app may set its own later)."""
    provider = metrics.get_meter_provider()
    if _instruments[0] is not provider:
        meter = provider.get_meter(_SCOPE)
        _instruments[:] = (
            provider,
            meter.create_counter(
                SENT, unit="{task}", description="Tasks published while a Django transaction had not committed."
            ),
            meter.create_counter(
                ROLLED_BACK,
                unit="{task}",
                description="Tasks published inside a Django transaction that then rolled back.",
            ),
            meter.create_histogram(
                COMMIT_DELAY,
                unit="s",
                description="From the publish of a task sent inside a Django transaction to that transaction's commit.",
                explicit_bucket_boundaries_advisory=_BUCKETS,
            ),
        )
    return _instruments
