"""Start-up time: plain Python, opentelemetry-instrument and otel-launch, alternated.

``python -c pass`` (a process that makes no telemetry), ``import django``, ``import requests``
(an HTTP client: otel-launch instruments it, and urllib3 and urllib under it, on that import),
and the shop's ``manage.py check`` (a Django + Celery project: the command is a span, exported
at exit). All with the whole catalogue installed (the ``catalogue`` extra adds instrumentations
whose libraries are absent, as in a real project's environment): see :func:`installed`.
Run alone: ``.venv/bin/python bench/startup.py`` (``--quick``: 5 rounds each).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import OURS, PLAIN, PYTHON, ROOT, SHOP, UPSTREAM, Variant, rotations

# name, command, working directory, rounds
SCENARIOS = [
    ("python -c pass", [PYTHON, "-c", "pass"], ROOT, 21),
    ('python -c "import django"', [PYTHON, "-c", "import django"], ROOT, 15),
    ('python -c "import requests"', [PYTHON, "-c", "import requests"], ROOT, 15),
    ("manage.py check", [PYTHON, "manage.py", "check"], SHOP, 11),
]


def time_once(command: list[str], cwd: Path, env: dict[str, str], limit: float = 120.0) -> float:
    """Wall time of one run. A blocking wait, bounded by a watchdog that kills the run: a
    ``timeout=`` wait polls with sleeps of up to 50 ms and would round short runs up."""
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(limit, process.kill)
    watchdog.start()
    try:
        status = process.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"bench: {command} exited with {status}")
    return elapsed


def installed() -> str:
    """How many instrumentations the environment has: what opentelemetry-instrument loads at
    every start, and what otel-launch scans once in the launcher."""
    import importlib.metadata

    names = sorted({point.name for point in importlib.metadata.entry_points(group="opentelemetry_instrumentor")})
    return f"{len(names)} instrumentor entry points installed ({', '.join(names)})"


def measure(env: dict[str, str], variants: list[Variant], rounds_cap: int | None = None) -> dict[str, dict[str, float]]:
    """Scenario -> variant -> median wall time (s)."""
    print(f"start-up: {installed()}", flush=True)
    medians = {}
    for scenario, command, cwd, rounds in SCENARIOS:
        rounds = min(rounds, rounds_cap or rounds)
        for variant in variants:  # warm the file cache once per variant, untimed
            time_once(variant.command(command), cwd, {**env, **variant.env})
        samples: dict[str, list[float]] = {variant.name: [] for variant in variants}
        for order in rotations(variants, rounds):
            for variant in order:
                samples[variant.name].append(time_once(variant.command(command), cwd, {**env, **variant.env}))
        medians[scenario] = {name: statistics.median(values) for name, values in samples.items()}
        print(f"start-up, {scenario}: " + ", ".join(f"{n} {v:.3f}s" for n, v in medians[scenario].items()), flush=True)
    return medians


def main() -> None:
    from _common import base_env, scratch

    from otel_launch.local.receiver import OTLPReceiver

    with OTLPReceiver(grpc_port=0, http_port=None, keep=False) as receiver:
        quick = 5 if "--quick" in sys.argv else None
        measure(base_env(receiver.grpc_endpoint, scratch("startup")), [PLAIN, UPSTREAM, OURS], quick)


if __name__ == "__main__":
    main()
