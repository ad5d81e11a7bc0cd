"""The tests' own layout: what a test module shares comes from a helpers module, never from another
test module or a conftest (importing one runs its module-level code and fixtures twice, and ties
a test's meaning to another file's)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_a_test_module(module: str) -> bool:
    last = module.rpartition(".")[2]
    return last == "conftest" or last.startswith("test_")


def test_no_test_file_imports_a_test_module_or_a_conftest():
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
                if any(_is_a_test_module(name) for name in names):
                    found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: from {'.' * node.level}{module}")
            elif isinstance(node, ast.Import):
                found += [
                    f"{path.relative_to(TESTS.parent)}:{node.lineno}: import {alias.name}"
                    for alias in node.names
                    if _is_a_test_module(alias.name)
                ]
    assert not found, "import the shared part from tests/helpers.py (or another helpers module):\n" + "\n".join(found)
