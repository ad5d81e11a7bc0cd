"""What the doctor reports about this environment: the versions that matter, the integrations
they enable, whether the app's interpreter is this one, and the installed libraries that have a
contrib instrumentation this environment lacks (from the contrib's own table,
``opentelemetry.instrumentation.bootstrap_gen``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata

from otel_launch._core import catalogue
from otel_launch._launcher.config import Config
from otel_launch._version import __version__

VERSIONS = (
    "opentelemetry-sdk",
    "opentelemetry-api",
    "opentelemetry-instrumentation",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "django",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "psycopg2",
)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def version_line() -> str:
    found = [f"{name} {_version(name) or '(not installed)'}" for name in VERSIONS]
    python = f"python {sys.version.split()[0]} ({sys.executable})"
    return f"versions: otel-launch {__version__}, {python}, " + ", ".join(found)


def integrations_line(config: Config) -> str:
    disabled = set(config.disabled_instrumentations or ())
    parts = []
    for name, distribution in catalogue.OWN.items():
        version = "stdlib" if distribution is None else _version(distribution)
        if name in disabled:
            parts.append(f"{name}: off (disabled)")
        elif version is None:
            parts.append(f"{name}: not loaded ({distribution} not installed)")
        else:
            parts.append(f"{name}: loads ({'standard library' if distribution is None else version})")
    # The catalogue: every other installed instrumentation, run when its library is imported.
    for entry in catalogue.entries():
        when = "off (disabled)" if entry.name in disabled or "*" in disabled else "loads"
        parts.append(f"{entry.name}: {when} when {' or '.join(entry.triggers)} is imported")
    return "integrations: " + "; ".join(parts)


def missing_instrumentations() -> list[tuple[str, str]]:
    """(library with version, instrumentation requirement) for each installed library of the contrib's
    table whose instrumentation package is not installed."""
    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from packaging.requirements import Requirement

    missing = []
    for entry in libraries:
        library = Requirement(entry["library"])
        installed = _version(library.name)
        if installed is None or not library.specifier.contains(installed, prereleases=True):
            continue
        instrumentation = Requirement(entry["instrumentation"])
        if _version(instrumentation.name) is None:
            missing.append((f"{library.name} {installed}", entry["instrumentation"]))
    return sorted(set(missing))


def _shebang_python(path: str) -> str | None:
    """The Python interpreter a script's ``#!`` line names, if it names one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n")[0].decode(errors="replace").split()
    if words and os.path.basename(words[0]) == "env":
        words = [word for word in words[1:] if not word.startswith("-")]
    if not words or not os.path.basename(words[0]).startswith("python"):
        return None
    return shutil.which(words[0]) or words[0]


def interpreter_line(command: tuple[str, ...]) -> str:
    """Whether the app's interpreter (the command's, else ``python`` on PATH) is this one."""
    program = command[0] if command else "python"
    found = shutil.which(program)
    if found is None:
        return f"interpreter: {program!r} not found on PATH; the app cannot be launched as given"
    # A script names its interpreter in its #! line; a python (or a pyenv/asdf shim) is asked.
    interpreter = _shebang_python(found)
    if interpreter is None:
        if not os.path.basename(found).startswith("python"):
            return f"interpreter: {program} ({found}) is not a Python script; cannot tell which Python it runs"
        interpreter = found
    try:
        answer = subprocess.run(
            [interpreter, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, timeout=15
        )
        prefix = answer.stdout.strip() if answer.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        prefix = ""
    if prefix and os.path.realpath(prefix) == os.path.realpath(sys.prefix):
        return f"interpreter: {program} runs {interpreter}: this one (sys.prefix {sys.prefix})"
    return (
        f"interpreter: {program} runs {interpreter} (prefix {prefix or 'unknown'}), NOT this one ({sys.executable}):"
        " install otel-launch in the app's environment, or telemetry will not load there"
    )
