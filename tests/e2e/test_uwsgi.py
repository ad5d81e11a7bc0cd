"""The shop on uWSGI (the ``uwsgi`` package), as its users start it, under otel-launch.

uWSGI loads the app in its master and forks the workers from C (no Python fork hooks run), or
loads it in each worker (``--lazy-apps``). Stopped with SIGINT (``uwsgi --stop``: "immediately
kill the entire uWSGI stack") right after the last response, when a worker may still be finishing
its request: uWSGI then skips that worker's atexit handlers. Counted at the receiver: every
server span, its SQL, each POST's trace through the Celery task it enqueued, and the request
metrics of every worker under its own identity.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tests.e2e.shop import BIN, named, points_by_pid, server_spans, telemetry_noise, traces
from tests.helpers import SERVICES_USED, free_port, wait_until

pytestmark = pytest.mark.e2e
GETS = [f"/orders/{pk}/" for pk in range(1, 11)] + ["/orders/"] * 10
POSTS = 10
MODES = {
    "master-loaded": [],
    "threads": ["--threads", "2"],
    "lazy-apps": ["--lazy-apps"],
    "die-on-term": ["--die-on-term"],  # SIGTERM then shuts down (each worker gets SIGINT)
    "py-call-osafterfork": ["--py-call-osafterfork"],  # Python's fork hooks run too: renewed once
}


def uwsgi(shop, *options: str, ini: bool = False, **env: str):
    if not (BIN / "uwsgi").exists():
        pytest.skip("uwsgi is not installed (the test extra installs it)")
    port = free_port()
    settings = ["--http", f"127.0.0.1:{port}", "--module", "shop.wsgi", "--master", "--processes", "2", *options]
    if ini:  # the same settings from an ini file, as deployments keep them
        path = shop.workdir / "uwsgi.ini"
        lines = []
        for setting in settings:
            if setting.startswith("--"):
                lines.append(f"{setting[2:]} = true")
            else:
                lines[-1] = lines[-1].removesuffix("true") + setting
        path.write_text("[uwsgi]\n" + "\n".join(lines) + "\n")
        settings = ["--ini", str(path)]
    SERVICES_USED.append(f"uwsgi {' '.join(settings)}")
    return shop.serve("uwsgi", [str(BIN / "uwsgi"), *settings], port, "shop-web", **env)


def send_traffic(shop, port: int) -> list[int]:
    """30 requests, 4 at a time: 20 GETs and 10 POSTs that each enqueue a task."""
    work = [("GET", path) for path in GETS] + [("POST", "/orders/")] * POSTS
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(lambda item: shop.request(port, item[0], item[1], {} if item[0] == "POST" else None), work)
        return [status for status, _ in answers]


def children(receiver, span) -> list:
    return sorted((s for s in receiver.spans if s.parent_span_id == span.span_id), key=lambda s: s.name)


def assert_every_request_delivered_with_its_sql(receiver) -> list:
    spans = [s for s in server_spans(receiver) if s.name != "GET /health/"]
    assert Counter(s.name for s in spans) == {"GET /orders/<int:pk>/": 10, "GET /orders/": 10, "POST /orders/": 10}
    for span in spans:
        names = [s.name for s in children(receiver, span)]
        if span.name == "GET /orders/":
            assert names == ["SELECT"], names
        elif span.name == "POST /orders/":
            assert "INSERT" in names and "apply_async/orders.tasks.fulfil_order" in names, names
        else:  # the cache's miss (query, fill) or hit
            assert names in (["SELECT", "cache.get", "cache.set"], ["cache.get"]), names
    return spans


@pytest.mark.parametrize("mode", [*MODES, "ini"])
def test_uwsgi_stopped_by_sigint_right_after_the_last_request_loses_nothing(shop, mode):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    web = uwsgi(shop, *MODES.get(mode, []), ini=mode == "ini")
    statuses = send_traffic(shop, web.port)
    stop = signal.SIGTERM if mode == "die-on-term" else signal.SIGINT
    assert shop.stop(web, stop, timeout=30) == 0, shop.output(web)[-3000:]
    assert Counter(statuses) == {200: 20, 201: 10}
    shop.wait_for_executions(2 * POSTS)  # each fulfil_order enqueues a notify_customer
    assert shop.stop(worker) == 0

    receiver = shop.receiver
    spans = assert_every_request_delivered_with_its_sql(receiver)
    # Each POST: one trace, from the web server span through its publish to the worker's run span.
    by_trace = traces(receiver)
    for post in (s for s in spans if s.name == "POST /orders/"):
        trace = by_trace[post.trace_id]
        (publish,) = [s for s in trace if s.name == "apply_async/orders.tasks.fulfil_order"]
        (run,) = [s for s in trace if s.name == "run/orders.tasks.fulfil_order"]
        assert publish.parent_span_id == post.span_id and run.parent_span_id == publish.span_id
    assert len(named(receiver, "run/orders.tasks.fulfil_order")) == POSTS

    # Every worker that served is itself: its pid (not the master's), its own instance id, and
    # its request metrics (exported at its exit: the interval is 10 minutes here).
    served_by = {s.resource["process.pid"] for s in spans}
    assert web.pid not in served_by
    instance_ids = {s.resource["process.pid"]: s.resource["service.instance.id"] for s in spans}
    assert len(set(instance_ids.values())) == len(served_by)
    reported = points_by_pid(receiver, "http.server.duration")
    assert served_by <= set(reported)
    assert all(reported[pid] == {instance_ids[pid]} for pid in served_by)
    assert telemetry_noise(shop.output(web)) == []


def test_uwsgi_workers_recycled_by_max_requests_lose_nothing(shop):
    worker = shop.worker("--pool", "prefork", "--concurrency", "2")
    # uWSGI recycles no worker younger than --min-worker-lifetime (10 s by default).
    web = uwsgi(shop, "--max-requests", "5", "--min-worker-lifetime", "0")
    statuses = send_traffic(shop, web.port)

    def respawned() -> bool:
        # uWSGI 2.0's own race: a SIGINT while the master sleeps before a respawn ("respawning too
        # fast") leaves the respawned worker running, and the master waiting for it (without
        # otel-launch too). Stop once the last respawn is done.
        output = shop.output(web)
        return output.rfind("Respawned uWSGI worker") > output.rfind("respawning too fast")

    wait_until(respawned, 15, "uWSGI's last respawn")
    assert shop.stop(web, signal.SIGINT, timeout=30) == 0, shop.output(web)[-3000:]
    assert Counter(statuses) == {200: 20, 201: 10}
    shop.wait_for_executions(2 * POSTS)
    assert shop.stop(worker) == 0

    spans = assert_every_request_delivered_with_its_sql(shop.receiver)
    served_by = {s.resource["process.pid"] for s in spans}
    assert len(served_by) >= 6  # 31 requests (the health check too), 5 per worker life
    reported = points_by_pid(shop.receiver, "http.server.duration")
    assert served_by <= set(reported)
    assert len({next(iter(reported[pid])) for pid in served_by}) == len(served_by)
    assert telemetry_noise(shop.output(web)) == []


WSGI_APP = """
from opentelemetry import trace

tracer = trace.get_tracer("app")


def application(environ, start_response):
    with tracer.start_as_current_span("served"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
"""


def _stats(port: int) -> dict:
    import json
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def _idle_after_one_request(port: int) -> bool:
    try:
        workers = _stats(port)["workers"]
    except (OSError, ValueError):
        return False
    return [(w["requests"], w["status"]) for w in workers] == [(1, "idle")]


# alone: the stop is timed against the 3 s flush bound.
@pytest.mark.alone
@pytest.mark.parametrize("extra", [[], ["--py-call-osafterfork"]], ids=["plain", "py-call-osafterfork"])
def test_a_stop_with_the_collector_down_waits_the_flush_bound_once(tmp_path, extra):
    """SIGINT at an idle worker: our signal relay flushes (the bound passes: no collector), then
    uWSGI's exit runs the atexit handlers, whose flush waited the whole bound again."""
    import time

    from tests.helpers import clean_env, kill_group, launcher, start

    if not (BIN / "uwsgi").exists():
        pytest.skip("uwsgi is not installed (the test extra installs it)")
    (tmp_path / "app.py").write_text(WSGI_APP)
    http, stats, dead = free_port(), free_port(), free_port()
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead}",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LAUNCH_SHUTDOWN_TIMEOUT="3",
        OTEL_SERVICE_NAME="bound",
    )
    command = [str(BIN / "uwsgi"), "--http", f"127.0.0.1:{http}", "--wsgi-file", "app.py", "--master"]
    command += ["--processes", "1", "--stats", f"127.0.0.1:{stats}", *extra]
    SERVICES_USED.append(f"uwsgi {' '.join(command[1:])}")
    server = start([*launcher(), *command], env, tmp_path)
    try:
        import urllib.request

        def answered() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answered, 30, "uWSGI's first answer")
        wait_until(lambda: _idle_after_one_request(stats), 15, "the worker idle after its request")
        sent = time.monotonic()
        server.send_signal(signal.SIGINT)
        server.wait(30)
        took = time.monotonic() - sent
    finally:
        out, err = kill_group(server)
    assert server.returncode == 0, err[-3000:]
    assert err.count("gave up flushing telemetry after 3s") == 1, err[-3000:]  # the worker's, said once
    assert took < 5, (took, err[-3000:])  # the 3 s bound once (twice: 6 s and more)
