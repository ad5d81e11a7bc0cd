"""Requests through Django's test client covering what a server span and a SQL span record:
routes of ``path()`` and ``re_path()``, a 404, a view that raises (500) and one that raises
``Http404``, queries (one that fails, an ``executemany``), a view repeating one query 10 times
and one repeating it 4 times, and a query on a raw ``sqlite3`` connection Django does not own.
Prints each response status."""

import contextlib
import os
import sqlite3
import sys

sys.path.insert(0, sys.argv[1])  # the example shop, for its settings
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import Http404, HttpResponse  # noqa: E402
from django.urls import path, re_path  # noqa: E402


def plain(request, *args):
    return HttpResponse("ok")


def fails(request):
    raise ValueError("the view failed")


def not_found(request):
    raise Http404("no such order")


def queries(request, times):
    with connection.cursor() as cursor:
        for number in range(times):
            cursor.execute("SELECT %s + 1", [number])
    return HttpResponse(str(times))


def sql(request):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS items (n INTEGER)")
        cursor.executemany("INSERT INTO items (n) VALUES (%s)", [(1,), (2,)])
        cursor.execute("SELECT 1")
        with contextlib.suppress(Exception):
            cursor.execute("SELECT * FROM no_such_table WHERE n = %s", [3])
    raw = sqlite3.connect(":memory:")  # a connection Django does not own: the contrib traces it
    raw.cursor().execute("SELECT 2")
    raw.close()
    return HttpResponse("sql")


urlpatterns = [
    path("plain/", plain),
    re_path(r"^legacy/([0-9]+)/$", plain),
    path("fails/", fails),
    path("not-found/", not_found),
    path("queries/<int:times>/", queries),
    path("sql/", sql),
]

django.setup()
settings.ROOT_URLCONF = __name__
settings.DEBUG = False
from django.test import Client  # noqa: E402

HEADERS = {"X-Tenant": "acme", "User-Agent": "curl/8"}
# As every Django release takes them (``headers=`` is 4.2+): WSGI environ keys, raw ASGI names.
ENVIRON_HEADERS = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in HEADERS.items()}
ASGI_HEADERS = {name.lower(): value for name, value in HEADERS.items()}
URLS = ("/plain/?page=2", "/legacy/7/", "/missing/", "/fails/", "/not-found/", "/queries/10/", "/queries/4/", "/sql/")
if "--asgi" in sys.argv:  # through Django's ASGI handler (ASGIRequest, async middleware chain)
    import asyncio

    from django.test import AsyncClient

    async def serve() -> None:
        client = AsyncClient(raise_request_exception=False)
        for url in URLS:
            print((await client.get(url, **ASGI_HEADERS)).status_code, flush=True)

    asyncio.run(serve())
else:
    client = Client(raise_request_exception=False)
    for url in URLS:
        print(client.get(url, **ENVIRON_HEADERS).status_code, flush=True)
