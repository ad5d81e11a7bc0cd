"""The documentation: the settings reference generated from the settings table, the bench
table's place, and the README's links into the site.

The site itself is built by ``make docs`` (``mkdocs build --strict``, which fails on a broken
link or anchor between pages); these tests need no MkDocs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from otel_launch._core.settings import CHECKED_VARIABLES, SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hook():
    return _load(ROOT / "scripts" / "settings_reference.py", "settings_reference")


def _rows(markdown: str, header: str) -> list[list[str]]:
    """The cells of each body row of the table that starts with ``header``."""
    lines = markdown.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


SECTION = re.compile(
    r"^### `(?P<env>[A-Z0-9_]+)`\n\n(?P<help>.+)\n\n"
    r"- Flags: (?P<flags>.+)\n- Default: (?P<default>.+)\n- Accepts: (?P<accepted>.+)$",
    re.M,
)


def _sections(page: str) -> dict[str, dict[str, str]]:
    return {match["env"]: match.groupdict() for match in SECTION.finditer(page)}


def test_the_settings_page_lists_every_setting_with_its_flags_variable_default_and_help(hook):
    page = hook.on_page_markdown((DOCS / "settings.md").read_text(encoding="utf-8"))
    summary = _rows(page, "| Variable | Flag | Default |")
    assert [row[0] for row in summary] == [f"[`{s.env}`](#{s.env.lower()})" for s in SETTINGS]
    sections = _sections(page)
    assert list(sections) == [setting.env for setting in SETTINGS]
    for setting, row in zip(SETTINGS, summary, strict=True):
        default = f"`{setting.default}`" if setting.default is not None else "(unset)"
        assert row[1:] == [f"`{setting.flag}`", default], setting.env
        section = sections[setting.env]
        assert [flag.strip("`") for flag in section["flags"].split(", ")] == list(setting.flags), setting.env
        assert section["default"] == default, setting.env
        assert section["accepted"] == setting.accepted, setting.env
        assert section["help"].startswith(setting.help), setting.env
        assert ("Secret" in section["help"]) == setting.secret, setting.env


def test_the_settings_page_lists_every_variable_checked_before_it_is_passed_through(hook):
    page = hook.on_page_markdown((DOCS / "settings.md").read_text(encoding="utf-8"))
    listed = {}
    for names, accepted in _rows(page, "| Variables | Accepts |"):
        for name in re.findall(r"`([A-Z0-9_]+)`", names):
            assert name not in listed, name
            listed[name] = accepted
    assert set(listed) == {check.env for check in CHECKED_VARIABLES}
    for check in CHECKED_VARIABLES:
        assert listed[check.env].startswith(check.accepted), check.env
        assert ("secret" in listed[check.env]) == (check.mask is not None), check.env


def test_a_setting_added_to_the_table_is_on_the_page_at_the_next_build(hook, monkeypatch):
    """The page holds no copy to regenerate: each build renders the table as it is."""
    added = Setting("added_for_the_test", "OTEL_LAUNCH_ADDED_FOR_THE_TEST", "Only in this test.", str, "anything", "x")
    monkeypatch.setattr(hook, "SETTINGS", (*SETTINGS, added))
    page = hook.on_page_markdown((DOCS / "settings.md").read_text(encoding="utf-8"))
    row = "| [`OTEL_LAUNCH_ADDED_FOR_THE_TEST`](#otel_launch_added_for_the_test) | `--added-for-the-test` | `x` |"
    assert row in page
    assert _sections(page)["OTEL_LAUNCH_ADDED_FOR_THE_TEST"] == {
        "env": "OTEL_LAUNCH_ADDED_FOR_THE_TEST",
        "help": "Only in this test.",
        "flags": "`--added-for-the-test`",
        "default": "`x`",
        "accepted": "anything",
    }


def test_the_page_source_holds_markers_not_a_copy_of_the_table():
    source = (DOCS / "settings.md").read_text(encoding="utf-8")
    for name in ("settings-table", "passthrough-table"):
        assert source.count(f"<!-- {name}:start") == 1 and source.count(f"<!-- {name}:end -->") == 1
    assert "| Variable | Flag |" not in source and "OTEL_LAUNCH_SHUTDOWN_TIMEOUT" not in source


def test_a_block_left_open_or_unknown_fails_the_build(hook):
    with pytest.raises(ValueError, match="without its"):
        hook.on_page_markdown("text\n<!-- settings-table:start -->\nno end\n")
    with pytest.raises(ValueError, match="unknown generated block"):
        hook.on_page_markdown("<!-- colour-table:start -->\n<!-- colour-table:end -->\n")


def test_mkdocs_runs_the_generator_as_a_hook():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^hooks:\n  - scripts/settings_reference\.py$", config, re.M)
    assert not (ROOT / "otel_launch" / "_docs.py").exists()  # the generator is not in the package


def test_bench_writes_its_table_into_the_cost_page_and_refuses_a_page_without_markers(tmp_path):
    before = set(sys.modules)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        run = _load(ROOT / "bench" / "run.py", "bench_run")
    finally:
        sys.path.remove(str(ROOT / "bench"))
        for name in set(sys.modules) - before:  # bench's modules (web, tasks, ...) stay out of other tests
            del sys.modules[name]
    assert run.COST_PAGE == DOCS / "cost.md"
    assert run.COST_PAGE.read_text(encoding="utf-8").count("<!-- bench-results:start -->") == 1

    page = tmp_path / "cost.md"
    page.write_text("# Cost\n\n<!-- bench-results:start -->\nold\n<!-- bench-results:end -->\n\nafter\n")
    run.put_table(page, "| new | table |\n")
    expected = "# Cost\n\n<!-- bench-results:start -->\n| new | table |\n<!-- bench-results:end -->\n\nafter\n"
    assert page.read_text() == expected
    page.write_text("# Cost, no markers\n")
    with pytest.raises(ValueError, match="bench-results"):
        run.put_table(page, "| new | table |\n")


def test_the_readme_is_one_screen_and_its_links_lead_somewhere():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert any(link.startswith("docs/") and link.endswith(".md") for link in links)
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target = link.split("#")[0]
        assert (ROOT / target).exists(), link
