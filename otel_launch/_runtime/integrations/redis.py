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

from otel_launch._runtime.integrations._instrumentor import instrument_once

_BROKER_POOL_MARK = "_otel_launch_broker_pool"
_CONTRIB = "opentelemetry.instrumentation.redis"


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
    # that the decision is taken before the contrib's.
    for method in ("Redis.execute_command", "Pipeline.execute", "Pipeline.immediate_execute_command"):
        class_name, _, name = method.partition(".")
        wrap_function_wrapper(
            redis.client, method, _untraced_outside_spans(vars(getattr(redis.client, class_name))[name])
        )


def _untraced_outside_spans(contrib: Any) -> Any:
    """The wrapper of one method. A broker command outside a span skips the contrib's wrapper
    (``contrib``, when it is the contrib's: then straight to the function it wraps; a wrapper of
    someone else's still runs, under ``suppress_instrumentation``). The consumer of a worker
    sends a few such commands a task (acks, prefetch bookkeeping), so this path is kept short."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation
    from opentelemetry.trace import get_current_span

    wrapper = getattr(contrib, "_self_wrapper", None)  # wrapt's FunctionWrapper
    original = contrib.__wrapped__ if getattr(wrapper, "__module__", "") == _CONTRIB else None

    def untraced_outside_spans(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if getattr(instance.connection_pool, _BROKER_POOL_MARK, False) and not (
            get_current_span().get_span_context().is_valid
        ):
            if original is not None:
                return original(instance, *args, **kwargs)
            with suppress_instrumentation():
                return wrapped(*args, **kwargs)
        return wrapped(*args, **kwargs)

    return untraced_outside_spans
