"""Celery through the real launcher (in-memory broker: no server needed), and its task tracer's
dispatch side by side with Celery's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytest.importorskip("celery")
pytestmark = pytest.mark.process
PRODUCER = 4  # SpanKind.PRODUCER + 1 in OTLP numbering
UPSTREAM = Path(PYTHON).parent / "opentelemetry-instrument"


def test_publish_spans_record_what_the_contribs_record(receiver, workdir):
    """A task published inside a span and run in-process, under ``opentelemetry-instrument`` (the
    contrib's producer handlers) and under otel-launch (ours, celery/worker.py): the same publish
    span (name, kind, status, scope, attributes), current while sent, its context in the message."""

    def published(prefix: list[str], service: str) -> tuple:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_SERVICE_NAME=service)
        env.update(OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="otlp")
        result = run([*prefix, PYTHON, str(TARGETS / "celery_in_process.py")], env, workdir)
        assert (result.returncode, result.stdout) == (0, "3\n"), result.stderr

        def mine() -> dict:
            return {s.name: s for s in receiver.spans if s.resource.get("service.name") == service}

        assert receiver.wait_for(lambda _: {"request", "apply_async/inproc.add", "run/inproc.add"} <= set(mine()), 15)
        spans = mine()
        publish = spans["apply_async/inproc.add"]
        assert publish.parent_span_id == spans["request"].span_id
        assert spans["run/inproc.add"].parent_span_id == publish.span_id
        assert publish.attributes["messaging.message.id"]
        attributes = {k: "<set>" if k == "messaging.message.id" else v for k, v in publish.attributes.items()}
        return publish.kind, publish.status, publish.scope, sorted(attributes.items())

    ours = published(launcher(), "ours")
    assert ours[0] == PRODUCER
    assert ours == published([str(UPSTREAM)], "upstream")


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


def test_tasks_sent_inside_django_transactions_and_savepoints(receiver, workdir):
    """Flagged only inside an atomic block; the commit names the tasks it kept, each rollback (a
    savepoint's, a transaction's) the tasks sent under it; counted per task name."""
    pytest.importorskip("django")
    import json

    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_SERVICE_NAME="tx")
    result = run([*launcher(), PYTHON, str(TARGETS / "django_transactions.py"), str(workdir)], env, workdir)
    assert result.returncode == 0, result.stderr
    ids = json.loads(result.stdout)
    assert [len(ids[role]) for role in ("committed", "undone", "after", "outside")] == [2, 3, 1, 1]
    assert receiver.wait_for(lambda r: len([s for s in r.spans if s.name.startswith("apply_async/")]) == 7, 15)
    flagged = {
        s.attributes["messaging.message.id"]
        for s in receiver.spans
        if s.name.startswith("apply_async/") and s.attributes.get("celery.task.sent_in_transaction") is True
    }
    assert flagged == set(ids["committed"] + ids["undone"])
    (job,) = [s for s in receiver.spans if s.name == "job"]
    ended = [(e["name"].rpartition(".")[2], e["otel_launch.transaction.task_ids"]) for e in job.events]
    undone = ids["undone"]
    assert ended == [("rollback", undone[:2]), ("commit", ids["committed"]), ("rollback", undone[2:])]
    assert all(
        e["otel_launch.transaction.tasks"] == ["tx.work"] * len(e["otel_launch.transaction.task_ids"])
        for e in job.events
    )

    def total(metric: str) -> float:
        points = [p for p in receiver.points if p.metric == metric]
        assert all(p.attributes == {"celery.task_name": "tx.work"} for p in points), points
        return sum(p.count if p.count is not None else p.value for p in points)

    assert receiver.wait_for(lambda r: any(p.metric == "celery.task.commit_delay" for p in r.points), 15)
    assert total("celery.task.sent_in_transaction") == 5
    assert total("celery.task.sent_in_rolled_back_transaction") == 3
    assert total("celery.task.commit_delay") == 2


# Celery's task tracer hands task_prerun/task_postrun to their receivers directly while all are for
# any sender (celery/dispatch.py): side by side with Celery's own dispatch, the same records.
TASKS = 7 * 2 + 2  # seven tasks sampled and unsampled through the worker's tracer, two eager ones


def _recorded(how: str, workdir) -> dict:
    env = clean_env(OTEL_METRICS_EXPORTER="none", OTEL_TRACES_EXPORTER="none")
    result = run([PYTHON, str(TARGETS / "celery_dispatch_side_by_side.py"), how], env, workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_direct_dispatch_records_what_celerys_dispatch_records(workdir):
    direct, signals = _recorded("direct", workdir), _recorded("signals", workdir)
    # Ours alone: Celery's dispatch never looked the receivers up; through the signals it did for every task.
    assert direct["alone"]["looked_up"] == {"task_prerun": 0, "task_postrun": 0}
    assert signals["alone"]["looked_up"] == {"task_prerun": TASKS, "task_postrun": TASKS}
    # With receivers of the app's beside ours, as Celery's Django fixup connects its own: still no
    # dispatch of Celery's, and they see every task as through it.
    assert direct["beside"]["looked_up"] == {"task_prerun": 0, "task_postrun": 0}
    assert signals["beside"]["looked_up"] == {"task_prerun": TASKS, "task_postrun": TASKS}
    assert direct["beside"]["seen_by_app"] == signals["beside"]["seen_by_app"]
    assert len(direct["beside"]["seen_by_app"]) == 2 * TASKS
    # One more receiver, for a specific task: Celery's dispatch for task_prerun, every task.
    assert direct["for_one"]["looked_up"] == {"task_prerun": TASKS, "task_postrun": 0}
    assert signals["for_one"]["looked_up"] == {"task_prerun": TASKS, "task_postrun": TASKS}
    assert direct["for_one"]["seen_by_app"] == signals["for_one"]["seen_by_app"]
    assert direct["for_one"]["seen_for_one"] == signals["for_one"]["seen_for_one"]
    assert len(direct["for_one"]["seen_by_app"]) == 2 * TASKS
    assert len(direct["for_one"]["seen_for_one"]) == 3  # side.ok sampled, unsampled, eager
    # The same spans (states, errors, retries, the publish inside a run) and the same metrics.
    assert direct["spans"] == signals["spans"]
    assert direct["metrics"] == signals["metrics"]
    states = {s["attributes"].get("celery.state") for s in direct["spans"] if s["name"].startswith("run/")}
    assert states == {"SUCCESS", "FAILURE", "RETRY", "IGNORED", "REJECTED"}
    assert {s["name"] for s in direct["spans"]} >= {"run/side.nested", "apply_async/side.ok"}
    executions = [m for m in direct["metrics"] if m[1] == "celery.task.executions"]
    assert sum(m[3] for m in executions) == 3 * TASKS  # three phases; unsampled tasks are counted too
