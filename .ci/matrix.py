#!/usr/bin/env python3
"""CI matrix: each cell is an interpreter, an OpenTelemetry set, a Django and a Celery release.

Each cell gets its own virtual environment (``.venv-<cell>``, rebuilt when pyproject.toml or the
cell's pins change), installed from PyPI with pip constraints for that cell, and runs the test
selections it names. The next cell's environment is built while a cell's tests run (pip is mostly
waiting on the network and disk; the tests run one cell at a time, so the process tests' time
bounds see the machine they were written for). At the end a table lists what each cell ran.

Only the standard library: it runs with whatever ``python3`` starts it.

    python3 .ci/matrix.py                 # every cell (what `make test` runs)
    python3 .ci/matrix.py py310-oldest    # some cells, by name
    python3 .ci/matrix.py --list

A cell whose interpreter is missing is reported as SKIPPED in the table and on stderr, never
silently; ``MATRIX_REQUIRE_ALL=1`` makes that a failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ".[test,demo,ui,catalogue]"
# OTEL_CONFIG_FILE's reader exists from contrib 0.65b0: the oldest set runs without it (its tests skip,
# but for the refusal that names the missing package).
EXTRAS_WITH_CONFIG = ".[test,demo,ui,catalogue,config]"

# The OpenTelemetry sets at the ends of the range pyproject.toml declares. "oldest" pins every
# OpenTelemetry distribution to the first release of the range; "newest" pins nothing, so it is
# what pip resolves today for a new user (the table shows the versions it got).
OTEL_SETS: dict[str, tuple[str, str] | None] = {
    "oldest": ("1.43.0", "0.64b0"),  # (SDK/API release, contrib release)
    "middle": ("1.44.0", "0.65b0"),  # not in the default cells; run it by name
    "newest": None,
    "lowest-direct": None,  # the floors cell: what uv's lowest-direct resolution installs (the oldest set)
}
# Distributions released with the SDK (the others carry the contrib's 0.x version).
_SDK_SIDE = re.compile(r"opentelemetry-(api|sdk|proto|propagator-[a-z0-9]+|exporter-otlp(-proto-[a-z]+)?)$")
# Installed as dependencies of the ones pyproject.toml names: pinned too, so a set is one release.
_TRANSITIVE = (
    "opentelemetry-semantic-conventions",
    "opentelemetry-util-http",
    "opentelemetry-instrumentation-wsgi",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-common",
    "opentelemetry-exporter-http-transport",
)

# The floors cell: every direct requirement of otel-launch at the lowest release it declares (uv's
# --resolution lowest-direct: click, python-dotenv, the OpenTelemetry floors), beside the oldest
# Django, asgiref, Celery, kombu and redis-py it supports (README "Supported versions"; the runtime's
# floors are otel_launch/_runtime/_compat.py FLOORS). Test tools come after, constrained to what that
# resolved, so that nothing moves. setuptools: Celery 5.2 imports pkg_resources, which setuptools
# dropped in 81 (a lock file of a Celery 5.2 app has an older one; this is what `venv` ships on 3.10).
FLOOR_PINS = {
    "django": "3.2",
    "asgiref": "3.3.2",
    "celery": "5.2.0",
    "kombu": "5.2.1",
    "redis": "3.4.1",
    "setuptools": "65.5.0",
}
FLOORS_TOOLS = (".[test,ui,catalogue]", "gunicorn", "requests", "httpx")
UNIT = ("unit", ["tests/unit"])
# check-jsonschema (the deploy files' schema test, the same on every release) needs a newer click than our floor.
UNIT_ON_FLOORS = ("unit", ["tests/unit", "--ignore=tests/unit/test_deploy.py"])
# The process tests of what the floors touch: Django and Celery, the fallbacks, the env file (python-dotenv)
# and the command line's shell completion (click: marked `once`, selected here by its file).
PROCESS_ON_FLOORS = (
    "process",
    ["-m", "process", "tests/process/test_django.py", "tests/process/test_celery.py"]
    + ["tests/process/test_compat.py", "tests/process/test_env_file.py", "tests/process/test_completion.py"],
)
PROCESS = ("process", ["-m", "process"])
# The other cells leave out the process tests that are the same on every release (marker `once`).
PROCESS_VERSIONED = ("process", ["-m", "process and not once"])
E2E = ("e2e", ["-m", "e2e"])
# The Django and Celery end-to-end tests: a cheap way to bring a Django/Celery release into e2e.
E2E_DJANGO_CELERY = (
    "e2e-dj/cel",
    ["-m", "e2e", "-k", "not runserver and not uvicorn", "tests/e2e/test_web.py", "tests/e2e/test_celery.py"],
)


@dataclasses.dataclass
class Cell:
    name: str
    python: str  # "3.11"
    otel: str  # a key of OTEL_SETS
    django: str  # a pip specifier for Django, e.g. "~=4.2.0"
    celery: str
    runs: list[tuple[str, list[str]]]
    lint: bool = False
    floors: bool = False  # built with uv's lowest-direct resolution and FLOOR_PINS (django/celery unused)
    interpreter: str | None = None
    venv_error: str = ""
    results: list[dict] = dataclasses.field(default_factory=list)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    build_seconds: float = 0.0
    test_seconds: float = 0.0

    @property
    def venv(self) -> Path:
        return ROOT / f".venv-{self.name}"


CELLS = [
    Cell("py311-newest", "3.11", "newest", "~=5.2.0", "~=5.7.0", [UNIT, PROCESS, E2E], lint=True),
    Cell("py310-oldest", "3.10", "oldest", "~=4.2.0", "~=5.3.0", [UNIT, PROCESS_VERSIONED, E2E_DJANGO_CELERY]),
    Cell("py313-newest", "3.13", "newest", ">=6,<7", "~=5.7.0", [UNIT, PROCESS_VERSIONED, E2E_DJANGO_CELERY]),
    Cell("py312-oldest", "3.12", "oldest", ">=6,<7", "~=5.7.0", [UNIT, PROCESS_VERSIONED]),
    Cell(
        "py310-floors",
        "3.10",
        "lowest-direct",
        f"=={FLOOR_PINS['django']}",
        f"=={FLOOR_PINS['celery']}",
        [UNIT_ON_FLOORS, PROCESS_ON_FLOORS, E2E_DJANGO_CELERY],
        floors=True,
    ),
]
EXTRA_CELLS = [
    Cell("py311-middle", "3.11", "middle", "~=5.2.0", "~=5.7.0", [UNIT, PROCESS_VERSIONED]),
]


def find_python(version: str) -> str | None:
    """pyenv's build of that version if there is one (newest patch release), else one on PATH."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    builds = sorted(
        glob.glob(f"{root}/versions/{version}.*/bin/python"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name)],
    )
    if builds:
        return builds[-1]
    return shutil.which(f"python{version}")


def otel_names() -> list[str]:
    """Every OpenTelemetry distribution pyproject.toml names (dependencies and extras)."""
    text = (ROOT / "pyproject.toml").read_text()
    return sorted(set(re.findall(r'"(opentelemetry-[a-z0-9-]+)', text)) | set(_TRANSITIVE))


def constraints(cell: Cell) -> str:
    if cell.floors:
        return "".join(f"{name}=={version}\n" for name, version in FLOOR_PINS.items())
    # kombu follows Celery's minor (a newer kombu beside Celery 5.3 wants a newer redis-py than 5.3's).
    lines = [f"django{cell.django}", f"celery{cell.celery}", f"kombu{cell.celery}"]
    pins = OTEL_SETS[cell.otel]
    if pins is not None:
        sdk, contrib = pins
        lines += [f"{name}=={sdk if _SDK_SIDE.match(name) else contrib}" for name in otel_names()]
    return "\n".join(lines) + "\n"


def build(cell: Cell) -> None:
    """Make (or reuse) the cell's environment; on failure note why, so the table says so."""
    wanted = constraints(cell)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + wanted.encode()).hexdigest()
    stamp_file = cell.venv / ".matrix-stamp"
    python = cell.venv / "bin" / "python"
    try:
        if not (stamp_file.exists() and stamp_file.read_text() == stamp and python.exists()):
            shutil.rmtree(cell.venv, ignore_errors=True)
            subprocess.run(
                [cell.interpreter, "-m", "venv", str(cell.venv)], check=True, capture_output=True, timeout=120
            )
            (cell.venv / "constraints.txt").write_text(wanted)
            if cell.floors:
                _install_floors(cell, wanted)
            else:
                _pip(
                    cell,
                    "install",
                    "--quiet",
                    "-c",
                    str(cell.venv / "constraints.txt"),
                    EXTRAS if cell.otel == "oldest" else EXTRAS_WITH_CONFIG,
                )
            stamp_file.write_text(stamp)
        else:  # same dependencies: only the project itself may have changed
            _pip(cell, "install", "--quiet", "--no-deps", "--force-reinstall", ".")
        listed = _pip(cell, "list", "--format=json")
        cell.versions = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout or "") + (exc.stderr or "")
        cell.venv_error = "\n".join(line for line in output.splitlines() if "is ignored" not in line)[-3000:]
    except subprocess.TimeoutExpired as exc:
        cell.venv_error = f"timed out: {exc.cmd}"


def _install_floors(cell: Cell, pins: str) -> None:
    """otel-launch at the floors it declares, beside FLOOR_PINS; then the test tools, moving nothing."""
    _pip(cell, "install", "--quiet", "uv")
    python = ["--python", str(cell.venv / "bin" / "python")]
    uv = [str(cell.venv / "bin" / "uv"), "pip"]
    run = {"cwd": ROOT, "check": True, "capture_output": True, "text": True, "timeout": 900}
    subprocess.run([*uv, "install", *python, "--resolution", "lowest-direct", ".", *pins.split()], **run)
    frozen = subprocess.run([*uv, "freeze", *python], **run).stdout
    resolved = [line for line in frozen.splitlines() if "==" in line and not line.startswith("otel-launch")]
    (cell.venv / "constraints.txt").write_text("\n".join(resolved) + "\n")
    subprocess.run([*uv, "install", *python, "-c", str(cell.venv / "constraints.txt"), *FLOORS_TOOLS], **run)


def _pip(cell: Cell, *args: str) -> str:
    command = [str(cell.venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=900).stdout


def run_tests(cell: Cell) -> None:
    python = str(cell.venv / "bin" / "python")
    if cell.lint:
        for check in (["check"], ["format", "--check"]):
            code = subprocess.call(
                [python, "-m", "ruff", *check, "otel_launch", "tests", "examples", "bench"], cwd=ROOT
            )
            cell.results.append({"what": f"ruff {check[0]}", "passed": int(code == 0), "failed": int(code != 0)})
    for label, selection in cell.runs:
        junit = cell.venv / f"junit-{label.replace('/', '-')}.xml"
        junit.unlink(missing_ok=True)
        print(f"\n=== {cell.name}: {label} ({cell.otel} OpenTelemetry, Python {cell.python}) ===", flush=True)
        started = time.monotonic()
        code = subprocess.call(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *selection], cwd=ROOT
        )
        result = {"what": label, "seconds": time.monotonic() - started, **_counts(junit)}
        if code != 0 and not result["failed"]:
            result["failed"] = 1  # pytest itself failed (collection, a crash) or ran nothing: never a pass
        if not result["passed"]:
            result["failed"] = max(result["failed"], 1)  # every test skipped or deselected: nothing was shown
        cell.results.append(result)


def _counts(junit: Path) -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if not junit.exists():
        return counts
    for suite in ElementTree.parse(junit).getroot().iter("testsuite"):
        total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts["failed"] += failed
        counts["skipped"] += skipped
        counts["passed"] += total - failed - skipped
    return counts


def otel_label(cell: Cell) -> str:
    sdk = cell.versions.get("opentelemetry-sdk", "?")
    contrib = cell.versions.get("opentelemetry-instrumentation", "?")
    return f"{cell.otel} {sdk}/{contrib}"


def table(cells: list[Cell]) -> tuple[str, bool]:
    rows = [
        ("cell", "python", "opentelemetry sdk/contrib", "django", "celery", "ran (passed)", "pass", "fail", "skip")
        + ("build", "tests")
    ]
    ok = True
    for cell in cells:
        python = cell.versions.get("__python__", cell.python)
        base = (cell.name, python, otel_label(cell), cell.versions.get("django", "?"), cell.versions.get("celery", "?"))
        if cell.interpreter is None:
            rows.append((cell.name, cell.python, cell.otel, "-", "-", f"SKIPPED: no python{cell.python}", *"-----"))
            ok = ok and not os.environ.get("MATRIX_REQUIRE_ALL")
            continue
        if cell.venv_error:
            rows.append((*base, "venv build FAILED", "-", "-", "-", f"{cell.build_seconds:.0f}s", "-"))
            ok = False
            continue
        tests = [r for r in cell.results if not r["what"].startswith("ruff")]
        ran = " ".join(f"{r['what']}({r['passed']})" for r in tests)
        if cell.lint:
            lint_ok = all(r["failed"] == 0 for r in cell.results if r["what"].startswith("ruff"))
            ran = ("lint " if lint_ok else "lint(FAILED) ") + ran
            ok = ok and lint_ok
        totals = [sum(r.get(key, 0) for r in tests) for key in ("passed", "failed", "skipped")]
        ok = ok and totals[1] == 0
        times = (f"{cell.build_seconds:.0f}s", f"{cell.test_seconds:.0f}s")
        rows.append((*base, ran, *(str(n) for n in totals), *times))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", help="cell names (default: every default cell)")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    args = parser.parse_args()
    # Started from a shell's background job, this process ignores SIGINT, and so would every
    # process a test starts (exec keeps an ignored signal ignored): the tests that stop a server
    # with Ctrl-C would time out. A handler here is reset to the default in each child.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    known = {cell.name: cell for cell in CELLS + EXTRA_CELLS}
    if args.list:
        for cell in known.values():
            runs = "+".join(label for label, _ in cell.runs)
            pins = f"django{cell.django}  celery{cell.celery}"
            print(f"{cell.name:14} python {cell.python}  otel {cell.otel}  {pins}  {runs}")
        return 0
    unknown = [name for name in args.cells if name not in known]
    if unknown:
        print(f"otel-launch matrix: unknown cell {unknown[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    cells = [known[name] for name in args.cells] if args.cells else CELLS
    for cell in cells:
        cell.interpreter = find_python(cell.python)
        if cell.interpreter is None:
            print(f"otel-launch matrix: SKIPPED {cell.name}: no Python {cell.python} (pyenv or PATH)", file=sys.stderr)
    runnable = [cell for cell in cells if cell.interpreter]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as builder:
        builds = {cell.name: builder.submit(_timed, build, cell, "build_seconds") for cell in runnable}
        for cell in runnable:
            builds[cell.name].result()  # the next cell's build goes on while this one's tests run
            if cell.venv_error:
                print(f"otel-launch matrix: {cell.name}: venv build failed:\n{cell.venv_error}", file=sys.stderr)
                continue
            cell.versions["__python__"] = subprocess.run(
                [str(cell.venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            _timed(run_tests, cell, "test_seconds")
    text, ok = table(cells)
    print(f"\n=== otel-launch test matrix ({time.monotonic() - started:.0f}s in all) ===\n{text}")
    if os.environ.get("MATRIX_TABLE"):
        Path(os.environ["MATRIX_TABLE"]).write_text(text + "\n")
    return 0 if ok else 1


def _timed(step, cell: Cell, field: str) -> None:
    started = time.monotonic()
    try:
        step(cell)
    finally:
        setattr(cell, field, getattr(cell, field) + time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
