"""The README's settings table is the one generated from the declaration."""

from __future__ import annotations

from pathlib import Path

from otel_launch._docs import update

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_is_current():
    text = README.read_text(encoding="utf-8")
    assert update(text) == text, "README settings table is stale: run python -m otel_launch._docs README.md"
