import logging

from celery import shared_task

from pool_app.work import in_a_pool

log = logging.getLogger("pool_app.tasks")


@shared_task(name="pool_app.pooled")
def pooled():
    return in_a_pool(log, "task")
