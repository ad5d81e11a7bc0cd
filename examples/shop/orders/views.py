from django.http import Http404, JsonResponse

from orders.models import Order


def order_list(request):
    return JsonResponse({"orders": list(Order.objects.values("id", "customer", "total_cents"))})


def order_detail(request, pk):
    order = Order.objects.filter(pk=pk).values("id", "customer", "total_cents").first()
    if order is None:
        raise Http404("no such order")
    return JsonResponse(order)


def fail(request):
    raise RuntimeError("this view always fails (demo of an error trace)")
