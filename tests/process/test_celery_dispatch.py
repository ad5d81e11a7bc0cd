"""Celery's task tracer hands ``task_prerun``/``task_postrun`` to our handlers directly while they are
the only receivers (celery/dispatch.py): side by side with Celery's own dispatch, the same records."""

from __future__ import annotations

import json

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, run

pytest.importorskip("celery")
pytestmark = pytest.mark.process
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
    # With a receiver of the app's beside ours: Celery's dispatch, every task, for both.
    assert direct["beside"] == signals["beside"]
    assert direct["beside"]["looked_up"] == {"task_prerun": TASKS, "task_postrun": TASKS}
    assert len(direct["beside"]["seen_by_app"]) == 2 * TASKS
    # The same spans (states, errors, retries, the publish inside a run) and the same metrics.
    assert direct["spans"] == signals["spans"]
    assert direct["metrics"] == signals["metrics"]
    states = {s["attributes"].get("celery.state") for s in direct["spans"] if s["name"].startswith("run/")}
    assert states == {"SUCCESS", "FAILURE", "RETRY", "IGNORED", "REJECTED"}
    assert {s["name"] for s in direct["spans"]} >= {"run/side.nested", "apply_async/side.ok"}
    executions = [m for m in direct["metrics"] if m[1] == "celery.task.executions"]
    assert sum(m[3] for m in executions) == 2 * TASKS  # unsampled tasks are counted too
