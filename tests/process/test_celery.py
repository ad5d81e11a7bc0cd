"""Celery producer spans through the real launcher (in-memory broker: no server needed)."""

from __future__ import annotations

import pytest

from tests.conftest import PYTHON, TARGETS, clean_env, launcher, run

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
