"""The CI matrix (.ci/matrix.py) and what pyproject.toml declares stay one story."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ci_matrix", ROOT / ".ci" / "matrix.py")
matrix = importlib.util.module_from_spec(_spec)
sys.modules["ci_matrix"] = matrix  # dataclasses look their module up
_spec.loader.exec_module(matrix)
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def _otel_requirements() -> list[Requirement]:
    return [Requirement(raw) for raw in re.findall(r'"(opentelemetry-[^"]+)"', PYPROJECT)]


def test_the_oldest_set_is_the_floor_of_every_declared_range():
    sdk, contrib = matrix.OTEL_SETS["oldest"]
    cell = next(cell for cell in matrix.CELLS if cell.otel == "oldest")
    pins = dict(line.split("==") for line in matrix.constraints(cell).splitlines() if "==" in line)
    for requirement in _otel_requirements():
        if requirement.name == "opentelemetry-configuration":  # first released at 0.65b0: the oldest set goes without
            assert requirement.specifier.contains("0.65b0", prereleases=True)
            assert "config" not in matrix.EXTRAS
            continue
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert floors == [pins[requirement.name]], requirement
        assert pins[requirement.name] in (sdk, contrib)
        assert requirement.specifier.contains(pins[requirement.name], prereleases=True)


def test_classifiers_name_the_pythons_and_frameworks_the_cells_run():
    classifiers = set(re.findall(r'"((?:Programming Language|Framework) :: [^"]+)"', PYPROJECT))
    pythons = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.match(r"Programming Language :: Python :: 3\.\d+$", c)}
    assert pythons == {cell.python for cell in matrix.CELLS}
    assert "Framework :: Celery" in classifiers
    djangos = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")}
    ran = {cell.django for cell in matrix.CELLS if any(label.startswith("e2e") for label, _ in cell.runs)}
    assert ran == {"==3.2", "~=4.2.0", "~=5.2.0", ">=6,<7"} and djangos == {"3.2", "4.2", "5.2", "6.1"}
    celeries = {cell.celery for cell in matrix.CELLS if any(label.startswith("e2e") for label, _ in cell.runs)}
    assert celeries == {"==5.2.0", "~=5.3.0", "~=5.7.0"}


def test_the_floors_cell_the_runtime_and_the_readme_name_the_same_floors():
    """One story: what the floors cell installs, what the runtime checks (below it the contrib
    serves), what pyproject declares and what the docs' table (docs/versions.md) says."""
    from otel_launch._runtime import _compat

    (cell,) = [cell for cell in matrix.CELLS if cell.floors]
    assert cell.python == "3.10" and matrix.E2E_DJANGO_CELERY in cell.runs
    assert {library: matrix.FLOOR_PINS[library] for library in _compat.FLOORS} == {
        library: floor for library, (_, floor) in _compat.FLOORS.items()
    }
    readme = (ROOT / "docs" / "versions.md").read_text()
    rows = dict(re.findall(r"^\| ([A-Za-z-]+) \| ([^|]+) \|", readme, re.MULTILINE))
    for name, floor in _compat.FLOORS.values():
        assert rows[name].startswith(f"{floor} and later"), name
        assert f"{floor} (floors)" in readme.split(f"| {name} |")[1].splitlines()[0]
    for library in ("asgiref", "redis"):
        assert f"{matrix.FLOOR_PINS[library]} (floors" in readme.split(f"| {library}")[1].splitlines()[0]
    for requirement in (Requirement(raw) for raw in re.findall(r'"((?:click|python-dotenv)[^"]+)"', PYPROJECT)):
        assert rows[requirement.name] == f"`{requirement.specifier}`", requirement.name


def test_the_matrix_runs_both_ends_and_the_full_suite_on_the_newest():
    by_set = {cell.otel: cell for cell in matrix.CELLS}
    assert {"oldest", "newest"} <= set(by_set)
    for otel in ("oldest", "newest"):
        processes = (matrix.PROCESS, matrix.PROCESS_VERSIONED)
        assert any(
            matrix.UNIT in c.runs and any(p in c.runs for p in processes) for c in matrix.CELLS if c.otel == otel
        )
    full = [cell for cell in matrix.CELLS if matrix.E2E in cell.runs]
    assert len(full) == 1 and full[0].otel == "newest" and full[0].lint
    assert matrix.PROCESS in full[0].runs  # the tests marked `once` run there
