"""The shop's Celery app, in the layout Celery's Django guide gives: no telemetry code."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

if os.environ.get("SHOP_OWN_TELEMETRY") == "1":  # the app's own telemetry, in every pool child
    from celery.signals import worker_process_init

    @worker_process_init.connect(weak=False)
    def _own_telemetry(**_):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        from shop import telemetry

        telemetry.setup("worker")
        CeleryInstrumentor().instrument()
