"""One request with a query string through Django's test client (real handler and middleware)."""

import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0)
response = Client().get("/orders/?" + sys.argv[2], HTTP_AUTHORIZATION="Bearer HeaderSecret99", HTTP_X_TEAM="web")
print(response.status_code, flush=True)
