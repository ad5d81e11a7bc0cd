"""An unsampled request or task costs propagation and its metrics, nothing else: asserted through
the code paths it takes (tests/targets/unsampled_paths.py records them), not through time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytest.importorskip("django")
pytest.importorskip("celery")
pytestmark = pytest.mark.process
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"

REQUEST_PATHS = [
    "otel_launch._runtime.integrations.django.n_plus_one.begin",
    "otel_launch._runtime.integrations.django.n_plus_one.count",
    "otel_launch._runtime.integrations.django.n_plus_one.end",
    "otel_launch._runtime.integrations.django.request._request_attributes",
    "otel_launch._runtime.integrations.django.sql._operation",
    "otel_launch._runtime.integrations.django.sql._start",
]


def _paths(receiver, workdir: Path, *sampler: str) -> dict[str, list[str]]:
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, SHOP_DB=str(workdir / "shop.sqlite3"))
    result = run([*launcher(), *sampler, PYTHON, str(TARGETS / "unsampled_paths.py"), str(SHOP)], env, workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "sampler",
    [
        ["--sampler", "parentbased_traceidratio", "--sample-rate", "0"],
        ["--sampler", "parentbased_always_off"],
        ["--sampler", "always_off"],
    ],
    ids=["ratio-0", "parentbased-off", "always-off"],
)
def test_unsampled_requests_and_tasks_call_no_attribute_collector_no_sql_span_path_no_n_plus_one(
    receiver, workdir, sampler
):
    assert _paths(receiver, workdir, *sampler) == {"request": [], "asgi request": [], "task": [], "publish": []}
    # Their metrics are recorded all the same: the server's and the task's durations.
    expected = {"http.server.duration", "messaging.process.duration"}
    assert receiver.wait_for(lambda r: expected <= {p.metric for p in r.points}, timeout=15)
    assert receiver.spans == []


def test_the_same_requests_and_tasks_sampled_take_those_paths(receiver, workdir):
    """The control: what the test above finds missing is what a sampled request and task call."""
    paths = _paths(receiver, workdir, "--sampler", "parentbased_always_on")
    lean_wsgi = (
        "otel_launch._runtime.integrations.django.request._wsgi_request_attributes"  # the contrib's, written out
    )
    assert paths["request"] == sorted([*REQUEST_PATHS, lean_wsgi])
    assert paths["asgi request"] == sorted(
        [*REQUEST_PATHS, "opentelemetry.instrumentation.asgi.collect_request_attributes"]
    )
    assert paths["task"] == sorted(
        [
            *REQUEST_PATHS[:3],
            *REQUEST_PATHS[4:],
            "opentelemetry.instrumentation.celery.utils.set_attributes_from_context",
            "otel_launch._runtime.integrations.celery.worker.span_attributes",
        ]
    )
    # A sampled publish collects the message's attributes, through the contrib's collector.
    assert paths["publish"] == ["opentelemetry.instrumentation.celery.utils.set_attributes_from_context"]


def test_a_web_worker_serving_requests_loads_no_celery_worker_side(receiver, workdir):
    """The shop imports its Celery app in every process; a request (sampled or not) records its
    duration through the bound histograms, which must not bring in the task side (~4 MB)."""
    code = (
        "import json, os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "from django.test import Client\n"
        "get_wsgi_application()\n"
        "assert Client().get('/health/').status_code == 200\n"
        "print(json.dumps(sorted(m for m in sys.modules if 'otel' in m and ('celery' in m or 'histograms' in m))))\n"
    )
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, SHOP_DB=str(workdir / "shop.sqlite3"), PYTHONPATH=str(SHOP)
    )
    result = run([*launcher(), PYTHON, "-c", code], env, workdir)
    assert result.returncode == 0, result.stderr
    # The histograms, and nothing of otel-launch's Celery integration: the app published no task.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["otel_launch._runtime.integrations._histograms"]
