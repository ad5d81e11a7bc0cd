"""What `make test` (and so CI) runs: lint, the test matrix, the documentation site; then a table.

Every session gets its own environment under ``.nox/``, made by uv from PyPI:

    nox                              # every default session (what `make test` runs)
    nox -l                           # the sessions
    nox -s "tests(py310-oldest)"     # one cell of the matrix (the middle set runs only so)
    nox -s lint docs

A cell of the matrix is an interpreter, an OpenTelemetry set, a Django and a Celery release, and
the test selections it runs. The interpreters are pyenv's builds or those on PATH (never
downloaded): a missing one is reported by nox, a failure with ``--error-on-missing-interpreters``
(set when ``CI`` is).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import nox
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10: nox itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
STARTED = time.time()  # the table lists what this run of nox wrote, not an older run's files

nox.options.default_venv_backend = "uv"
nox.options.download_python = "never"
nox.options.sessions = []  # filled below, after the cells

# The tests run WORKERS at a time (pytest-xdist), but for those marked `alone`, which run one at a time in a
# selection of their own: each test starts its own servers on free ports and works in its own directory, and
# bounds its waits by polling, not by the wall clock of a quiet machine. OTEL_LAUNCH_TEST_WORKERS=0:
# one at a time (to tell a test that fails under load from one that fails alone).
# loadgroup: tests that share an expensive module fixture (the built wheel) stay together.
WORKERS = os.environ.get("OTEL_LAUNCH_TEST_WORKERS", "2")
LINTED = ["otel_launch", "tests", "examples", "bench", "scripts", "noxfile.py"]
LINT_PYTHON = "3.11"

# The OpenTelemetry sets: "oldest" pins every OpenTelemetry distribution to the floor of the range
# pyproject.toml declares; "newest" pins nothing, so it is what a new user gets today (the table
# shows the versions installed); "lowest-direct" is the floors cell's (see FLOOR_PINS).
MIDDLE = ("1.44.0", "0.65b0")  # (SDK/API release, contrib release): not in the default cells
# Distributions released with the SDK (the others carry the contrib's 0.x version).
_SDK_SIDE = re.compile(r"opentelemetry-(api|sdk|proto|propagator-[a-z0-9]+|exporter-otlp(-proto-[a-z]+)?)$")
# Installed as dependencies of the ones pyproject.toml names: pinned too, so that a set is one release.
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
EXTRAS = ("test", "demo", "ui", "catalogue", "config")
SOURCE_ONLY = ("uwsgi",)  # test tools released as source only (see _built_from_cache)
# uWSGI's build skips an object file newer than its source, and uv builds a cached source release for
# each Python in one directory: without this, the Python plugin compiled for the first Python was linked
# into every other Python's uWSGI (on 3.12 and later it aborts at start: PyImport_AppendInittab() may not
# be called after Py_Initialize()).
BUILD_ENV = {"UWSGI_FORCE_REBUILD": "1"}
# The tests write bytecode, whatever the shell says: where PYTHONDONTWRITEBYTECODE is set, every process a
# test starts compiled each module it imported again, from source (a launched `manage.py check` of the shop:
# 0.96 s of CPU; 0.38 s from the bytecode of an earlier start).
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": None}  # None: nox leaves the variable out

# The floors cell: every direct requirement of otel-launch at the lowest release it declares (uv's
# --resolution lowest-direct: click, python-dotenv, h11, the OpenTelemetry floors), beside the
# oldest Django, asgiref, Celery, kombu and redis-py it supports (docs/versions.md; the runtime's
# floors are otel_launch/_runtime/_compat.py FLOORS). The test tools come after, constrained to what
# that resolved, so that nothing moves. setuptools: Celery 5.2 imports pkg_resources, which
# setuptools dropped in 81 (a lock file of a Celery 5.2 app has an older one: the one `venv` ships on 3.10).
FLOOR_PINS = {
    "django": "3.2",
    "asgiref": "3.3.2",
    "celery": "5.2.0",
    "kombu": "5.2.1",
    "redis": "3.4.1",
    "setuptools": "65.5.0",
}
FLOORS_TOOLS = (".[test,ui,catalogue]", "gunicorn", "requests", "httpx")

# Test selections: (label, pytest arguments). A marker's selection names its directory too (the tests
# mirror it, tests/unit, tests/process, tests/e2e): pytest then collects only that directory, not the
# whole suite to deselect most of it, in every xdist worker.
UNIT = ("unit", ("tests/unit",))
# check-jsonschema (the deploy files' schema test, the same on every release) needs a newer click than our floor.
UNIT_ON_FLOORS = ("unit", ("tests/unit", "--ignore=tests/unit/test_deploy.py"))
# The tests marked `alone` (process and end-to-end) run in a selection of their own, one at a time (see
# parallel()), in the full cell; every other selection leaves them out.
PROCESS = ("process", ("-m", "process and not alone", "tests/process"))
ALONE = ("alone", ("-m", "alone", "tests/process", "tests/e2e"))
# The other cells leave out the process tests that are the same on every release (marker `once`).
PROCESS_VERSIONED = ("process", ("-m", "process and not once and not alone", "tests/process"))
# The process tests of what the floors touch: Django and Celery, the fallbacks, the env file
# (python-dotenv) and the command line's shell completion (click: marked `once`, selected by its file).
PROCESS_ON_FLOORS = (
    "process",
    ("-m", "process")
    + tuple(f"tests/process/test_{name}.py" for name in ("django", "celery", "compat", "env_file", "completion")),
)
E2E = ("e2e", ("-m", "e2e and not alone", "tests/e2e"))
# The Django and Celery end-to-end tests: a cheap way to bring a Django/Celery release into e2e (none of
# them is marked `alone`: tests/unit/test_noxfile.py checks).
E2E_DJANGO_CELERY = (
    "e2e-dj/cel",
    ("-m", "e2e", "-k", "not runserver and not uvicorn", "tests/e2e/test_web.py", "tests/e2e/test_celery.py"),
)


@dataclass(frozen=True)
class Cell:
    name: str
    python: str
    otel: str  # "oldest", "middle", "newest" or "lowest-direct"
    django: str  # a specifier for Django, e.g. "~=4.2.0"
    celery: str
    runs: tuple[tuple[str, tuple[str, ...]], ...]
    default: bool = True  # run by a plain `nox`

    @property
    def floors(self) -> bool:
        return self.otel == "lowest-direct"


CELLS = (
    Cell("py311-newest", "3.11", "newest", "~=5.2.0", "~=5.7.0", (UNIT, PROCESS, ALONE, E2E)),
    Cell("py310-oldest", "3.10", "oldest", "~=4.2.0", "~=5.3.0", (UNIT, PROCESS_VERSIONED, E2E_DJANGO_CELERY)),
    Cell("py313-newest", "3.13", "newest", ">=6,<7", "~=5.7.0", (UNIT, PROCESS_VERSIONED, E2E_DJANGO_CELERY)),
    Cell("py312-oldest", "3.12", "oldest", ">=6,<7", "~=5.7.0", (UNIT, PROCESS_VERSIONED)),
    Cell(
        "py310-floors",
        "3.10",
        "lowest-direct",
        f"=={FLOOR_PINS['django']}",
        f"=={FLOOR_PINS['celery']}",
        (UNIT_ON_FLOORS, PROCESS_ON_FLOORS, E2E_DJANGO_CELERY),
    ),
    Cell("py311-middle", "3.11", "middle", "~=5.2.0", "~=5.7.0", (UNIT, PROCESS_VERSIONED), default=False),
)


def interpreter(version: str) -> str:
    """pyenv's build of that version (its newest patch release) when there is one, else the version for nox
    to look for on PATH: pyenv's shims answer only for the versions pyenv has made active."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = [path for path in root.glob(f"versions/{version}.*/bin/python{version}") if path.is_file()]
    if not builds:
        return version
    newest = max(builds, key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.parent.name)])
    return str(newest)


def declared() -> list[Requirement]:
    """Every requirement pyproject.toml declares, dependencies and extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [Requirement(raw) for raw in [*project["dependencies"], *(raw for extra in extras for raw in extra)]]


def floor(requirement: Requirement) -> str:
    (lowest,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return lowest


def otel_release(otel: str) -> tuple[str, str] | None:
    """(SDK/API release, contrib release) of a set; None where nothing is pinned."""
    if otel == "middle":
        return MIDDLE
    if otel == "oldest":
        by_name = {requirement.name: requirement for requirement in declared()}
        return floor(by_name["opentelemetry-sdk"]), floor(by_name["opentelemetry-instrumentation"])
    return None


def _admits(requirement: Requirement, release: tuple[str, str] | None) -> bool:
    """Whether a declared range holds the set's release of that distribution (no release: any)."""
    if release is None or not requirement.name.startswith("opentelemetry-"):
        return True
    pin = release[0] if _SDK_SIDE.match(requirement.name) else release[1]
    return requirement.specifier.contains(pin, prereleases=True)


def otel_pins(otel: str) -> dict[str, str]:
    """The set's release for every OpenTelemetry distribution whose declared range holds it."""
    release = otel_release(otel)
    if release is None:
        return {}
    sdk, contrib = release
    refused = {r.name for r in declared() if not _admits(r, release)}
    names = {r.name for r in declared() if r.name.startswith("opentelemetry-")} | set(_TRANSITIVE)
    return {name: sdk if _SDK_SIDE.match(name) else contrib for name in sorted(names - refused)}


def extras(otel: str) -> tuple[str, ...]:
    """The extras a cell installs: one with a range that the set's release is outside of is left out
    (OTEL_CONFIG_FILE's reader exists from contrib 0.65b0: its tests skip on the oldest set, but for
    the refusal that names the missing package)."""
    release = otel_release(otel)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {extra: [Requirement(raw) for raw in project["optional-dependencies"][extra]] for extra in EXTRAS}
    return tuple(extra for extra in EXTRAS if all(_admits(r, release) for r in wanted[extra]))


def constraints(cell: Cell) -> list[str]:
    if cell.floors:
        return [f"{name}=={version}" for name, version in FLOOR_PINS.items()]
    # kombu follows Celery's minor (a newer kombu beside Celery 5.3 wants a newer redis-py than 5.3's).
    lines = [f"django{cell.django}", f"celery{cell.celery}", f"kombu{cell.celery}"]
    return lines + [f"{name}=={pin}" for name, pin in otel_pins(cell.otel).items()]


def _fresh_build_dir() -> None:
    """setuptools keeps what it copied to build/: a module deleted or moved would stay in the wheel."""
    shutil.rmtree(ROOT / "build", ignore_errors=True)


def _built_from_cache(session: nox.Session) -> None:
    """uWSGI publishes only a source release, a minute's build. uv keeps the wheel it built, but takes it
    again only when the index answers that the source is not modified; where an index or a proxy never
    says so, that minute would be spent in every environment. Installed first from uv's cache alone
    (offline), the install that follows finds it in place; when the cache has none, that install builds it."""
    test_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    for raw in test_extra:
        if Requirement(raw).name in SOURCE_ONLY:
            offline = ("uv", "pip", "install", "--offline", "--quiet", raw)
            session.run_install(*offline, success_codes=[0, 1, 2], silent=True, env=BUILD_ENV)


def _uwsgi_starts_python(session: nox.Session) -> bool:
    """Whether the cell's uWSGI (if any) starts its Python and imports a module, without otel-launch."""
    uwsgi = Path(session.virtualenv.location) / "bin" / "uwsgi"
    if not uwsgi.exists():
        return True
    probe = [str(uwsgi), "--socket", "127.0.0.1:0", "--test", "sys"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("OTEL_")}
    try:
        return subprocess.run(probe, env=env, capture_output=True, timeout=60, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _rebuilt_uwsgi_if_stale(session: nox.Session, constraints_file: Path) -> None:
    """A uWSGI wheel that uv built without BUILD_ENV, for this Python from another Python's objects, stays in
    its cache and would be installed again in every environment: found by its abort, it is built again."""
    if _uwsgi_starts_python(session):
        return
    test_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    (raw,) = [raw for raw in test_extra if Requirement(raw).name == "uwsgi"]
    session.log("uWSGI from uv's cache does not start its Python (built for another Python): building it again")
    again = (
        "-c",
        str(constraints_file),
        "--reinstall-package",
        "uwsgi",
        "--refresh-package",
        "uwsgi",
        "--no-deps",
        raw,
    )
    session.install(*again, env=BUILD_ENV)
    if not _uwsgi_starts_python(session):
        session.error(f"uwsgi ({raw}): the uWSGI built for this Python does not start its Python (`uwsgi --test sys`)")


def _install_cell(session: nox.Session, cell: Cell, constraints_file: Path) -> None:
    _fresh_build_dir()
    _built_from_cache(session)
    # pip: the packaging test installs the built wheel with it, as a user would.
    if not cell.floors:
        project = f".[{','.join(extras(cell.otel))}]"
        session.install(
            "-c", str(constraints_file), "--reinstall-package", "otel-launch", project, "pip", env=BUILD_ENV
        )
        _rebuilt_uwsgi_if_stale(session, constraints_file)
        return
    # otel-launch at the floors it declares, beside FLOOR_PINS; then the test tools, moving nothing.
    session.install("--resolution", "lowest-direct", "--reinstall-package", "otel-launch", ".", *constraints(cell))
    frozen = session.run_install("uv", "pip", "freeze", silent=True)
    resolved = [line for line in frozen.splitlines() if "==" in line and not line.startswith("otel-launch")]
    constraints_file.write_text("\n".join(resolved) + "\n")
    session.install("-c", str(constraints_file), *FLOORS_TOOLS, "pip", env=BUILD_ENV)
    _rebuilt_uwsgi_if_stale(session, constraints_file)


def parallel(label: str) -> tuple[str, ...]:
    """pytest-xdist's arguments for a selection: WORKERS at a time, but for the tests marked `alone` (they
    hold work to a wall-clock bound, or count which prefork child ran what: beside another test on two
    cores, a starved worker failed them)."""
    if WORKERS == "0" or label == ALONE[0]:
        return ()
    return ("-n", WORKERS, "--dist", "loadgroup")


@nox.session
@nox.parametrize(
    "python,cell",
    [nox.param(interpreter(cell.python), cell, id=cell.name) for cell in CELLS],
)
def tests(session: nox.Session, cell: Cell) -> None:
    """One cell of the matrix: its environment, then each test selection it names."""
    location = Path(session.virtualenv.location)
    for old in location.glob("junit-*.xml"):
        old.unlink()
    constraints_file = location / "constraints.txt"
    constraints_file.write_text("\n".join(constraints(cell)) + "\n")
    _install_cell(session, cell, constraints_file)
    listed = json.loads(
        session.run_install("uv", "pip", "list", "--quiet", "--format=json", silent=True, external=True)
    )
    python = session.run_install("python", "-c", "import platform; print(platform.python_version())", silent=True)
    python = python.strip()
    versions = {"__python__": python, **{p["name"].lower(): p["version"] for p in listed}}
    (location / "cell.json").write_text(json.dumps({"cell": cell.name, "otel": cell.otel, "versions": versions}))
    failed = []
    for label, selection in cell.runs:
        junit = location / f"junit-{label.replace('/', '-')}.xml"
        session.log(f"{cell.name}: {label} ({cell.otel} OpenTelemetry, Python {python})")
        pytest = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *parallel(label))
        # Exit 1 (tests failed): the cell's other selections run still; anything worse stops the cell.
        session.run(*pytest, *selection, *session.posargs, success_codes=[0, 1], env=WRITE_BYTECODE)
        counts = _counts(junit)
        if counts["failed"] or not counts["passed"]:  # all skipped or deselected: nothing was shown
            failed.append(f"{label} ({counts['failed']} failed, {counts['passed']} passed)")
    if failed:
        session.error(f"{cell.name}: {', '.join(failed)}")


@nox.session(python=interpreter(LINT_PYTHON))
def lint(session: nox.Session) -> None:
    """ruff (check and format), mypy (the files pyproject.toml's [tool.mypy] names) and, when
    pyproject.toml declares its contracts, import-linter."""
    _fresh_build_dir()
    session.install("--reinstall-package", "otel-launch", ".[lint]")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")
    if "importlinter" in tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}):
        session.run("lint-imports")


@nox.session(python=interpreter(LINT_PYTHON))
def docs(session: nox.Session) -> None:
    """The documentation site, strictly (a broken link or anchor fails), built into a temporary directory."""
    _fresh_build_dir()
    session.install("--reinstall-package", "otel-launch", ".[docs]")
    with tempfile.TemporaryDirectory(prefix="otel-launch-docs-") as tmp:
        session.run(
            "python", "-m", "mkdocs", "build", "--strict", "--site-dir", f"{tmp}/site", env={"NO_MKDOCS_2_WARNING": "1"}
        )


def _counts(junit: Path) -> dict[str, int]:
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


@nox.session(python=False)
def summary(session: nox.Session) -> None:
    """A table of the cells this run of nox tested: versions installed, pass/fail/skip counts."""
    session.log(table(ROOT / ".nox"))


def table(nox_dir: Path, since: float = STARTED) -> str:
    rows = [("cell", "python", "opentelemetry sdk/contrib", "django", "celery", "ran (passed)", "pass", "fail", "skip")]
    totals = [0, 0, 0]
    for record in sorted(nox_dir.glob("*/cell.json")):
        if record.stat().st_mtime < since:
            continue
        cell = json.loads(record.read_text())
        versions = cell["versions"]
        runs = [(j.stem.removeprefix("junit-"), _counts(j)) for j in sorted(record.parent.glob("junit-*.xml"))]
        runs = [
            (label, counts) for label, counts in runs if (record.parent / f"junit-{label}.xml").stat().st_mtime >= since
        ]
        counts = [sum(c[key] for _, c in runs) for key in ("passed", "failed", "skipped")]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        sdk = versions.get("opentelemetry-sdk", "?")
        contrib = versions.get("opentelemetry-instrumentation", "?")
        rows.append(
            (
                cell["cell"],
                versions["__python__"],
                f"{cell['otel']} {sdk}/{contrib}",
                versions.get("django", "?"),
                versions.get("celery", "?"),
                " ".join(f"{label}({c['passed']})" for label, c in runs) or "nothing",
                *(str(n) for n in counts),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(f"matrix: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return "\n".join(lines)


nox.options.sessions = ["lint", *(f"tests({cell.name})" for cell in CELLS if cell.default), "docs", "summary"]
