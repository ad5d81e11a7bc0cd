"""The shop's tasks. SHOP_TASK_LOG, when set, gets one JSON line per task execution."""

import json
import logging
import os
import time

from celery import shared_task

from orders.models import Order

logger = logging.getLogger(__name__)


def record_execution(task, **fields):
    path = os.environ.get("SHOP_TASK_LOG")
    if path:
        line = {"task": task.name, "id": task.request.id, "retries": task.request.retries, "pid": os.getpid()}
        line.update(fields)
        with open(path, "a") as log:
            log.write(json.dumps(line) + "\n")


@shared_task(bind=True)
def fulfil_order(self, order_id):
    """Marks the order fulfilled, then has the customer notified by another task."""
    logger.info("fulfilling order %s", order_id)
    Order.objects.filter(pk=order_id).update(fulfilled=True)
    record_execution(self, order=order_id, origin=self.request.get("x-shop-origin"))
    notify_customer.delay(order_id)


@shared_task(bind=True)
def notify_customer(self, order_id, seconds=0):
    logger.info("notifying the customer of order %s", order_id)
    record_execution(self, order=order_id)
    time.sleep(seconds)  # the tests' backlogs: long enough that every pool child takes a share


@shared_task(bind=True, max_retries=3)
def charge_card(self, order_id):
    """Fails on its first run, as a payment gateway time-out would, and succeeds when retried."""
    record_execution(self, order=order_id)
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("payment gateway timed out"), countdown=0)


@shared_task(bind=True)
def refund(self, order_id):
    """Always fails: there is nothing to refund."""
    record_execution(self, order=order_id)
    raise ValueError(f"order {order_id} was never charged")


@shared_task(ignore_result=True)
def tick():
    """A trivial task for the benchmark: appends its end time to SHOP_TICKS (one write)."""
    path = os.environ.get("SHOP_TICKS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{time.time():.6f}\n".encode())
        finally:
            os.close(fd)


@shared_task(bind=True)
def call_downstream(self, client):
    """Calls the service at SHOP_DOWNSTREAM_URL from a worker (see views.call_downstream)."""
    from orders.views import fetch_downstream

    record_execution(self, client=client, status=fetch_downstream(client))


# -- Celery depth: countdown, time limits, a lost child, canvas --------------------------------


@shared_task(bind=True)
def remind_customer(self, order_id):
    """Sent with a countdown ("remind them in a while"): its queue time excludes the wait asked for."""
    record_execution(self, order=order_id)


@shared_task(bind=True, time_limit=1)
def export_orders(self, seconds=5):
    """Outlives its hard time limit of 1 s: billiard terminates the child under it."""
    record_execution(self)
    time.sleep(seconds)


@shared_task(bind=True)
def crash_worker(self):
    """Its child dies under it, as under the OOM killer."""
    import signal

    record_execution(self)
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(bind=True, ignore_result=False)
def add(self, x, y):
    """A canvas step (chain, group, chord header)."""
    record_execution(self)
    return x + y


@shared_task(bind=True, ignore_result=False)
def total(self, values):
    """A chord callback."""
    record_execution(self)
    return sum(values)


@shared_task(bind=True)
def check_orders(self, order_ids):
    """One query an order (the N+1 pattern): the run span says which statement repeated."""
    found = [Order.objects.filter(pk=order_id).exists() for order_id in order_ids]
    record_execution(self, found=sum(found))


# -- tasks sent inside a database transaction --------------------------------------------------


@shared_task(bind=True)
def confirm_order(self, order_id):
    """Reads the order it was sent for: not found when it ran before the sender's commit, or after
    its rollback (see views.place_in_transaction)."""
    record_execution(self, order=order_id, found=Order.objects.filter(pk=order_id).exists())


# -- what a task costs: memory and CPU ----------------------------------------------------------


@shared_task(bind=True)
def build_report(self, megabytes=50):
    """Builds a report in memory: ``megabytes`` written (so resident), then let go."""
    report = b"r" * (megabytes * 1024 * 1024)
    record_execution(self, size=len(report))
    del report


@shared_task(bind=True)
def score_orders(self, seconds=0.5):
    """Scores orders: pure computation for ``seconds`` of this process's CPU time."""
    until, rounds = time.process_time() + seconds, 0
    while time.process_time() < until:
        rounds += sum(i * i for i in range(1000)) & 1
    record_execution(self, rounds=rounds)
