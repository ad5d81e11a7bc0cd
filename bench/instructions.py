"""Instructions a request or a task, counted by callgrind: a figure the machine's load does not move.

Runs one in-process micro benchmark (``django_micro.py`` or ``celery_micro.py``) under
``valgrind --tool=callgrind`` twice, with ``few`` and with ``few + 1000`` requests or tasks, and
divides the difference by 1000: start-up, warm-up and exit cancel out (``BENCH_FEW`` and
``BENCH_MEASURED`` change those counts: the list view takes 50 times longer a request). Every variant named runs
in turn (set ``BENCH_BEFORE_SRC`` to count a checkout's ``otel_launch`` too, as variants suffixed
``@before``; ``name@<dir>`` runs the checkout at ``<dir>``)::

    .venv/bin/python bench/instructions.py django trivial plain otel-launch otel-launch-0 otel-launch-10
    .venv/bin/python bench/instructions.py celery - plain otel-launch otel-launch-0
    BENCH_BEFORE_SRC=/tmp/before .venv/bin/python bench/instructions.py django list otel-launch otel-launch@before

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


def counted(bench: str, view: str, variant: str, count: int, out: Path) -> tuple[int, dict]:
    """(instructions, the bench's own JSON line) of one run under callgrind."""
    name, _, tag = variant.partition("@")
    env = dict(os.environ)
    if tag and tag != "before":  # name@<dir>: that checkout's otel_launch
        env["BENCH_BEFORE_SRC"] = tag
    elif not tag:
        env.pop("BENCH_BEFORE_SRC", None)
    script = HERE / ("django_micro.py" if bench == "django" else "celery_micro.py")
    args = [name, view, str(count)] if bench == "django" else [name, str(count)]
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    total = int(re.search(r"^summary: (\d+)", out.read_text(errors="replace"), re.M).group(1))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return total, json.loads(lines[-1]) if lines else {}


def main() -> None:
    bench, view, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
    workdir = Path(tempfile.mkdtemp(prefix="otel-launch-bench-instructions-"))
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
            f"{variant:28s} {view:8s} {per / 1000:8.1f}k instructions a {'request' if bench == 'django' else 'task'}"
            f"  ({shown})",
            flush=True,
        )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
