"""The distribution as users get it: ``python -m build``'s sdist and wheel, ``twine check``, a launch
from a fresh venv that holds the built wheel.

The files git lists are copied first (the build writes ``build/`` and ``*.egg-info`` next to
the sources, and a stale ``build/lib`` could put files into the wheel that the tree no longer
has). ``python -m build`` builds the sdist, then the wheel from the unpacked sdist; a second
wheel built from the tree must be the same, file for file. The fresh venv gets the wheel with
``--no-deps`` and reads the dependencies from this test's environment through a ``.pth`` line,
which comes after its own site-packages: every otel_launch file it imports is the wheel's, and
no network is needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sysconfig
import tarfile
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PYTHON, clean_env, run

# One worker builds the wheel and the sdist once for all of them (pytest-xdist --dist loadgroup).
pytestmark = [pytest.mark.process, pytest.mark.once, pytest.mark.xdist_group("packaging")]
ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "otel_launch" / "local" / "ui" / "static"
BUILD_TIMEOUT = 300
_SKIP = ("build", "dist", ".venv*", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info")


@dataclass
class Built:
    wheel: Path
    sdist: Path
    tree_wheel: Path


def _build(args: list[str], cwd: Path) -> None:
    """Run a build step in its own process group, killed whole on time-out."""
    result = run(args, clean_env(), cwd, timeout=BUILD_TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _copy_tree(target: Path) -> None:
    """The files git knows of (tracked, or new and not ignored); without git, the tree less what is built."""
    git = shutil.which("git")
    listed = git and run([git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], clean_env(), ROOT, 60)
    if not listed or listed.returncode != 0:
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*_SKIP), symlinks=True)
        return
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():  # a file deleted but not yet staged is still listed
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"'{module}' is not installed (the test extra has it: pip install '.[test]')")
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    _copy_tree(source)
    _build([PYTHON, "-m", "build", "--outdir", str(base / "dist"), str(source)], base)
    _build([PYTHON, "-m", "build", "--wheel", "--outdir", str(base / "tree"), str(source)], base)
    (wheel,) = (base / "dist").glob("*.whl")
    (sdist,) = (base / "dist").glob("*.tar.gz")
    (tree_wheel,) = (base / "tree").glob("*.whl")
    return Built(wheel, sdist, tree_wheel)


def _contents(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


def test_wheel_holds_the_bootstrap_the_viewer_page_and_the_license(built: Built):
    names = set(_contents(built.wheel))
    assert "otel_launch/bootstrap/sitecustomize.py" in names
    static = {f"otel_launch/local/ui/static/{path.relative_to(STATIC)}" for path in STATIC.rglob("*") if path.is_file()}
    assert "otel_launch/local/ui/static/vendor/uPlot.iife.min.js" in static and static <= names, static - names
    dist_info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    assert f"{dist_info}/licenses/otel_launch/local/ui/static/vendor/uPlot.LICENSE" in names  # the charts' (MIT)
    with zipfile.ZipFile(built.wheel) as archive:
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "otel-launch = otel_launch._launcher.cli:main" in entry_points
    assert "[opentelemetry_tracer_provider]" in entry_points
    assert not {name for name in names if name.startswith(("tests/", "examples/", "bench/", "scripts/", "docs/"))}


def test_sdist_carries_license_changelog_and_builds_the_same_wheel(built: Built):
    with tarfile.open(built.sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "otel_launch/bootstrap/sitecustomize.py"} <= names
    assert _contents(built.wheel) == _contents(built.tree_wheel)


def test_twine_check_accepts_both(built: Built):
    args = [PYTHON, "-m", "twine", "check", "--strict", str(built.wheel), str(built.sdist)]
    result = run(args, clean_env(), built.wheel.parent, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


@pytest.fixture(scope="module")
def fresh_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the built wheel; its dependencies are this environment's (see the docstring)."""
    home = tmp_path_factory.mktemp("fresh") / "venv"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    install = [PYTHON, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index"]
    _build([*install, "--disable-pip-version-check", str(built.wheel)], home)
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], clean_env(), home)
    (Path(purelib.stdout.strip()) / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return home


def test_a_fresh_venv_with_the_wheel_launches_with_its_bootstrap(fresh_venv: Path, receiver, tmp_path: Path):
    script = (
        "import sitecustomize, otel_launch\n"
        "from opentelemetry import trace\n"
        "print(sitecustomize.__file__)\n"
        "print(otel_launch.__file__)\n"
        "trace.get_tracer('wheel').start_span('from-the-wheel').end()\n"
    )
    env = clean_env(
        PATH=f"{fresh_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRICS_EXPORTER="none",
    )
    launch = str(fresh_venv / "bin" / "otel-launch")
    shown = run([launch, "--service-name", "from-wheel", "--print-config"], env, tmp_path, timeout=60)
    assert shown.returncode == 0 and "from-wheel" in shown.stdout, shown.stderr
    args = [launch, "--service-name", "from-wheel", str(fresh_venv / "bin" / "python"), "-c", script]
    result = run(args, env, tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    bootstrap, package = result.stdout.split()
    assert Path(bootstrap).is_relative_to(fresh_venv) and bootstrap.endswith("otel_launch/bootstrap/sitecustomize.py")
    assert Path(package).is_relative_to(fresh_venv)
    assert receiver.wait_for(lambda r: any(s.name == "from-the-wheel" for s in r.spans), timeout=15)
    (span,) = [s for s in receiver.spans if s.name == "from-the-wheel"]
    assert span.service == "from-wheel"
