"""The test matrix (noxfile.py's cells) and what pyproject.toml and the docs declare stay one story."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = (ROOT / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def matrix():
    spec = importlib.util.spec_from_file_location("otel_launch_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _otel_requirements() -> list[Requirement]:
    return [Requirement(raw) for raw in re.findall(r'"(opentelemetry-[^"]+)"', PYPROJECT)]


def _pins(constraints: list[str]) -> dict[str, str]:
    return dict(line.split("==") for line in constraints if "==" in line)


def test_the_oldest_set_pins_every_declared_range_to_its_floor(matrix):
    (cell, *_) = [cell for cell in matrix.CELLS if cell.otel == "oldest"]
    pins = _pins(matrix.constraints(cell))
    sdk, contrib = matrix.otel_release("oldest")
    assert (sdk, contrib) == ("1.43.0", "0.64b0")
    for requirement in _otel_requirements():
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if requirement.name == "opentelemetry-configuration":  # first released at 0.65b0: the oldest set goes without
            assert floors == ["0.65b0"] and requirement.name not in pins
            assert "config" not in matrix.extras("oldest") and "config" in matrix.extras("newest")
            continue
        assert floors == [pins[requirement.name]], requirement
        assert pins[requirement.name] in (sdk, contrib)
    # Those installed as dependencies of the declared ones are of the same release.
    assert (
        pins["opentelemetry-semantic-conventions"] == contrib and pins["opentelemetry-exporter-otlp-proto-grpc"] == sdk
    )


def test_the_newest_set_pins_no_opentelemetry_release_and_the_middle_one_every(matrix):
    (newest, *_) = [cell for cell in matrix.CELLS if cell.otel == "newest"]
    assert not [line for line in matrix.constraints(newest) if line.startswith("opentelemetry")]
    (middle,) = [cell for cell in matrix.CELLS if cell.otel == "middle"]
    assert not middle.default
    assert set(_pins(matrix.constraints(middle)).values()) == {"1.44.0", "0.65b0"}


def test_classifiers_name_the_pythons_and_frameworks_the_cells_run(matrix):
    cells = [cell for cell in matrix.CELLS if cell.default]
    classifiers = set(re.findall(r'"((?:Programming Language|Framework) :: [^"]+)"', PYPROJECT))
    pythons = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.match(r"Programming Language :: Python :: 3\.\d+$", c)}
    assert pythons == {cell.python for cell in cells}
    assert "Framework :: Celery" in classifiers
    djangos = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")}
    ran = {cell.django for cell in cells if any(label.startswith("e2e") for label, _ in cell.runs)}
    assert ran == {"==3.2", "~=4.2.0", "~=5.2.0", ">=6,<7"} and djangos == {"3.2", "4.2", "5.2", "6.1"}
    celeries = {cell.celery for cell in cells if any(label.startswith("e2e") for label, _ in cell.runs)}
    assert celeries == {"==5.2.0", "~=5.3.0", "~=5.7.0"}


def test_the_floors_cell_the_runtime_and_the_docs_name_the_same_floors(matrix):
    """One story: what the floors cell installs, what the runtime checks (below it the contrib
    serves), what pyproject declares and what the docs' table (docs/versions.md) says."""
    from otel_launch._runtime import _compat

    (cell,) = [cell for cell in matrix.CELLS if cell.floors]
    assert cell.python == "3.10" and matrix.E2E_DJANGO_CELERY in cell.runs and cell.default
    assert {library: matrix.FLOOR_PINS[library] for library in _compat.FLOORS} == {
        library: floor for library, (_, floor) in _compat.FLOORS.items()
    }
    versions = (ROOT / "docs" / "versions.md").read_text()
    rows = dict(re.findall(r"^\| ([A-Za-z-]+) \| ([^|]+) \|", versions, re.MULTILINE))
    for name, floor in _compat.FLOORS.values():
        assert rows[name].startswith(f"{floor} and later"), name
        assert f"{floor} (floors)" in versions.split(f"| {name} |")[1].splitlines()[0]
    for library in ("asgiref", "redis"):
        assert f"{matrix.FLOOR_PINS[library]} (floors" in versions.split(f"| {library}")[1].splitlines()[0]
    for requirement in (Requirement(raw) for raw in re.findall(r'"((?:click|python-dotenv)[^"]+)"', PYPROJECT)):
        assert rows[requirement.name] == f"`{requirement.specifier}`", requirement.name


def test_the_matrix_runs_both_ends_and_the_full_suite_once_on_the_newest(matrix):
    cells = [cell for cell in matrix.CELLS if cell.default]
    for otel in ("oldest", "newest"):
        processes = (matrix.PROCESS, matrix.PROCESS_VERSIONED)
        assert any(matrix.UNIT in c.runs and any(p in c.runs for p in processes) for c in cells if c.otel == otel)
    full = [cell for cell in cells if matrix.E2E in cell.runs]
    assert len(full) == 1 and full[0].otel == "newest"
    assert matrix.PROCESS in full[0].runs  # the tests marked `once` run there
    assert [cell for cell in cells if matrix.PROCESS in cell.runs] == full  # and only there
    # A plain `nox` (`make test`) runs lint, every default cell, the docs, then the table.
    assert matrix.nox.options.sessions == ["lint", *(f"tests({cell.name})" for cell in cells), "docs", "summary"]


def test_the_tests_run_two_at_a_time_but_those_marked_alone(matrix, monkeypatch):
    assert os.environ.get("OTEL_LAUNCH_TEST_WORKERS", "2") == matrix.WORKERS
    monkeypatch.setattr(matrix, "WORKERS", "2")
    selections = (matrix.UNIT, matrix.PROCESS, matrix.PROCESS_VERSIONED, matrix.PROCESS_ON_FLOORS, matrix.E2E)
    for label, _ in (*selections, matrix.E2E_DJANGO_CELERY):
        assert matrix.parallel(label) == ("-n", "2", "--dist", "loadgroup"), label
    assert matrix.parallel(matrix.ALONE[0]) == ()
    # Every test marked `alone` (process or end-to-end) runs, once, and only in a selection of its own.
    (full,) = [cell for cell in matrix.CELLS if matrix.E2E in cell.runs]
    assert matrix.ALONE in full.runs
    assert matrix.ALONE[1] == ("-m", "alone", "tests/process", "tests/e2e")
    for _, selection in (matrix.PROCESS, matrix.PROCESS_VERSIONED, matrix.E2E):
        assert selection[selection.index("-m") + 1].endswith(" and not alone")
    # A selection run two at a time that does not leave them out names only files with none of them.
    marked = re.compile(r"mark\.alone\b")
    for cell in matrix.CELLS:
        for label, selection in cell.runs:
            expression = selection[selection.index("-m") + 1] if "-m" in selection else ""
            if not matrix.parallel(label) or expression.endswith(" and not alone"):
                continue
            paths = [ROOT / arg for arg in selection if arg.startswith("tests/")]
            files = [path for path in paths if path.is_file()] + [
                f for d in paths if d.is_dir() for f in d.rglob("*.py")
            ]
            assert files and not [f for f in files if marked.search(f.read_text())], (cell.name, label)
    monkeypatch.setattr(matrix, "WORKERS", "0")
    assert matrix.parallel(matrix.PROCESS[0]) == ()
