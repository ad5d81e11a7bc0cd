from django.db import connection
from django.tasks import task


@task
def add(a: int, b: int) -> int:
    with connection.cursor() as cursor:  # a query inside the task: a child of its run span
        cursor.execute("SELECT %s + %s", [a, b])
        return cursor.fetchone()[0]


@task
def fail() -> None:
    raise ValueError("the order is gone")
