"""Redis client commands, instrumented when the app imports redis; broker bookkeeping left out.

A Celery worker using Redis as its broker talks to it all the time on its own account:
restoring unacked messages, acks, fanout and heartbeats. Traced, each command is a
one-span trace of its own (thousands per hour, none tied to a task). Commands kombu's Redis
transport sends outside any span are therefore not traced; the same commands inside a span
(a publish from a request or a task) still are.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from otel_launch._runtime.integrations._instrumentor import inside_a_span, instrument_once

_BROKER_POOL_MARK = "_otel_launch_broker_pool"


def on_import(redis: ModuleType) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrument_once(RedisInstrumentor())


def on_kombu_import(transport: ModuleType) -> None:
    """Mark kombu's connection pools, and trace their commands only inside a span."""
    import redis.client
    from wrapt import wrap_function_wrapper

    create_client = transport.Channel._create_client

    def _create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        setattr(client.connection_pool, _BROKER_POOL_MARK, True)
        return client

    transport.Channel._create_client = _create_client
    # Wrapped outside the contrib's wrappers (redis was imported, and instrumented, first), so
    # that the suppression is in place before the contrib decides whether to trace.
    for method in ("Redis.execute_command", "Pipeline.execute", "Pipeline.immediate_execute_command"):
        wrap_function_wrapper(redis.client, method, _untraced_outside_spans)


def _untraced_outside_spans(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if getattr(getattr(instance, "connection_pool", None), _BROKER_POOL_MARK, False) and not inside_a_span():
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with suppress_instrumentation():
            return wrapped(*args, **kwargs)
    return wrapped(*args, **kwargs)
