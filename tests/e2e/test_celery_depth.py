"""Celery depth on a real broker and a real prefork worker: queue time, worker metrics, tasks
whose child is killed, canvas and beat in one trace, and an app with its own telemetry."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.e2e.shop import BIN, SHOP, named, service, telemetry_noise, traces
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
TASK_ID = "messaging.message.id"


def publish(shop, code: str, service: str | None = "shop-command") -> None:
    """Publish tasks from ``manage.py shell -c``, inside one span named "publish" (the trace of the caller),
    under otel-launch unless ``service`` is None."""
    body = "\n".join(f"    {line}" for line in code.splitlines())
    script = (
        "from opentelemetry import trace\nfrom orders import tasks\n"
        f"with trace.get_tracer('shop').start_as_current_span('publish'):\n{body}\n"
    )
    status, output = shop.manage("shell", "-c", script, service=service)
    assert status == 0, output


def run_span(shop, task_id: str):
    (span,) = [s for s in named(shop.receiver, "run/") if s.attributes.get(TASK_ID) == task_id]
    return span


def points(shop, metric: str) -> list:
    return [p for p in shop.receiver.points if p.metric == metric]


# alone: both prefork children must take a share of a 0.3 s-a-task backlog, and its age is timed.
@pytest.mark.alone
def test_queue_time_of_a_backlog_and_worker_metrics_from_every_child(shop):
    # 0.3 s each: a pool child that ran trivial tasks emptied the backlog alone before the other took one.
    publish(shop, "for i in range(6): tasks.notify_customer.delay(i, 0.3)")
    publish(shop, "tasks.notify_customer.delay(99)", service=None)  # an uninstrumented producer
    published = time.monotonic()
    wait_until(lambda: time.monotonic() - published >= 1.5, 5, "a backlog 1.5 s old")  # the age under test
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    started = time.monotonic()
    shop.wait_for_executions(7)
    assert shop.stop(worker) == 0
    executions = shop.executions()

    waited = started - published
    for execution in executions:
        span = run_span(shop, execution["id"])
        attributes = span.attributes
        if execution["order"] == 99:  # no publish time in its headers: counted from its receipt
            assert attributes["celery.task.queue_time.since"] == "received"
            assert 0 <= attributes["celery.task.queue_time"] < waited
        else:
            assert "celery.task.queue_time.since" not in attributes  # said only when not from the publish
            assert attributes["celery.task.queue_time"] >= waited
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == shop.base_env["SHOP_QUEUE"]
        assert attributes["messaging.system"] == shop.broker
        assert attributes["celery.state"] == "SUCCESS" and attributes["celery.action"] == "run"

    # Every pool child that ran a task reports its durations, queue times and executions.
    children = {e["pid"] for e in executions}
    assert len(children) == 2, "both children ran tasks"
    for metric in ("messaging.process.duration", "celery.task.queue_time", "celery.task.executions"):
        by_pid = Counter()
        for point in points(shop, metric):
            by_pid[point.resource["process.pid"]] += point.count if point.count is not None else point.value
            assert point.attributes["celery.task_name"] == "orders.tasks.notify_customer"
            assert point.attributes["messaging.destination.name"] == shop.base_env["SHOP_QUEUE"]
        assert set(by_pid) == children, metric
        assert sum(by_pid.values()) == 7, metric
    assert {p.attributes["celery.state"] for p in points(shop, "celery.task.executions")} == {"SUCCESS"}
    assert telemetry_noise(shop.output(worker)) == []


# alone: the load is sampled every 200 ms while a 2 s countdown runs (a starved worker missed the sample).
@pytest.mark.alone
def test_countdown_is_not_queue_time_and_the_worker_shows_its_load(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2", OTEL_METRIC_EXPORT_INTERVAL="200")
    publish(shop, "tasks.remind_customer.apply_async((7,), countdown=2)")
    publish(shop, "for _ in range(8): tasks.export_orders.delay(0.3)")
    shop.wait_for_executions(9)
    assert shop.stop(worker) == 0
    (remind,) = [e for e in shop.executions() if e["task"] == "orders.tasks.remind_customer"]
    span = run_span(shop, remind["id"])
    (publish_span,) = [s for s in named(shop.receiver, "apply_async/orders.tasks.remind_customer")]
    assert span.start_ns - publish_span.start_ns >= 1.9e9  # it did wait for its countdown (set just before)
    assert span.attributes["celery.task.queue_time.since"] == "eta"
    assert span.attributes["celery.task.queue_time"] < 1.5

    # The main process's view of its load, sampled every 200 ms while 8 tasks of 0.3 s ran on 2 children.
    def peak(metric: str) -> float:
        values = [p.value for p in points(shop, metric) if p.resource["process.pid"] == worker.pid]
        assert values, metric
        return max(values)

    assert peak("celery.worker.tasks.executing") == 2
    assert peak("celery.worker.tasks.prefetched") >= 1
    assert peak("celery.worker.tasks.scheduled") == 1  # the reminder, while it waited for its countdown


# alone: the time-limited task's span is held to under 3 s.
@pytest.mark.alone
def test_a_task_over_its_time_limit_or_whose_child_died_is_an_error_in_its_trace(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    publish(shop, "tasks.export_orders.delay(5)\ntasks.crash_worker.delay()\ntasks.notify_customer.delay(1)")
    shop.wait_for_executions(3)
    (command,) = [s for s in shop.receiver.spans if s.name == "publish"]

    def runs() -> dict:
        return {s.name: s for s in named(shop.receiver, "run/")}

    expected = {"run/orders.tasks.export_orders", "run/orders.tasks.crash_worker", "run/orders.tasks.notify_customer"}
    # The killed ones come from the main process, the third from a child, within about a second each.
    try:
        wait_until(lambda: set(runs()) == expected, 30, "the three run spans")
    except pytest.fail.Exception:
        pytest.fail(f"run spans {sorted(runs())}; worker output:\n{shop.output(worker)[-3000:]}")
    assert shop.stop(worker) == 0
    assert Counter(s.name for s in named(shop.receiver, "run/")) == Counter(expected), "one run span a task"
    spans = runs()
    timed_out, lost = spans["run/orders.tasks.export_orders"], spans["run/orders.tasks.crash_worker"]
    for span, error in ((timed_out, "TimeLimitExceeded"), (lost, "WorkerLostError")):
        assert span.status == "ERROR", span.name
        assert span.attributes["error.type"] == error
        (event,) = [e for e in span.events if e["name"] == "exception"]
        assert event["exception.type"] == f"billiard.exceptions.{error}"
        assert span.trace_id == command.trace_id and span.parent_span_id, "in the trace of its publish"
        assert service(span) == "shop-worker"
        assert span.resource["process.pid"] == worker.pid, "recorded by the main process"
    assert 0.9e9 <= timed_out.end_ns - timed_out.start_ns < 3e9
    assert spans["run/orders.tasks.notify_customer"].status != "ERROR"
    failures = [p for p in points(shop, "messaging.process.duration") if p.attributes.get("error.type")]
    assert {p.attributes["error.type"] for p in failures} == {"TimeLimitExceeded", "WorkerLostError"}


def test_a_running_task_revoked_with_terminate_is_an_error_in_its_trace(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    publish(shop, "tasks.export_orders.apply_async((60,), time_limit=120)")  # runs until revoked
    (running,) = shop.wait_for_executions(1)
    (command,) = [s for s in shop.receiver.spans if s.name == "publish"]
    revoke = f"from shop.celery import app\napp.control.revoke({running['id']!r}, terminate=True)"
    status, output = shop.manage("shell", "-c", revoke, service=None)
    assert status == 0, output
    revoked = time.time_ns()
    try:
        wait_until(lambda: named(shop.receiver, "run/"), 30, "the revoked task's run span")
    except pytest.fail.Exception:
        pytest.fail(f"no run span; worker output:\n{shop.output(worker)[-3000:]}")
    publish(shop, "tasks.notify_customer.delay(1)")  # the worker runs on, with a new child
    shop.wait_for_executions(2)
    assert shop.stop(worker) == 0
    spans = named(shop.receiver, "run/orders.tasks.export_orders")
    assert len(spans) == 1, "one run span"
    (span,) = spans
    assert span.status == "ERROR"
    assert span.attributes["error.type"] == "TaskRevokedError"
    assert span.attributes["celery.state"] == "REVOKED"
    assert span.attributes[TASK_ID] == running["id"]
    (event,) = [e for e in span.events if e["name"] == "exception"]
    assert event["exception.type"] == "celery.exceptions.TaskRevokedError"
    assert span.trace_id == command.trace_id and span.parent_span_id, "in the trace of its publish"
    assert span.resource["process.pid"] == worker.pid, "recorded by the main process"
    assert span.start_ns < revoked and abs(span.end_ns - revoked) < 10e9
    revocations = [p for p in points(shop, "celery.task.executions") if p.attributes["celery.state"] == "REVOKED"]
    assert {p.resource["process.pid"] for p in revocations} == {worker.pid}
    assert max(p.value for p in revocations) == 1
    assert telemetry_noise(shop.output(worker)) == []


def test_canvas_runs_in_the_trace_of_its_caller(shop):
    shop.base_env["SHOP_RESULT_BACKEND"] = f"file://{shop.workdir}/results"
    (shop.workdir / "results").mkdir()
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    publish(
        shop,
        "from celery import chain, chord, group\n"
        "chain(tasks.add.s(1, 2), tasks.add.s(3)).apply_async()\n"
        "group(tasks.add.s(i, i) for i in range(3)).apply_async()\n"
        "chord((tasks.add.s(i, 1) for i in range(3)), tasks.total.s()).apply_async()\n",
    )
    shop.wait_for_executions(2 + 3 + 3 + 1)
    assert shop.stop(worker) == 0
    (command,) = [s for s in shop.receiver.spans if s.name == "publish"]
    runs = [s for s in named(shop.receiver, "run/orders.tasks.")]
    assert Counter(s.name for s in runs) == {"run/orders.tasks.add": 8, "run/orders.tasks.total": 1}
    assert {s.trace_id for s in runs} == {command.trace_id}
    assert all(s.parent_span_id for s in runs)


def test_beat_publishes_are_connected_to_their_runs(shop):
    ticks = shop.workdir / "ticks"
    worker = shop.worker("--pool", "prefork", "--concurrency", "2", SHOP_TICKS=str(ticks))
    beat = shop.start(
        "beat",
        [str(BIN / "celery"), "-A", "shop", "beat", "-l", "info", "-s", str(shop.workdir / "schedule")],
        service="shop-beat",
        SHOP_BEAT_EVERY="0.5",
    )
    wait_until(lambda: ticks.exists() and len(ticks.read_text().split()) >= 3, 30, "3 scheduled ticks run")
    assert shop.stop(beat) == 0
    assert shop.stop(worker) == 0
    publishes = {s.span_id: s for s in named(shop.receiver, "apply_async/orders.tasks.tick")}
    runs = named(shop.receiver, "run/orders.tasks.tick")
    assert len(runs) >= 3 and len(publishes) >= len(runs)
    for run in runs:
        parent = publishes[run.parent_span_id]
        assert service(parent) == "shop-beat" and parent.kind == 4  # PRODUCER
        assert not parent.parent_span_id, "each scheduled publish starts its trace"
    # Beat's own broker traffic is traced only inside a publish (the publish's own commands).
    beat_spans = [s for s in shop.receiver.spans if service(s) == "shop-beat"]
    assert [s.name for s in beat_spans if s.span_id not in publishes and s.parent_span_id not in publishes] == []
    assert telemetry_noise(shop.output(beat)) == []
    assert len(traces(shop.receiver)) >= len(runs)


def test_an_app_with_its_own_telemetry_keeps_its_resource_in_every_process(shop):
    """The shop's SHOP_OWN_TELEMETRY variant (shop/telemetry.py): providers, resource and
    instrumentors of its own, set in wsgi.py and in every pool child, as the guides do."""
    web = shop.gunicorn("-w", "1", SHOP_OWN_TELEMETRY="1")
    worker = shop.worker("--pool", "prefork", "--concurrency", "2", SHOP_OWN_TELEMETRY="1")
    statuses = [shop.request(web.port, "POST", "/orders/", {"customer": f"c{i}"})[0] for i in range(3)]
    assert statuses == [201] * 3
    assert shop.request(web.port, "GET", "/orders/1/")[0] == 200
    executions = shop.wait_for_executions(6)
    assert shop.stop(worker) == 0
    assert shop.stop(web) == 0
    spans = shop.receiver.spans

    strays = [(service(s), s.name, s.resource["process.pid"]) for s in spans if not s.resource.get("service.version")]
    assert strays == [], f"worker main process {worker.pid}, web {web.pid}: {strays}"
    assert {(service(s), s.resource.get("service.version")) for s in spans} == {
        ("shop-own-web", "2.4.1"),
        ("shop-own-worker", "2.4.1"),
    }
    runs = named(shop.receiver, "run/")
    assert Counter(s.attributes[TASK_ID] for s in runs) == Counter(e["id"] for e in executions), "one run span a task"
    assert {s.resource["process.pid"] for s in runs} == {e["pid"] for e in executions}
    requests = Counter(s.name for s in spans if s.kind == 2 and s.name != "GET /health/")  # SERVER
    assert requests == {"POST /orders/": 3, "GET /orders/<int:pk>/": 1}
    assert len(named(shop.receiver, "apply_async/")) == 6, "one publish span a task"
    for run in runs:  # each run in its request's trace
        assert run.parent_span_id and run.trace_id in {s.trace_id for s in spans if s.name == "POST /orders/"}
    # The app's meter providers get the worker metrics, in every child.
    reported = {p.resource["process.pid"] for p in shop.receiver.points if p.metric == "messaging.process.duration"}
    assert reported == {e["pid"] for e in executions}
    apps = [p for p in shop.receiver.points if p.resource["process.pid"] != worker.pid]  # it sets none in the main
    assert {p.resource.get("service.version") for p in apps} == {"2.4.1"}
    for process in (web, worker):
        output = shop.output(process)
        assert telemetry_noise(output) == []
        assert [line for line in output.splitlines() if "instrument" in line] == []


# What our worker path adds to the contrib's run spans; everything else must be the contrib's.
OURS_ONLY = {
    "messaging.operation.type",
    "messaging.system",
    "messaging.destination.name",
    "celery.task.queue_time",
    "celery.task.queue_time.since",
    "error.type",
    "celery.task.cpu_time",
    "celery.task.memory.peak_growth",
    "celery.beat.entry",
}
PER_MESSAGE = {"messaging.message.id", "messaging.conversation_id", "celery.reply_to", "celery.hostname"}


def test_run_spans_record_what_the_contrib_records(shop):
    """The same tasks (success, retry, failure) drained by a worker under opentelemetry-instrument
    (the contrib's worker side), then by one under otel-launch (ours): same spans, same metric."""

    def drain(prefix: list[str] | None, service_name: str) -> tuple[list, list]:
        shop.receiver.spans.clear()
        shop.receiver.points.clear()
        status, output = shop.manage("place_orders", "1", "--charge", "--refund")
        assert status == 0, output
        before = len(shop.executions())
        if prefix:  # upstream: its pool children never flush at exit, so export often and wait for it
            env = {
                "OTEL_SERVICE_NAME": service_name,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "200",
                # opentelemetry-instrument reads Django settings at start-up: they must import then.
                "PYTHONPATH": str(SHOP),
                "DJANGO_SETTINGS_MODULE": "shop.settings",
            }
            command = [str(BIN / "celery"), "-A", "shop", "worker", "-l", "info", "--without-mingle"]
            worker = shop.start(
                service_name, [*prefix, *command, "--without-gossip", "-P", "prefork", "-c", "2"], **env
            )
        else:
            # The contrib's Flower metric, which otel-launch records only when asked, compared below.
            flower = {"OTEL_LAUNCH_CELERY_FLOWER_METRIC": "true"}
            worker = shop.worker("--pool", "prefork", "--concurrency", "2", service=service_name, **flower)
        shop.wait_for_executions(before + 5)

        def flower_count() -> int:
            latest = {}  # cumulative points: the last one of each child and attribute set
            for point in shop.receiver.points:
                if point.metric == "flower.task.runtime.seconds":
                    latest[(repr(sorted(point.resource.items())), repr(sorted(point.attributes.items())))] = point.count
            return sum(latest.values())

        if prefix:
            wait_until(lambda: len(named(shop.receiver, "run/")) >= 5 and flower_count() >= 5, 30, "upstream's export")
        assert shop.stop(worker) == 0
        assert flower_count() == 5
        return named(shop.receiver, "run/"), [
            p for p in shop.receiver.points if p.metric == "flower.task.runtime.seconds"
        ]

    upstream_runs, upstream_points = drain([str(BIN / "opentelemetry-instrument")], "upstream-worker")
    our_runs, our_points = drain(None, "shop-worker")

    def comparable(spans: list) -> list:
        rows = []
        for span in spans:
            attributes = {k: v for k, v in span.attributes.items() if k not in OURS_ONLY}
            values = {k: ("<set>" if k in PER_MESSAGE else v) for k, v in attributes.items()}
            values.pop("celery.delivery_info", None)  # a repr of the delivery dict: compared below by its queue
            exceptions = [e["exception.type"] for e in span.events if e["name"] == "exception"]
            rows.append(
                (span.name, span.kind, span.status, bool(span.parent_span_id), exceptions, sorted(values.items()))
            )
        return sorted(rows, key=repr)

    assert comparable(our_runs) == comparable(upstream_runs)
    assert len(our_runs) == 5
    assert {tuple(sorted(p.attributes)) for p in our_points} == {tuple(sorted(p.attributes)) for p in upstream_points}


def test_a_task_repeating_one_statement_marks_its_run_span(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "1")
    publish(shop, "tasks.check_orders.delay(list(range(1, 11)))\ntasks.check_orders.delay([1, 2, 3, 4])")
    shop.wait_for_executions(2)
    assert shop.stop(worker) == 0
    runs = [run_span(shop, execution["id"]) for execution in shop.executions()]
    marked = [span for span in runs if "otel_launch.n_plus_one.count" in span.attributes]
    assert len(marked) == 1 and len(runs) == 2, [span.attributes for span in runs]
    (span,) = marked
    assert span.attributes["otel_launch.n_plus_one.count"] == 10  # 4 repeats stay under the threshold of 5
    assert span.attributes["otel_launch.n_plus_one.statement"].startswith("SELECT")
    assert [event["name"] for event in span.events] == ["n_plus_one"]
