"""gevent's monkey-patching, through the real launcher: an integration it triggers waits for its end."""

from __future__ import annotations

import pytest

from tests.helpers import PYTHON, TARGETS, clean_env, launcher, run

pytest.importorskip("gevent")
pytest.importorskip("celery")
pytestmark = pytest.mark.process


def test_integration_triggered_by_the_patching_starts_once_it_is_over(receiver, workdir):
    """Started in the middle of patch_all(), the Celery integration hung the process (its SDK
    thread pool had greenlet threads and a native queue) and left kombu the native select."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_METRICS_EXPORTER="none")
    result = run([*launcher(), PYTHON, str(TARGETS / "gevent_patch_imports_celery.py")], env, workdir, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kombu's select is gevent's: True"
    assert receiver.wait_for(lambda r: len(r.spans) >= 20, timeout=10)
    assert sorted(s.name for s in receiver.spans) == sorted(f"greenlet-{n}" for n in range(20))
    assert "otel-launch" not in result.stderr
