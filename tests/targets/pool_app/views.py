import logging

from django.http import HttpResponse

from pool_app.work import in_a_pool

log = logging.getLogger("pool_app.views")


def pool(request):
    log.debug("below the root logger's level")
    results = in_a_pool(log, "view")
    if request.GET.get("task"):
        from pool_app.tasks import pooled

        pooled.delay()
    return HttpResponse(",".join(map(str, results)))
