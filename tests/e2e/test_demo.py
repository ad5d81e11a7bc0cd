"""``make demo``'s script in its non-interactive mode: the shop runs, the viewer finds the order trace."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import PYTHON, clean_env, run

pytestmark = pytest.mark.e2e
DEMO = Path(__file__).resolve().parents[2] / "examples" / "run_demo.py"


def test_demo_prints_the_url_of_the_order_trace_and_opens_on_the_overview(tmp_path: Path):
    result = run([PYTHON, str(DEMO), "--non-interactive"], clean_env(), tmp_path, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "POST /orders/ -> 201" in result.stdout
    # Never the Redis on 6379 (there is one on these machines) unless OTEL_LAUNCH_TEST_REDIS_URL says so.
    broker = result.stdout.splitlines()[0]
    expected = "broker: redis, a private redis-server" if shutil.which("redis-server") else "broker: filesystem://"
    assert broker.startswith(expected) and ":6379" not in broker, broker
    url = re.search(r"the order.s trace .*: http://127\.0\.0\.1:\d+/trace/[0-9a-f]{32}\n", result.stdout)
    assert url, result.stdout
    # the page to open first: the overview, printed once it counts the demo's requests and failed tasks
    overview = re.search(r"\nopen the overview .*: http://127\.0\.0\.1:\d+/overview\n", result.stdout)
    assert overview, result.stdout
