"""A request's trace context and baggage reach the view, and its server span, as under
``opentelemetry-instrument``, sampled or not, under each propagator: the request path skips the
extraction for a request that carries none of the known propagators' headers
(integrations/_lean_context.py), and asks any other propagator as it is."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_launch.local.receiver import OTLPReceiver
from tests.helpers import PYTHON, TARGETS, clean_env, kill_group, launcher, start

pytest.importorskip("django")
pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
UPSTREAM = Path(PYTHON).parent / "opentelemetry-instrument"
TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
INCOMING_TRACE = {"trace": "incoming", "span": "own"}
SERVER = 2  # SpanKind.SERVER + 1 in OTLP numbering


@pytest.fixture
def receivers() -> Iterator[tuple[OTLPReceiver, OTLPReceiver]]:
    with OTLPReceiver(grpc_port=0, http_port=0) as ours, OTLPReceiver(grpc_port=0, http_port=0) as upstream:
        yield ours, upstream


def _seen(process: subprocess.Popen) -> list[dict]:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_group(process)
        pytest.fail(f"{process.args} did not finish within 60s")
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _server_spans(receiver: OTLPReceiver, count: int) -> list[tuple]:
    if count:
        assert receiver.wait_for(lambda r: sum(s.kind == SERVER for s in r.spans) == count, timeout=15)
    return sorted(
        (s.trace_id == TRACE_ID, s.parent_span_id == SPAN_ID, s.name.replace(" /", " "))
        for s in receiver.spans
        if s.kind == SERVER
    )


PROPAGATORS = [None, "tracecontext,baggage", "baggage,tracecontext", "tracecontext", "b3"]
SAMPLERS = {"ratio-0": ("parentbased_traceidratio", "0"), "always-on": ("parentbased_always_on", "")}


@pytest.mark.parametrize(
    ("propagators", "sampler"),
    [(p, "ratio-0") for p in PROPAGATORS] + [(None, "always-on")],
    ids=[f"{p or 'default'}-ratio-0" for p in PROPAGATORS] + ["default-always-on"],
)
def test_the_view_and_the_server_span_see_what_opentelemetry_instrument_gives_them(
    receivers, workdir, propagators, sampler
):
    if propagators == "b3":
        pytest.importorskip("opentelemetry.propagators.b3")
    name, argument = SAMPLERS[sampler]
    settings = {"OTEL_TRACES_SAMPLER": name, "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    if argument:
        settings["OTEL_TRACES_SAMPLER_ARG"] = argument
    if propagators:
        settings["OTEL_PROPAGATORS"] = propagators
    env = clean_env(
        SHOP_DB=str(workdir / "shop.sqlite3"),
        DJANGO_SETTINGS_MODULE="shop.settings",  # opentelemetry-instrument reads them at start-up
        PYTHONPATH=str(SHOP),
        # What the target never imports (their instrumentors' loading is most of upstream's start-up).
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="celery,redis,requests,urllib3,httpx,psycopg,psycopg2,sqlalchemy",
        **settings,
    )
    mine, theirs = receivers
    target = [PYTHON, str(TARGETS / "django_propagation.py"), str(SHOP)]
    processes = [
        start([*launcher(), *target], {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": mine.grpc_endpoint}, workdir),
        start([str(UPSTREAM), *target], {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": theirs.grpc_endpoint}, workdir),
    ]
    try:
        ours, upstream = _seen(processes[0]), _seen(processes[1])
    finally:
        for process in processes:
            if process.returncode is None:
                kill_group(process)
    assert len(ours) == 7
    assert ours == upstream
    # What each propagator carries, as it should: the W3C headers by the default, B3's by B3 alone.
    w3c, baggage = (
        propagators in (None, "tracecontext,baggage", "baggage,tracecontext", "tracecontext"),
        (propagators in (None, "tracecontext,baggage", "baggage,tracecontext")),
    )
    assert [{k: v for k, v in seen.items() if k in ("trace", "span")} == INCOMING_TRACE for seen in ours] == [
        False,
        w3c,
        w3c,
        w3c,
        False,
        propagators == "b3",
        False,
    ]
    assert [seen["baggage"] for seen in ours][3:5] == (
        [{"tenant": "acme"}, {"tenant": "acme", "region": "eu"}] if baggage else [{}, {}]
    )
    # The server spans: the same, each in the caller's trace under the caller's span where it came in.
    recorded = sum(seen["sampled"] for seen in ours)
    assert _server_spans(mine, recorded) == _server_spans(theirs, recorded)
