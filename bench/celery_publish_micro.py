"""Per-publish cost of the Celery producer path in a Django process, in one process: the shop's
``notify_customer.delay()`` N times to kombu's in-memory transport, outside any transaction, with
Django's connection open (what a view that queried and then sends a task has).

``python bench/celery_publish_micro.py VARIANT [N]``; VARIANT and ``BENCH_BEFORE_SRC`` as in
celery_micro.py (``plain``, ``otel-launch``, ``otel-launch-0``, ...). It prints the CPU time a
publish; for instructions a publish (callgrind): ``bench/instructions.py publish - VARIANT...``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _micro import GCPauses, prepare, profiled, receiver, shutdown

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"


def publish(task, count: int) -> None:
    for index in range(count):
        task.delay(index)


def main() -> None:
    variant = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    workdir = Path(tempfile.mkdtemp(prefix="otel-launch-bench-publish-"))
    with receiver() as collector:
        os.environ.update(
            SHOP_DB=str(workdir / "shop.sqlite3"), SHOP_BROKER_URL="memory://", DJANGO_SETTINGS_MODULE="shop.settings"
        )
        prepare(variant, collector.endpoint)
        sys.path.insert(0, str(SHOP))
        import django

        django.setup()
        from django.db import connection
        from orders import tasks
        from shop.celery import app  # noqa: F401  (the shop's Celery app, configured from Django's settings)

        connection.ensure_connection()  # opened, as after a view's first query
        publish(tasks.notify_customer, 200)  # warm-up: caches, first provider use
        cpu, wall = time.process_time(), time.perf_counter()
        with profiled(), GCPauses() as pauses:
            publish(tasks.notify_customer, count)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        shutdown(variant)
        spans = collector.spans()
    shutil.rmtree(workdir, ignore_errors=True)
    result = {"variant": variant, "publishes": count, "spans_received": spans, "cpu_us": round(1e6 * cpu / count, 1)}
    print(json.dumps({**result, "wall_us": round(1e6 * wall / count, 1), **pauses.summary(count)}), flush=True)


if __name__ == "__main__":
    main()
