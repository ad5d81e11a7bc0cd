"""Start-up overhead of otel-launch against plain Python and opentelemetry-instrument.

Each scenario runs the three variants side by side in one process, alternating their
order every round, with the package's OTLP receiver consuming the export. Writes
bench/results.json and bench/results.md (medians, overhead over plain, and the ratio of
otel-launch's overhead to opentelemetry-instrument's).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from otel_launch import __version__
from otel_launch._receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
VARIANTS = {
    "plain": [],
    "otel-launch": [str(BIN / "otel-launch")],
    "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument")],
}
# name, command, working directory, rounds, target: otel-launch overhead / upstream overhead below this
SCENARIOS = [
    ("python -c pass", [PYTHON, "-c", "pass"], ROOT, 21, 0.10),
    ('python -c "import django"', [PYTHON, "-c", "import django"], ROOT, 15, 0.50),
    ("manage.py check (Django)", [PYTHON, "manage.py", "check"], SHOP, 9, 0.50),
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


def main() -> None:
    results = []
    with OTLPReceiver(grpc_port=0, http_port=None) as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
            OTEL_SERVICE_NAME="bench",
            SHOP_DB=str(Path(tempfile.mkdtemp(prefix="otel-launch-bench-")) / "shop.sqlite3"),
            DJANGO_SETTINGS_MODULE="shop.settings",
        )
        names = list(VARIANTS)
        for scenario, command, cwd, rounds, target in SCENARIOS:
            for name in names:  # warm the file cache once per variant, untimed
                time_once(VARIANTS[name] + command, cwd, env)
            samples: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    samples[name].append(time_once(VARIANTS[name] + command, cwd, env))
            medians = {name: statistics.median(values) for name, values in samples.items()}
            ours = medians["otel-launch"] - medians["plain"]
            upstream = medians["opentelemetry-instrument"] - medians["plain"]
            ratio = ours / upstream if upstream > 0 else float("inf")
            results.append(
                {
                    "scenario": scenario,
                    "rounds": rounds,
                    "median_s": {name: round(value, 4) for name, value in medians.items()},
                    "overhead_s": {"otel-launch": round(ours, 4), "opentelemetry-instrument": round(upstream, 4)},
                    "ratio_to_upstream_overhead": round(ratio, 3),
                    "target_ratio_below": target,
                    "meets_target": ratio < target,
                }
            )
            print(
                f"{scenario}: plain {medians['plain']:.3f}s, otel-launch +{ours:.3f}s, "
                f"opentelemetry-instrument +{upstream:.3f}s, ratio {ratio:.3f} (target < {target})"
            )
        spans_received = len(receiver.spans)

    report = {
        "otel_launch_version": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "spans_received": spans_received,
        "method": "medians of alternated runs, one process, variants rotated every round; overhead = variant - plain",
        "results": results,
    }
    out = Path(__file__).resolve().parent
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| scenario | plain | otel-launch | opentelemetry-instrument | otel-launch overhead / upstream overhead |",
        "|---|---|---|---|---|",
    ]
    for row in results:
        median, overhead = row["median_s"], row["overhead_s"]
        verdict = "meets" if row["meets_target"] else "MISSES"
        lines.append(
            f"| {row['scenario']} | {median['plain']:.3f} s | {median['otel-launch']:.3f} s "
            f"(+{overhead['otel-launch'] * 1000:.0f} ms) | {median['opentelemetry-instrument']:.3f} s "
            f"(+{overhead['opentelemetry-instrument'] * 1000:.0f} ms) | {row['ratio_to_upstream_overhead']:.2f} "
            f"({verdict} target < {row['target_ratio_below']}) |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
