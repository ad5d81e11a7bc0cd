"""Serve requests to two views of this module through Django's test client, printing each
response body (the absolute URL and the header the view saw, as the app computed them),
then one to a URL no view serves, printing its status."""

import os
import sys

sys.path.insert(0, sys.argv[1])  # the example shop, for its settings
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path, re_path  # noqa: E402


def echo_url(request, *args):
    response = HttpResponse(f"{request.build_absolute_uri()} {request.headers.get('X-Tenant')}")
    response["X-Served-By"] = "web-1"
    return response


urlpatterns = [path("echo-url/", echo_url), path("other/", echo_url), re_path(r"^legacy/([0-9]+)/$", echo_url)]

django.setup()
settings.ROOT_URLCONF = __name__
from django.test import Client  # noqa: E402

client = Client()
for url in ("/echo-url/?page=2", "/other/", "/legacy/7/"):
    print(client.get(url, HTTP_X_TENANT="acme").content.decode(), flush=True)
print(client.get("/missing/").status_code, flush=True)
