"""Serve one request through Django's test client (a real handler, real middleware loading).

``--async`` serves it through Django's ASGI handler (``AsyncClient``): every middleware runs as a
coroutine, as under uvicorn.
"""

import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

if "--app-instruments-django" in sys.argv:  # as an app that set up its own instrumentation would
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument()

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)
if "--async" in sys.argv:
    import asyncio

    from django.test import AsyncClient

    response = asyncio.run(AsyncClient().get("/orders/2/"))
else:
    from django.test import Client

    response = Client().get("/orders/2/")
print(response.status_code, flush=True)
