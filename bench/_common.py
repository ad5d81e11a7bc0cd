"""What every benchmark section shares: the variants compared, processes bounded and killed by
PID, peak memory read from /proc, and the receiver's endpoint in one environment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
TEN_PERCENT = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


@dataclass(frozen=True)
class Variant:
    """One way of running the app: a command prefix and the environment it adds."""

    name: str
    prefix: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def command(self, command: list[str]) -> list[str]:
        return [*self.prefix, *command]


PLAIN = Variant("plain")
UPSTREAM = Variant("opentelemetry-instrument", (str(BIN / "opentelemetry-instrument"),))
OURS = Variant("otel-launch", (str(BIN / "otel-launch"),))
OURS_SAMPLED = Variant("otel-launch 10%", OURS.prefix, TEN_PERCENT)
UPSTREAM_SAMPLED = Variant("opentelemetry-instrument 10%", UPSTREAM.prefix, TEN_PERCENT)
# Every trace dropped by the same sampler: what 90% of requests and tasks cost at 10%.
OURS_UNSAMPLED = Variant(
    "otel-launch 0%", OURS.prefix, {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
)


def peers(http_endpoint: str) -> list[Variant]:
    """Every tool exporting OTLP/HTTP to the same receiver, beside the gRPC figures: ddtrace 4.x
    exports OTLP itself (``OTEL_TRACES_EXPORTER=otlp``) but over HTTP only. The peers run when
    installed (``pip install '.[bench]'``); newrelic in developer mode collects and sends nothing,
    so its figure is a lower bound of its cost."""
    http = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": http_endpoint}
    found = [
        Variant("otel-launch, http", OURS.prefix, http),
        Variant("opentelemetry-instrument, http", UPSTREAM.prefix, http),
    ]
    if (BIN / "ddtrace-run").exists():
        quiet = {"DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false"}
        otlp = {**http, **quiet, "OTEL_TRACES_EXPORTER": "otlp"}
        found.append(Variant("ddtrace-run, http", (str(BIN / "ddtrace-run"),), otlp))
    if (BIN / "newrelic-admin").exists():
        developer = {"NEW_RELIC_DEVELOPER_MODE": "true", "NEW_RELIC_APP_NAME": "bench"}
        found.append(Variant("newrelic (developer mode)", (str(BIN / "newrelic-admin"), "run-program"), developer))
    return found


def before_src(variants: list[Variant]) -> list[Variant]:
    """With ``BENCH_BEFORE_SRC=<dir>`` (a checkout's root: ``git archive <commit> otel_launch | tar
    -x -C <dir>``), each otel-launch variant again as "... (before)", run from that checkout's
    ``otel_launch`` (on PYTHONPATH, ahead of the installed one: launcher, bootstrap and runtime):
    before and after in one run, on the same machine load."""
    src = os.environ.get("BENCH_BEFORE_SRC")
    if not src:
        return []
    return [
        Variant(f"{variant.name} (before)", variant.prefix, {**variant.env, "PYTHONPATH": src})
        for variant in variants
        if variant.prefix == OURS.prefix
    ]


def collector_down(variant: Variant) -> Variant:
    """The variant exporting to a port nothing listens on."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    return Variant(
        f"{variant.name}, collector down", variant.prefix, {**variant.env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    )


def base_env(endpoint: str, workdir: Path) -> dict[str, str]:
    """The caller's environment without its OTEL_* settings, exporting to ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="bench",
        SHOP_DB=str(workdir / "shop.sqlite3"),
        DJANGO_SETTINGS_MODULE="shop.settings",
    )
    return env


def rotations(names: list, rounds: int) -> Iterator[list]:
    """The variants in a different order every round, so that drift over the run hits each alike."""
    for number in range(rounds):
        shift = number % len(names)
        yield names[shift:] + names[:shift]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait_until(check: Callable[[], object], timeout: float, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def memory_kb(pid: int, field_name: str = "VmHWM") -> int:
    """A memory figure of a live process in kB: VmHWM is its peak resident set, VmRSS the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a live process has used, all its threads, in seconds.

    Per request, it moves far less with the neighbours' load than throughput does: time the
    hypervisor gives another guest is not charged to the process (see cpu_times)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[int, int]:
    """(stolen, total) CPU time since boot, in clock ticks, from /proc/stat.

    On a virtual machine "steal" is time the hypervisor gave another guest: a run with much of
    it measures the neighbours as much as the variants (ratios within a round hold up better).
    """
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


@contextlib.contextmanager
def process(command: list[str], cwd: Path, env: dict[str, str], limit: float, log: Path) -> Iterator[subprocess.Popen]:
    """A process in its own group, killed with its whole group on the way out or after ``limit`` s."""
    with open(log, "w") as out:
        child = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = time.monotonic()
    try:
        yield child
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(max(1.0, min(20.0, limit - (time.monotonic() - started))))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(10)


def run(command: list[str], cwd: Path, env: dict[str, str], limit: float) -> str:
    """Run to completion within ``limit`` seconds; its output, or an error naming the command."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"otel-launch-bench-{prefix}-"))
