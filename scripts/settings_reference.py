"""The settings reference page, generated from the settings table when the site is built.

An MkDocs hook (``hooks:`` in mkdocs.yml): every page of the site that holds the settings
markers gets, between them, the tables made from ``otel_launch._core.settings`` (``SETTINGS``, and
``CHECKED_VARIABLES`` for the standard variables checked before they are passed on). The page's
source keeps only the markers and a line for readers of the raw Markdown, so there is no
generated copy to go stale: every build reads the table as it is. A block whose end marker is
missing stops the build.

It lives outside the package (scripts/ is not in the wheel) and imports nothing of MkDocs:
``tests/unit/test_docs.py`` calls :func:`on_page_markdown` directly. It reads the table of the
``otel_launch`` that Python imports: ``python -m mkdocs build`` from the repository root (as
``make docs`` runs it) puts the working tree first. Run as a script,
``python scripts/settings_reference.py docs/settings.md`` prints the page as the site shows it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from otel_launch._core.settings import CHECKED_VARIABLES, SETTINGS

# <!-- settings-table:start --> ... <!-- settings-table:end -->, and the same for passthrough-table.
BLOCK = re.compile(r"<!-- (?P<name>[a-z-]+-table):start[^>]*-->.*?<!-- (?P=name):end -->", re.S)
START = re.compile(r"<!-- ([a-z-]+-table):start")


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """Every setting: a summary table, then a section each (its anchor is the variable's name,
    lower case: ``settings.md#otel_launch_redact``) with what it does, its flags, its default and
    what it accepts."""
    lines = ["| Variable | Flag | Default |", "|---|---|---|"]
    for setting in SETTINGS:
        lines.append(f"| [`{setting.env}`](#{setting.env.lower()}) | `{setting.flag}` | {_default(setting)} |")
    for setting in SETTINGS:
        secret = " Secret: masked in all output." if setting.secret and "Secret" not in setting.help else ""
        lines += [
            "",
            f"### `{setting.env}`",
            "",
            f"{setting.help}{secret}",
            "",
            f"- Flags: {', '.join(f'`{flag}`' for flag in setting.flags)}",
            f"- Default: {_default(setting)}",
            f"- Accepts: {setting.accepted}",
        ]
    return "\n".join(lines)


def _default(setting) -> str:
    return f"`{setting.default}`" if setting.default is not None else "(unset)"


def passthrough_table() -> str:
    """The standard variables checked, then passed through to the SDK, grouped by what they accept."""
    groups: dict[str, list[str]] = {}
    for check in CHECKED_VARIABLES:
        accepted = check.accepted + (" (secret: masked in all output)" if check.mask else "")
        groups.setdefault(accepted, []).append(f"`{check.env}`")
    lines = ["| Variables | Accepts |", "|---|---|"]
    lines += [f"| {', '.join(names)} | {_cell(accepted)} |" for accepted, names in groups.items()]
    return "\n".join(lines)


TABLES = {"settings-table": settings_table, "passthrough-table": passthrough_table}


def render(markdown: str) -> str:
    """``markdown`` with each marked block replaced by its table; an unknown or unclosed block is an error."""

    def table(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"unknown generated block {name!r}; known: {', '.join(TABLES)}")
        return TABLES[name]()

    rendered = BLOCK.sub(table, markdown)
    left = START.search(rendered)
    if left:
        raise ValueError(f"<!-- {left[1]}:start --> without its <!-- {left[1]}:end -->")
    return rendered


def on_page_markdown(markdown: str, page=None, config=None, files=None, **_) -> str:
    """MkDocs' hook: each page's Markdown before it is converted."""
    return render(markdown)


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1]).read_text(encoding="utf-8")))
