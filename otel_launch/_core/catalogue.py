"""The instrumentor catalogue: otel-launch's own integrations by name, and every other installed
``opentelemetry_instrumentor`` entry point, found by reading ``*.dist-info`` folders.

``opentelemetry-instrument`` loads every entry point at interpreter start (~680 ms with a dozen
installed); otel-launch runs each when the app imports its library (the runtime's
``integrations/_catalogue.py``). An :class:`Entry` says what to load and which modules trigger it:
the top-level modules of the distribution its ``instruments`` (or ``instruments-any``)
requirements name, from that distribution's ``top_level.txt`` or ``RECORD``; with no
requirement (a standard-library instrumentation), the entry point's name.

``importlib.metadata`` answers the same questions, but importing it alone costs more than the
whole start-up budget (~45 ms CPU on the bench machine): this reads the three or four files
it needs per distribution itself. Only what upstream reads is read: ``entry_points.txt``, the
``Requires-Dist`` headers of ``METADATA`` (``requires.txt`` for ``*.egg-info``),
``top_level.txt`` or ``RECORD``; a unit test compares the answers with ``importlib.metadata``'s
on the real environment. The launcher scans once, keeps the result in the user's cache folder
until a folder holding distributions changes, and hands it to its children in
``_OTEL_LAUNCH_CATALOGUE``; a process that gets none, or one made for another interpreter, does
the same for itself. Standard library only: the launcher and the target both read it.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "_OTEL_LAUNCH_CATALOGUE"
GROUP = "opentelemetry_instrumentor"
# otel-launch's own integrations, by the names OTEL_PYTHON_DISABLED_INSTRUMENTATIONS gives them, in
# the order the runtime registers their steps (integrations/__init__.py), each with the
# distribution whose version the doctor reports (None: the standard library).
OWN: dict[str, str | None] = {
    "django": "django",
    "celery": "celery",
    "redis": "redis",
    "sqlite3": None,
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "threading": None,  # the trace context carried into threads and thread pools
    "uvicorn": "uvicorn",  # its exit flush, before it dies by its signal
    "uwsgi": "uwsgi",  # the post-fork chain of uWSGI's workers
}
# Entry points otel-launch never loads: ours replace them, so does our log correlation
# ``logging``'s, and ``system_metrics`` has no library import to wait for (it would have to run at start).
NEVER_LOADED = frozenset({*OWN, "logging", "system_metrics"})
# Standard-library instrumentations name no requirement; their trigger is the module they
# patch, when it is not the entry point's name (``import urllib`` alone sends nothing).
STDLIB_TRIGGERS = {"urllib": "urllib.request"}


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


# -- this process's catalogue, and handing it to the launched processes ------------------------


def interpreter_key() -> str:
    # A scan holds for one interpreter and one environment: a child of another one rescans.
    return f"{sys.version_info[0]}.{sys.version_info[1]}:{sys.prefix};"


def encode(entries: list[Entry]) -> str:
    """The value of ``_OTEL_LAUNCH_CATALOGUE`` for processes of this interpreter."""
    return interpreter_key() + ";".join(entry.encode() for entry in entries)


def decode(body: str) -> list[Entry]:
    return [Entry.decode(text) for text in body.split(";")] if body else []


_found: list[Entry] | None = None


def entries() -> list[Entry]:
    """This process's catalogue (once): the launcher's hand-off when it is for this
    interpreter, else the cached scan, else a scan of our own."""
    global _found
    if _found is None:
        handed = os.environ.get(ENV_VAR, "")
        key = interpreter_key()
        _found = decode(handed[len(key) :]) if handed.startswith(key) else cached_scan(sys.path)
    return _found


def for_child_env() -> str:
    """What the launcher hands its command: this scan, for processes of its interpreter."""
    return encode(entries())


def names() -> list[str]:
    """The instrumentation names otel-launch knows: its own, then the catalogue's."""
    return list(dict.fromkeys([*OWN, *(entry.name for entry in entries())]))


# -- reading the dist-info folders ----------------------------------------------------------------


def _normalize(name: str) -> str:
    """PEP 503 name, as dist-info folder names and requirements may spell it differently."""
    out: list[str] = []
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
    return _scan(_distributions(sys.path if paths is None else paths))


def _scan(dists: dict[str, str]) -> list[Entry]:
    entries: list[Entry] = []
    seen: set[str] = set()
    for folder in dists.values():
        text = _read(os.path.join(folder, "entry_points.txt"))
        if not text or GROUP not in text:
            continue
        points = [(name, value) for name, value in _entry_points(text) if name not in NEVER_LOADED and name not in seen]
        if not points:
            continue
        instruments, instruments_any = _instrument_requirements(folder)
        for name, value in points:
            seen.add(name)
            triggers = _triggers(name, instruments, instruments_any, dists)
            if triggers and " " not in value and ";" not in name + value:
                entries.append(Entry(name, value, triggers, instruments, instruments_any))
    return entries


def entry_point_names(paths: list[str] | None = None) -> set[str]:
    """Every instrumentor entry point's name on ``paths``, used or not (for the disabled list)."""
    names: set[str] = set()
    for folder in _distributions(sys.path if paths is None else paths).values():
        text = _read(os.path.join(folder, "entry_points.txt"))
        if text and GROUP in text:
            names.update(name for name, _ in _entry_points(text))
    return names


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


def _cache_file(head: str) -> str:
    """One file per interpreter and path: ``python -m`` puts the current directory first."""
    digest = 0x811C9DC5  # FNV-1a: zlib or hashlib would load a shared library (~0.5 ms) for this
    for byte in head.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    folder = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(folder, "otel-launch", f"catalogue-{digest:08x}.txt")


def _mtime(folder: str) -> str:
    try:
        return str(os.stat(folder).st_mtime_ns)
    except OSError:
        return "-"


def cached_scan(paths: list[str]) -> list[Entry]:
    """:func:`scan`, kept in the user's cache folder. A scan reads a few files per installed
    distribution (~3 ms for a hundred); the cache, one file and a stat per folder.

    The cache holds while ``paths`` is the same list and no folder holding distributions has
    changed: installing, upgrading or removing one adds or renames a ``*.dist-info`` folder,
    which changes its parent's modification time. Folders with none (the current directory,
    often) are not watched: they change all the time.
    """
    head = interpreter_key() + "\x1f".join(paths)
    path = _cache_file(head)
    cached = (_read(path) or "").split("\n", 2)
    if len(cached) == 3 and cached[0] == head:
        watched = [item.rpartition("\x1f") for item in cached[1].split("\x1e") if item]
        if all(_mtime(folder) == mtime for folder, _, mtime in watched):
            return decode(cached[2])
    mtimes = {entry or ".": _mtime(entry or ".") for entry in paths}  # before listing: a change during
    dists = _distributions(paths)  # the scan must show at the next check
    found = _scan(dists)
    holding = sorted({os.path.dirname(folder) for folder in dists.values()})
    watched_line = "\x1e".join(f"{folder}\x1f{mtimes.get(folder, '-')}" for folder in holding)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(f"{head}\n{watched_line}\n{encode(found)[len(interpreter_key()) :]}")
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home: scan every time
    return found
