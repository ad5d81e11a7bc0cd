"""Every other installed contrib instrumentation, each run when the app imports its library.

``opentelemetry-instrument`` loads every ``opentelemetry_instrumentor`` entry point at
interpreter start (~680 ms with a dozen installed). Here each one becomes an
:class:`~otel_launch._runtime.integrations.Integration` whose trigger is the top-level module
of the library it instruments: the distribution its ``instruments`` (or ``instruments-any``)
requirements name, then that distribution's ``top_level.txt`` or ``RECORD``; with no
requirement (a standard-library instrumentation), the entry point's name.

Finding them is a scan of the ``*.dist-info`` folders on ``sys.path``. ``importlib.metadata``
would do it, but importing it alone costs more than the whole start-up budget (~45 ms
CPU on the bench machine), so this module reads the same three files itself (a unit test
compares its answers with ``importlib.metadata``'s). The launcher scans once and hands the
result to its children in ``_OTEL_LAUNCH_CATALOGUE``; a process that gets none, or one made
for another interpreter, scans for itself.

At activation, in the process that imported the library: the entry point is skipped when
disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), or with one warning line when the
installed library is outside the instrumentor's supported range (upstream's own check).
Our own integrations come first: their entry points (and ``logging``, which our log
correlation replaces) are never loaded from the catalogue.
"""

from __future__ import annotations

import os
import sys

from otel_launch._runtime.integrations import Integration, _disabled

TYPE_CHECKING = False  # typing is not imported at interpreter start: it costs start-up time
if TYPE_CHECKING:
    from types import ModuleType

ENV_VAR = "_OTEL_LAUNCH_CATALOGUE"
GROUP = "opentelemetry_instrumentor"
# Entry points otel-launch never loads: ours replace them (see the registry), and
# system_metrics has no library import to wait for (it would have to run at start).
OURS = frozenset({"django", "celery", "redis", "sqlite3", "psycopg", "psycopg2", "logging", "system_metrics"})
# Standard-library instrumentations name no requirement; their trigger is the module they
# patch, when it is not the entry point's name (``import urllib`` alone sends nothing).
STDLIB_TRIGGERS = {"urllib": "urllib.request"}
# After upstream instruments these, calls made outside any span are left untraced.
OUTSIDE_SPANS_UNTRACED = frozenset({"requests", "urllib", "urllib3", "httpx"})


class Entry:
    """One instrumentor entry point: what to load, what triggers it, what it supports."""

    __slots__ = ("name", "value", "triggers", "instruments", "instruments_any", "done")

    def __init__(self, name: str, value: str, triggers: list[str], instruments: list[str], instruments_any: list[str]):
        self.name, self.value, self.triggers = name, value, triggers
        self.instruments, self.instruments_any = instruments, instruments_any
        self.done = False

    def encode(self) -> str:
        fields = [self.name, self.value, "+".join(self.triggers)]
        fields += [f"r:{req}" for req in self.instruments] + [f"a:{req}" for req in self.instruments_any]
        return " ".join(fields)

    @classmethod
    def decode(cls, text: str) -> Entry:
        name, value, triggers, *reqs = text.split(" ")
        return cls(
            name,
            value,
            triggers.split("+"),
            [req[2:] for req in reqs if req.startswith("r:")],
            [req[2:] for req in reqs if req.startswith("a:")],
        )


class CatalogueIntegration(Integration):
    """An entry point's instrumentor, run once whichever of its triggers is imported first."""

    __slots__ = ("entry",)

    def __init__(self, entry: Entry, trigger: str) -> None:
        super().__init__(entry.name, trigger, "_catalogue")
        self.entry = entry

    def activate(self, imported: ModuleType) -> None:
        entry = self.entry
        if entry.done:
            return
        entry.done = True
        disabled = _disabled()
        if entry.name in disabled or "*" in disabled:
            return
        activate(entry)


def activate(entry: Entry) -> bool:
    """Check the supported range, then instrument. True when this call instrumented."""
    import importlib

    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    from otel_launch._runtime._log import warn
    from otel_launch._runtime.integrations._instrumentor import instrument_once

    conflict = get_dependency_conflicts(entry.instruments, entry.instruments_any or None)
    if conflict is not None:
        found = conflict.found or ", ".join(conflict.found_any or ())
        if found:  # installed at a version the instrumentor does not support
            required = conflict.required or " or ".join(conflict.required_any or ())
            warn(f"{entry.name} is not instrumented: its instrumentation supports {required}, installed: {found}")
        return False  # not installed at all: nothing to instrument, as upstream decides
    module, _, attribute = entry.value.partition(":")
    try:
        target: object = importlib.import_module(module.strip())
        for part in attribute.strip().split("."):
            target = getattr(target, part)
        if not instrument_once(target(), skip_dep_check=True):  # type: ignore[operator]
            return False  # the app instrumented it itself: its choice stands
    except ModuleNotFoundError:
        return False  # a library it needs is not installed: upstream skips these silently too
    if entry.name in OUTSIDE_SPANS_UNTRACED:
        from otel_launch._runtime.integrations import http

        http.untraced_outside_spans(entry.name)
    return True


# -- finding the entry points ----------------------------------------------------------------


def _normalize(name: str) -> str:
    """PEP 503 name, as dist-info folder names and requirements may spell it differently."""
    out = []
    for char in name.lower():
        if char in "-_.":
            if out and out[-1] != "-":
                out.append("-")
        else:
            out.append(char)
    return "".join(out).strip("-")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _distributions(paths: list[str]) -> dict[str, str]:
    """Normalized distribution name -> its metadata folder; the first on ``paths`` wins,
    as with importlib.metadata."""
    found: dict[str, str] = {}
    for entry in paths:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file, a missing folder
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist = name[: -len(".dist-info")].partition("-")[0]
            elif name.endswith(".egg-info"):
                dist = name[: -len(".egg-info")].partition("-")[0]
            else:
                continue
            found.setdefault(_normalize(dist), os.path.join(entry or ".", name))
    return found


def _entry_points(text: str) -> list[tuple[str, str]]:
    """(name, value) of the instrumentor group in an entry_points.txt."""
    points, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            inside = line == f"[{GROUP}]"
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            points.append((name.strip(), value.partition("[")[0].strip()))
    return points


def _instrument_requirements(folder: str) -> tuple[list[str], list[str]]:
    """The ``instruments`` and ``instruments-any`` requirements, markers removed."""
    lines: list[str] = []
    if folder.endswith(".egg-info"):
        section = None
        for raw in (_read(os.path.join(folder, "requires.txt")) or "").splitlines():
            line = raw.strip()
            if line.startswith("["):
                section = line[1:-1]
            elif line and section in ("instruments", "instruments-any"):
                lines.append(f'{line}; extra == "{section}"')
    else:
        for raw in (_read(os.path.join(folder, "METADATA")) or "").splitlines():
            if not raw.strip():
                break  # end of the headers; the description follows
            if raw.startswith("Requires-Dist:") and "instruments" in raw:
                lines.append(raw[len("Requires-Dist:") :])
    instruments: list[str] = []
    instruments_any: list[str] = []
    for line in lines:
        spec, _, marker = line.partition(";")
        kind = _extra_of(marker)
        if kind is None:
            continue
        requirement = "".join(spec.split()).replace("(", "").replace(")", "")
        if requirement:
            (instruments if kind == "instruments" else instruments_any).append(requirement)
    return instruments, instruments_any


def _extra_of(marker: str) -> str | None:
    """Which of the two extras a marker selects (None: neither, or not on this interpreter)."""
    compact = "".join(marker.split()).replace("'", '"')
    for kind in ("instruments-any", "instruments"):
        if compact == f'extra=="{kind}"':
            return kind
    if "instruments" not in compact:
        return None
    # A marker with more in it (python_version...): evaluate it as upstream does.
    from packaging.markers import Marker

    for kind in ("instruments-any", "instruments"):
        if Marker(marker.strip()).evaluate({"extra": kind}):
            return kind
    return None


def _requirement_name(requirement: str) -> str:
    end = 0
    while end < len(requirement) and (requirement[end].isalnum() or requirement[end] in "-_."):
        end += 1
    return requirement[:end]


def _top_level(folder: str) -> list[str]:
    """The importable top-level names a distribution installs."""
    listed = _read(os.path.join(folder, "top_level.txt"))
    if listed is not None:
        return [name.strip() for name in listed.splitlines() if name.strip().isidentifier()]
    names: dict[str, None] = {}
    for line in (_read(os.path.join(folder, "RECORD")) or "").splitlines():
        path = line.partition(",")[0].strip('"')
        if not path or path.startswith(("..", "/")):
            continue
        first, slash, _ = path.partition("/")
        if slash:
            if first.endswith((".dist-info", ".data")) or first == "__pycache__":
                continue
            name = first
        elif path.endswith(".py"):
            name = path[:-3]
        elif path.endswith((".so", ".pyd")):
            name = path.partition(".")[0]
        else:
            continue
        if name.isidentifier():
            names[name] = None
    return list(names)


def scan(paths: list[str] | None = None) -> list[Entry]:
    """The instrumentor entry points on ``paths`` (default ``sys.path``) that otel-launch loads:
    not ours, and whose library is installed (upstream skips the others too)."""
    dists = _distributions(sys.path if paths is None else paths)
    entries: list[Entry] = []
    seen: set[str] = set()
    for folder in dists.values():
        text = _read(os.path.join(folder, "entry_points.txt"))
        if not text or GROUP not in text:
            continue
        points = [(name, value) for name, value in _entry_points(text) if name not in OURS and name not in seen]
        if not points:
            continue
        instruments, instruments_any = _instrument_requirements(folder)
        for name, value in points:
            seen.add(name)
            triggers = _triggers(name, instruments, instruments_any, dists)
            if triggers and " " not in value and ";" not in name + value:
                entries.append(Entry(name, value, triggers, instruments, instruments_any))
    return entries


def _triggers(name: str, instruments: list[str], instruments_any: list[str], dists: dict[str, str]) -> list[str]:
    if not instruments and not instruments_any:
        trigger = STDLIB_TRIGGERS.get(name, name)
        return [trigger] if trigger.replace(".", "_").isidentifier() else []
    # All of ``instruments`` are needed: the first names the library. Of ``instruments-any``,
    # each installed one will do, unless the entry point is named after one of them (httpx's
    # package has an ``httpx`` and an ``httpx2`` entry point, each for its own library).
    candidates = instruments[:1] if instruments else instruments_any
    own = [req for req in candidates if _normalize(_requirement_name(req)) == _normalize(name)]
    if not instruments and own:
        candidates = own
    triggers: dict[str, None] = {}
    for requirement in candidates:
        folder = dists.get(_normalize(_requirement_name(requirement)))
        if folder is None:
            continue  # not installed
        for module in _top_level(folder) or [_requirement_name(requirement).replace("-", "_")]:
            triggers[module] = None
    return list(triggers)


# -- handing the scan to the launched processes -------------------------------------------------


def _key() -> str:
    # A scan holds for one interpreter and one environment: a child of another one rescans.
    return f"{sys.version_info[0]}.{sys.version_info[1]}:{sys.prefix};"


def encode(entries: list[Entry]) -> str:
    """The value of ``_OTEL_LAUNCH_CATALOGUE`` for processes of this interpreter."""
    return _key() + ";".join(entry.encode() for entry in entries)


_found: list[Entry] | None = None


def entries() -> list[Entry]:
    """This process's catalogue (once): the launcher's hand-off when it is for this
    interpreter, else a scan of our own."""
    global _found
    if _found is None:
        handed = os.environ.get(ENV_VAR, "")
        key = _key()
        if handed.startswith(key):
            body = handed[len(key) :]
            _found = [Entry.decode(text) for text in body.split(";")] if body else []
        else:
            _found = scan()
    return _found


def for_child_env() -> str:
    """What the launcher hands its command: this scan, for processes of its interpreter."""
    return encode(entries())


def integrations(found: list[Entry]) -> list[CatalogueIntegration]:
    return [CatalogueIntegration(entry, trigger) for entry in found for trigger in entry.triggers]
