"""Deployment shapes beyond the usual ones: green-thread Celery pools, runserver stopped by SIGTERM.

Each is stopped right after its last piece of work, so what the receiver counts is what the
stop delivered (spans are batched for 5 s, the default).
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections import Counter

import pytest

from tests.e2e.shop import named, server_spans, service, telemetry_noise
from tests.helpers import PYTHON, SERVICES_USED, free_port

pytestmark = pytest.mark.e2e
TASK_ID = "messaging.message.id"  # the contrib's attribute for the Celery task id
REQUESTS = [f"/orders/{pk}/" for pk in range(1, 11)]


@pytest.mark.parametrize(
    ("pool", "entry"), [("gevent", "celery"), ("gevent", "python -m celery"), ("eventlet", "celery")]
)
def test_green_pool_runs_every_task_with_its_run_span_under_its_publish(shop, pool, entry):
    if importlib.util.find_spec(pool) is None:
        pytest.skip(f"{pool} is not installed on this Python")
    SERVICES_USED.append(f"{entry} worker --pool {pool} --concurrency 20 on {shop.broker}")
    options = ("--pool", pool, "--concurrency", "20")
    if entry == "celery":
        worker = shop.worker(*options)
    else:  # Celery patches before anything else either way; the module entry point checked too
        command = [PYTHON, "-m", "celery", "-A", "shop", "worker", "-l", "info", "--without-mingle", "--without-gossip"]
        worker = shop.start("worker", [*command, *options], service="shop-worker")
    status, output = shop.manage("place_orders", "10")
    assert status == 0, output
    # 10 fulfil_order from the command, each publishing a notify_customer from the worker.
    shop.wait_for_executions(20, timeout=45)
    assert shop.stop(worker) == 0, shop.output(worker)[-3000:]  # warm shutdown right after the last
    executions = shop.executions()
    assert Counter(e["task"].rpartition(".")[2] for e in executions) == {"fulfil_order": 10, "notify_customer": 10}

    spans = {span.span_id: span for span in shop.receiver.spans}
    runs = named(shop.receiver, "run/")
    assert Counter(span.attributes.get(TASK_ID) for span in runs) == Counter(e["id"] for e in executions)
    for run in runs:
        publish = spans.get(run.parent_span_id)
        assert publish is not None, f"{run.name}: its publish span did not arrive"
        assert publish.name == "apply_async/" + run.name.removeprefix("run/")
        assert publish.attributes.get(TASK_ID) == run.attributes.get(TASK_ID)
        assert publish.trace_id == run.trace_id and service(run) == "shop-worker"
    # The worker's own publishes (notify_customer) came through its exit flush too.
    assert len([s for s in named(shop.receiver, "apply_async/") if service(s) == "shop-worker"]) == 10
    assert telemetry_noise(shop.output(worker)) == []


@pytest.mark.parametrize("reload", [False, True], ids=["noreload", "autoreloader"])
def test_runserver_stopped_by_sigterm_delivers_what_it_served(shop, reload):
    """SIGTERM to the server's PID (as docker stop, a process manager or an IDE sends it), right
    after 10 requests: 10 server spans, and the same exit status as without the launcher."""
    statuses = {}
    for variant in ("plain", "launched"):
        port = free_port()
        command = [PYTHON, "manage.py", "runserver", *([] if reload else ["--noreload"]), f"127.0.0.1:{port}"]
        server = shop.serve(f"runserver-{variant}", command, port, "shop-dev" if variant == "launched" else None)
        assert shop.concurrently(port, REQUESTS, threads=2) == [200] * 10
        statuses[variant] = shop.stop(server, signal.SIGTERM, timeout=30)
        if variant == "launched":
            launched = server
    # Without the reloader the process dies by the signal; Django's reloader exits 0 on it.
    assert statuses["launched"] == statuses["plain"] == (0 if reload else -signal.SIGTERM)

    spans = [s for s in server_spans(shop.receiver) if s.name != "GET /health/"]
    assert len(spans) == 10
    (serving_pid,) = {s.resource["process.pid"] for s in spans}
    if reload:
        assert serving_pid != launched.pid  # served by the reloader's child, which left with it
        with pytest.raises(ProcessLookupError):
            os.kill(serving_pid, 0)
    else:
        assert serving_pid == launched.pid
    assert telemetry_noise(shop.output(launched)) == []
