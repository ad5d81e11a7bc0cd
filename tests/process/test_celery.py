"""Celery producer spans through the real launcher (in-memory broker: no server needed)."""

from __future__ import annotations

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytest.importorskip("celery")
pytestmark = pytest.mark.process
PRODUCER = 4  # SpanKind.PRODUCER + 1 in OTLP numbering


def test_task_known_only_by_name_gets_a_publish_span_that_does_not_stay_current(receiver, workdir):
    # The contrib keeps no reference to this span (no task object to hang it on); it ends when
    # its context manager is collected. Checked here so that this stays true.
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    result = run([*launcher(), PYTHON, str(TARGETS / "celery_send_by_name.py")], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: len(r.spans) >= 2, timeout=10)
    by_name = {span.name: span for span in receiver.spans}
    publish = by_name["apply_async/billing.tasks.charge"]
    assert publish.kind == PRODUCER and publish.end_ns > publish.start_ns
    # The next span of the app is a root of its own, not a child of a publish left current.
    assert by_name["after-the-publish"].parent_span_id == ""


BROKER_COMMANDS = """
import os

from kombu import Connection
from opentelemetry import trace

with Connection(os.environ["BROKER_URL"]) as connection:
    client = connection.default_channel.client  # made by kombu's transport: a broker client
    client.execute_command("PING")  # its own bookkeeping, outside any span: untraced
    with client.pipeline() as pipe:
        pipe.ping()
        pipe.execute()
    with trace.get_tracer("test").start_as_current_span("inside"):
        client.execute_command("PING")
        with client.pipeline() as pipe:
            pipe.ping()
            pipe.execute()
"""


def test_broker_commands_are_traced_only_inside_a_span(receiver, workdir):
    """The consumer's Redis commands skip the contrib's wrapper outside a span (integrations/redis.py);
    inside one they are the contrib's client spans, as any other Redis command."""
    from examples.redis_server import redis_for_run

    pytest.importorskip("redis")
    script = workdir / "broker_commands.py"
    script.write_text(BROKER_COMMANDS)
    with redis_for_run(workdir) as redis:  # a private redis-server (read-only PINGs are all this test sends)
        if redis.url is None:
            pytest.skip(f"no Redis: {redis.description}")
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none", BROKER_URL=redis.url
        )
        result = run([*launcher(), PYTHON, str(script)], env, workdir)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: len(r.spans) >= 3, timeout=10)
    (inside,) = [s for s in receiver.spans if s.name == "inside"]
    assert sorted(s.name for s in receiver.spans if s is not inside) == ["PING", "PING"]  # command, pipeline
    assert all(s.parent_span_id == inside.span_id for s in receiver.spans if s is not inside)
