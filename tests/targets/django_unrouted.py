"""A request no route matches (a 404), with a token in its query, through Django's test client;
``RAW_URI`` set as gunicorn sets it. Then one a route matches. Prints the statuses.

Arguments: the example shop's directory; ``--app-instruments-django`` to run the contrib's
middleware, as an app that instruments Django itself does.
"""

import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

if "--app-instruments-django" in sys.argv:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument()

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0)
target = "/no-such-page/?token=MetricSecret44&page=2"
print(Client().get(target, RAW_URI=target).status_code, Client().get("/orders/2/").status_code, flush=True)
