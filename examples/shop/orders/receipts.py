"""The shop's task on Django's own tasks framework (``django.tasks``, Django 6.0 and later), run by
the backend ``TASKS`` names: Django's default, ``ImmediateBackend``, runs it inside ``enqueue()``."""

from django.tasks import task

from orders.models import Order


@task
def email_receipt(order_id: int) -> str | None:
    """The receipt's text for an order (a real shop would send it)."""
    order = Order.objects.filter(pk=order_id).values("customer", "total_cents").first()
    return None if order is None else f"{order['customer']}: {order['total_cents'] / 100:.2f}"
