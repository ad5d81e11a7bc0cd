"""Queries run in a thread pool, one Django connection a thread, as django-health-check runs its checks."""

import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import connection


def _query(index: int) -> int:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s", [index])
            return cursor.fetchone()[0]
    finally:
        connection.close()


def in_a_pool(logger: logging.Logger, what: str) -> list[int]:
    logger.info("%s ran", what)
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(_query, range(3)))
