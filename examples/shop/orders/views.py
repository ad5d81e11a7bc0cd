import json
import logging
import os
import time

from celery import current_app
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse

from orders import tasks
from orders.models import Order

logger = logging.getLogger(__name__)
FIELDS = ("id", "customer", "total_cents", "fulfilled")


def health(request):
    return HttpResponse("ok", content_type="text/plain")


def orders(request):
    """GET lists orders; POST places one and has a worker fulfil it.

    ``?via=headers`` enqueues with headers of the app's own, ``?via=name`` by task name.
    """
    if request.method != "POST":
        return JsonResponse({"orders": list(Order.objects.order_by("id").values(*FIELDS))})
    order = Order.objects.create(
        customer=request.POST.get("customer", "walk-in"), total_cents=int(request.POST.get("total_cents", 100))
    )
    via = request.GET.get("via")
    if via == "headers":
        tasks.fulfil_order.apply_async((order.id,), headers={"x-shop-origin": "web"})
    elif via == "name":
        current_app.send_task("orders.tasks.fulfil_order", (order.id,))
    else:
        tasks.fulfil_order.delay(order.id)
    logger.info("order %s placed", order.id)
    return JsonResponse({"id": order.id}, status=201)


def customers(request):
    """The ten latest orders, each with its customer's order count: 1 + 10 queries, the
    shape of a typical list page (the benchmark's "list view")."""
    latest = list(Order.objects.order_by("-id").values(*FIELDS)[:10])
    for order in latest:
        order["customer_orders"] = Order.objects.filter(customer=order["customer"]).count()
    return JsonResponse({"orders": latest})


def order_detail(request, pk):
    key = f"order:{pk}"
    order = cache.get(key)
    if order is None:
        order = Order.objects.filter(pk=pk).values(*FIELDS).first()
        if order is None:
            raise Http404("no such order")
        cache.set(key, order, timeout=5)
    return JsonResponse(order)


def slow(request):
    """Answers after ``?ms=`` milliseconds (300 by default, at most 5000), as a report over a big
    table would; and says so in a warning (a log record linked to its trace)."""
    delay = min(int(request.GET.get("ms", 300)), 5000)
    time.sleep(delay / 1000)
    logger.warning("slow report took %s ms", delay)
    return JsonResponse({"slept_ms": delay})


def receipt(request, pk):
    """POST enqueues the order's receipt on Django's own tasks framework (Django 6.0 and later:
    404 before). Imported here: the other views of an older Django never import it."""
    if request.method != "POST":
        raise Http404("POST to enqueue a receipt")
    try:
        from orders import receipts
    except ImportError as exc:  # no django.tasks: Django before 6.0
        raise Http404("django.tasks is Django 6.0 and later") from exc
    result = receipts.email_receipt.enqueue(pk)
    return JsonResponse({"id": str(result.id), "status": str(result.status)}, status=202)


def fail(request):
    raise RuntimeError("this view always fails (demo of an error trace)")


def call_downstream(request):
    """Calls the service at SHOP_DOWNSTREAM_URL (another shop, say), as views call payment APIs.

    ``?client=requests`` (default) or ``httpx``; ``?in=task`` has a worker make the call.
    The clients are imported here, not at the top: the other views never pay for them.
    """
    client = request.GET.get("client", "requests")
    if request.GET.get("in") == "task":
        tasks.call_downstream.delay(client)
        return JsonResponse({"queued": client}, status=202)
    return JsonResponse({"status": fetch_downstream(client)})


def fetch_downstream(client):
    url = os.environ["SHOP_DOWNSTREAM_URL"].rstrip("/") + "/health/"
    if client == "httpx":
        import httpx

        return httpx.get(url, timeout=10).status_code
    import requests

    return requests.get(url, timeout=10).status_code


class RolledBack(Exception):
    pass


def place_in_transaction(request):
    """POST: places an order inside ``transaction.atomic()`` and has ``confirm_order`` check it.

    ``?send=inside`` (default) sends the task inside the transaction, ``on_commit`` from
    ``transaction.on_commit``, ``delay_on_commit`` with Celery's ``delay_on_commit`` (Celery 5.4+);
    ``?then=rollback`` rolls the transaction back; ``?hold=1`` commits only once the task has run
    (SHOP_TASK_LOG), the race a worker wins when it is quicker than the rest of the view.
    """
    send, then = request.GET.get("send", "inside"), request.GET.get("then", "commit")
    task_id = None
    try:
        with transaction.atomic():
            order = Order.objects.create(customer="in-transaction", total_cents=100)
            if send == "on_commit":
                transaction.on_commit(lambda: tasks.confirm_order.delay(order.id))
            elif send == "delay_on_commit":
                tasks.confirm_order.delay_on_commit(order.id)
            else:
                task_id = tasks.confirm_order.delay(order.id).id
                if request.GET.get("hold") and task_id:
                    _wait_for_run(task_id)
            if then == "rollback":
                raise RolledBack()
    except RolledBack:
        return JsonResponse({"order": order.id, "task": task_id, "committed": False})
    return JsonResponse({"order": order.id, "task": task_id, "committed": True})


def _wait_for_run(task_id, timeout=30):
    path = os.environ.get("SHOP_TASK_LOG")
    deadline = time.monotonic() + timeout
    while path and time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as log:
                if any(json.loads(line).get("id") == task_id for line in log if line.strip()):
                    return
        time.sleep(0.05)


def reports(request):
    """POST: has a worker build the monthly report (holds ``megabytes`` in memory) and score the
    orders (burns ``seconds`` of CPU): what each task costs shows on its run span."""
    if request.method != "POST":
        return HttpResponse(status=405)
    built = tasks.build_report.delay(int(request.POST.get("megabytes", 50)))
    scored = tasks.score_orders.delay(float(request.POST.get("seconds", 0.5)))
    return JsonResponse({"build_report": built.id, "score_orders": scored.id}, status=202)
