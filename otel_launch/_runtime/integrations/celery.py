"""Celery: producer and worker spans from the contrib signals, made whole for real deployments.

The contrib ``CeleryInstrumentor`` connects Celery's signals (publish on the producer side,
prerun/postrun/failure/retry on the worker side); it is run when the app imports celery,
in every process: web, worker, beat, management commands. Around it:

- Prefork pool children inherit the connected signals; the SDK renews its export threads
  and ``service.instance.id`` in every child at fork, and our lifecycle gives each child its
  own exit flush. Children end in ``os._exit()`` after ``worker_process_shutdown`` (also when
  recycled by ``--max-tasks-per-child``), which skips atexit: that signal is where each child
  flushes. Without it every task span and the last metrics of every child are lost.
- A task sent by name that the sending process does not have registered (``send_task``,
  beat) would leave its publish span open and current forever: the contrib finds no task
  object to keep the span on. A stand-in per task name keeps it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def on_import(celery: ModuleType) -> None:
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor, utils

    from otel_launch._runtime.integrations._instrumentor import instrument_once

    if not instrument_once(CeleryInstrumentor()):
        return
    _keep_spans_of_unregistered_tasks(utils)
    signals.worker_process_shutdown.connect(_flush_pool_child, weak=False)


def _flush_pool_child(**_: Any) -> None:
    from otel_launch._runtime import _lifecycle

    _lifecycle.shutdown()


class UnregisteredTask:
    """Stands for a task the sending process knows only by name, to hold its publish span."""

    def __init__(self, name: str) -> None:
        self.name = name


def _keep_spans_of_unregistered_tasks(utils: ModuleType) -> None:
    retrieve = utils.retrieve_task_from_sender
    stand_ins: dict[str, UnregisteredTask] = {}

    def retrieve_task_from_sender(kwargs: Any) -> Any:
        task = retrieve(kwargs)
        sender = kwargs.get("sender")
        if task is None and isinstance(sender, str):
            task = stand_ins.get(sender) or stand_ins.setdefault(sender, UnregisteredTask(sender))
        return task

    utils.retrieve_task_from_sender = retrieve_task_from_sender
