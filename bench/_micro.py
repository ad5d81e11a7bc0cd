"""What the in-process micro benchmarks (django_micro.py, celery_micro.py) share: the variants'
environment, an OTLP receiver in another process, and an optional profile of the measured loop."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RATIOS = {"otel-launch-10": "0.1", "otel-launch-0": "0"}  # parentbased_traceidratio's argument
VARIANTS = "plain, otel-launch, otel-launch-10, otel-launch-0, contrib"


def launcher_environment() -> dict[str, str]:
    """The OTEL_* variables the launcher writes for its target (its defaults, resolved)."""
    code = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('OTEL_')}))"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "otel-launch"), sys.executable, "-c", code],
        env=plain_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def plain_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}


def prepare(variant: str, endpoint: str) -> None:
    """This process set up as ``variant``: otel-launch's runtime started with the launcher's
    environment (from ``BENCH_BEFORE_SRC``'s checkout when set), exporting to ``endpoint``.

    Spans are exported by batch size only (512 spans) and metrics once, at exit: counts that do
    not depend on how long the run takes (under callgrind, 50 times longer)."""
    if variant.startswith("otel-launch"):
        os.environ.update(launcher_environment())
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ.setdefault("OTEL_SERVICE_NAME", "micro")
    os.environ.update(OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_METRIC_EXPORT_INTERVAL="600000")
    # Every span delivered at exit, however slowly (callgrind): counts compare like with like.
    os.environ["OTEL_LAUNCH_SHUTDOWN_TIMEOUT"] = "600"
    if os.environ.get("BENCH_PROTOCOL"):
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = os.environ["BENCH_PROTOCOL"]
    if variant in RATIOS:
        os.environ.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=RATIOS[variant])
    before = os.environ.get("BENCH_BEFORE_SRC")
    if before:
        sys.path.insert(0, before)
    if variant.startswith("otel-launch"):
        from otel_launch._runtime import start

        start()


def shutdown(variant: str) -> None:
    if variant.startswith("otel-launch"):
        from otel_launch._runtime import _lifecycle

        _lifecycle.shutdown()
        return
    from opentelemetry import metrics, trace

    getattr(trace.get_tracer_provider(), "shutdown", lambda: None)()
    getattr(metrics.get_meter_provider(), "shutdown", lambda: None)()


class Receiver:
    """An OTLP receiver (gRPC) in a process of its own, counting what arrives."""

    def __init__(self, process: subprocess.Popen, grpc_port: int, http_port: int) -> None:
        self.process = process
        self.grpc_endpoint, self.http_endpoint = f"http://127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"

    @property
    def endpoint(self) -> str:
        """Where the variant exports: this receiver over gRPC, or over HTTP with BENCH_PROTOCOL=http/protobuf,
        or, with BENCH_COLLECTOR_DOWN=1, a port nothing listens on."""
        if os.environ.get("BENCH_COLLECTOR_DOWN") == "1":
            from _common import free_port

            return f"http://127.0.0.1:{free_port()}"
        return self.http_endpoint if os.environ.get("BENCH_PROTOCOL") == "http/protobuf" else self.grpc_endpoint

    def spans(self) -> int:
        """Spans received so far."""
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import free_port

    ports = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, *map(str, ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        process.stdout.readline()  # "ready"
        yield Receiver(process, *ports)
    finally:
        os.killpg(process.pid, 9)
        process.wait(10)


_RECEIVER = """
import sys
from otel_launch.local.receiver import OTLPReceiver
with OTLPReceiver(grpc_port=int(sys.argv[1]), http_port=int(sys.argv[2]), keep=False) as receiver:
    print("ready", flush=True)
    for line in sys.stdin:
        print(receiver.counts["traces"], flush=True)
"""


@contextlib.contextmanager
def profiled() -> Iterator[None]:
    """With BENCH_PROFILE=<sort key> (``ncalls``, ``cumulative``, ``tottime``), the measured loop
    under cProfile, this thread's calls printed (divide by N for a request's or task's);
    BENCH_PROFILE_FILTER=<regex> keeps the matching functions."""
    key = os.environ.get("BENCH_PROFILE")
    if not key:
        yield
        return
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        pstats.Stats(profile).sort_stats(key).print_stats(os.environ.get("BENCH_PROFILE_FILTER", ""), 80)


class GCPauses:
    """Garbage-collector passes during the measured loop, by generation: how many and how long
    (the longest is a pause every request in flight waits for). ``gc.callbacks`` only."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {}
        self._started = 0.0

    def __enter__(self) -> GCPauses:
        import gc

        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        import time

        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation.setdefault(info["generation"], []).append(time.perf_counter() - self._started)

    def summary(self, count: int) -> dict[str, float]:
        """Per generation: passes per 1000 requests or tasks, and the longest pause (ms)."""
        found = {}
        for generation, pauses in sorted(self.by_generation.items()):
            found[f"gen{generation}_per_1000"] = round(1000 * len(pauses) / count, 2)
            found[f"gen{generation}_max_ms"] = round(1000 * max(pauses), 2)
        return found
