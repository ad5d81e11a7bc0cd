"""Instructions a request or a task, counted by callgrind: a figure the machine's load does not move.

Runs one benchmark under ``valgrind --tool=callgrind`` twice, with ``few`` and with ``few + 1000``
requests or tasks, and divides the difference by 1000: start-up, warm-up and exit cancel out
(``BENCH_FEW`` and ``BENCH_MEASURED`` change those counts: the list view takes 50 times longer a
request). The benchmarks: ``django``, ``celery``, ``django-tasks`` and ``publish``, the in-process loops of
``django_micro.py``, ``celery_micro.py``, ``django_tasks_micro.py`` and ``celery_publish_micro.py`` (variants
``plain``, ``otel-launch``, ``otel-launch-10``, ...; set
``BENCH_BEFORE_SRC`` to count a checkout's ``otel_launch`` too, as variants suffixed ``@before``;
``name@<dir>`` runs the checkout at ``<dir>``), and ``gunicorn``: the gunicorn worker of
bench/web.py, its requests made one after the other (a new connection each, as wrk's reach a sync
worker), counted in the worker process alone (variants named as in bench/web.py)::

    .venv/bin/python bench/instructions.py django trivial plain otel-launch otel-launch-0 otel-launch-10
    .venv/bin/python bench/instructions.py celery - plain otel-launch otel-launch-0
    .venv/bin/python bench/instructions.py django-tasks - plain otel-launch otel-launch-0   # Django 6+
    .venv/bin/python bench/instructions.py publish - plain otel-launch otel-launch@before
    BENCH_BEFORE_SRC=/tmp/before .venv/bin/python bench/instructions.py django list otel-launch otel-launch@before
    BENCH_BEFORE_SRC=/tmp/before .venv/bin/python bench/instructions.py gunicorn trivial plain "otel-launch (before)"

Also prints the CPU time a request or task the same runs measured (under valgrind: only their
ratios mean anything). A few minutes a variant.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEW = int(os.environ.get("BENCH_FEW", "300"))
MORE = FEW + int(os.environ.get("BENCH_MEASURED", "1000"))
UNITS = {"django": "request", "publish": "publish"}


def counted(bench: str, view: str, variant: str, count: int, out: Path) -> tuple[int, dict]:
    """(instructions, the bench's own JSON line) of one run under callgrind."""
    name, _, tag = variant.partition("@")
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same hashes, dict orders and collisions every run
    if tag and tag != "before":  # name@<dir>: that checkout's otel_launch
        env["BENCH_BEFORE_SRC"] = tag
    elif not tag:
        env.pop("BENCH_BEFORE_SRC", None)
    scripts = {
        "django": "django_micro.py",
        "django-tasks": "django_tasks_micro.py",
        "publish": "celery_publish_micro.py",
    }
    script = HERE / scripts.get(bench, "celery_micro.py")
    args = [name, view, str(count)] if bench == "django" else [name, str(count)]
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    total = int(re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.M).group(1))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return total, json.loads(lines[-1]) if lines else {}


def served(view: str, variant_name: str, count: int, out: Path) -> tuple[int, dict]:
    """(instructions of the gunicorn worker, {}) for ``count`` requests under ``variant_name``."""
    import http.client
    import signal

    from _common import (
        BIN,
        OURS,
        OURS_SAMPLED,
        OURS_UNSAMPLED,
        PLAIN,
        SHOP,
        UPSTREAM,
        UPSTREAM_SAMPLED,
        before_src,
        children,
        collector_down,
        free_port,
        peers,
        process,
        wait_until,
    )
    from web import VIEWS, answers

    ours = [OURS, OURS_SAMPLED, OURS_UNSAMPLED]
    known = [PLAIN, UPSTREAM, UPSTREAM_SAMPLED, *ours, *before_src(ours), *peers(os.environ["BENCH_HTTP_ENDPOINT"])]
    variant = {v.name: v for v in known}.get(variant_name) or (
        collector_down(OURS) if variant_name == "otel-launch, collector down" else None
    )
    if variant is None:
        raise SystemExit(f"bench: no variant {variant_name!r} (known: {', '.join(v.name for v in known)})")
    out.mkdir()
    port = free_port()
    command = [str(BIN / "gunicorn"), "shop.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "900"]
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/%p"]
    env = {**json.loads(os.environ["BENCH_ENV"]), **variant.env, "PYTHONHASHSEED": "0"}
    with process(valgrind + variant.command(command), SHOP, env, 1800, out / "log") as server:
        if not wait_until(lambda: answers(port), 600, 0.5):
            log = (out / "log").read_text()[-2000:]
            raise SystemExit(f"bench: gunicorn under {variant_name} did not answer:\n{log}")
        workers = children(server.pid)
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("GET", VIEWS[view], headers={"Host": f"127.0.0.1:{port}"})
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                raise SystemExit(f"bench: {VIEWS[view]} answered {response.status} under {variant_name}")
        server.send_signal(signal.SIGTERM)
        server.wait(600)
    (worker,) = workers
    text = (out / str(worker)).read_text(errors="replace")
    return int(re.search(r"^summary: (\d+)", text, re.M).group(1)), {}


def main() -> None:
    bench, view, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
    workdir = Path(tempfile.mkdtemp(prefix="otel-launch-bench-instructions-"))
    if bench == "gunicorn":
        return gunicorn_main(view, variants, workdir)
    if bench == "django" and "BENCH_SHOP_DB" not in os.environ:
        os.environ["BENCH_SHOP_DB"] = str(workdir / "shop.sqlite3")
        sys.path.insert(0, str(HERE))
        from django_micro import seed

        seed(Path(os.environ["BENCH_SHOP_DB"]))  # once, before two runs share it
    for variant in variants:
        with ThreadPoolExecutor(2) as pool:
            runs = [
                pool.submit(counted, bench, view, variant, n, workdir / re.sub(r"\W+", "_", f"cg-{variant}-{n}"))
                for n in (FEW, MORE)
            ]
            (few, _), (more, shown) = (run.result() for run in runs)
        per = (more - few) / (MORE - FEW)
        print(
            f"{variant:28s} {view:8s} {per / 1000:8.1f}k instructions a {UNITS.get(bench, 'task')}  ({shown})",
            flush=True,
        )
    shutil.rmtree(workdir, ignore_errors=True)


def gunicorn_main(view: str, variants: list[str], workdir: Path) -> None:
    sys.path.insert(0, str(HERE))
    from _common import base_env
    from web import VIEWS, seed

    from otel_launch.local.receiver import OTLPReceiver

    view = next(name for name in VIEWS if name.startswith(view))
    with OTLPReceiver(grpc_port=0, http_port=0, keep=False) as receiver:
        env = base_env(receiver.grpc_endpoint, workdir)
        seed(env)
        os.environ["BENCH_ENV"], os.environ["BENCH_HTTP_ENDPOINT"] = json.dumps(env), receiver.http_endpoint
        for variant in variants:
            name = re.sub(r"\W+", "_", variant)
            with ThreadPoolExecutor(2) as pool:
                runs = [pool.submit(served, view, variant, n, workdir / f"cg-{name}-{n}") for n in (FEW, MORE)]
                (few, _), (more, _) = (run.result() for run in runs)
            per = (more - few) / (MORE - FEW)
            shown = f"{variant:32s} {view[:12]:12s} {per / 1000:8.1f}k instructions a request (gunicorn worker)"
            print(shown, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
