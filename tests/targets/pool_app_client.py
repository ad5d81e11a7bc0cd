"""Serve requests to the pool app through Django's test client: argv[1:] are the paths."""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pool_app.settings")

early = logging.getLogger("pool_app.early")  # exists before the LOGGING setting is applied

import django  # noqa: E402

django.setup()
import pool_app.celery  # noqa: E402, F401 - the Celery app, as a project's __init__ imports it
from django.test import Client  # noqa: E402

client = Client()
for path in sys.argv[1:]:
    response = client.get(path)
    print(response.status_code, response.content.decode(), flush=True)
early.info("from a logger made before the LOGGING setting")
