"""``make demo``'s script in its non-interactive mode: the shop runs, the viewer finds the order trace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PYTHON, clean_env, run

pytestmark = pytest.mark.e2e
DEMO = Path(__file__).resolve().parents[2] / "examples" / "run_demo.py"


def test_demo_prints_the_url_of_the_order_trace(tmp_path: Path):
    result = run([PYTHON, str(DEMO), "--non-interactive"], clean_env(), tmp_path, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "POST /orders/ -> 201" in result.stdout
    url = re.search(r"the order.s trace .*: http://127\.0\.0\.1:\d+/trace/[0-9a-f]{32}\n", result.stdout)
    assert url, result.stdout
