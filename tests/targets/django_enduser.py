"""Requests of a signed-in user and of an anonymous one, through Django's test client, with Django's
sessions and authentication: a view that reads the user, one that does not, one that fails without
reading it. Prints the user's primary key."""

import os
import sys

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(sys.argv[1], "db.sqlite3")}},
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)

from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def whoami(request):
    return HttpResponse(request.user.get_username() or "anonymous")


def plain(request):
    return HttpResponse("ok")


def fail(request):
    raise RuntimeError("fails without looking at the user")


urlpatterns = [path("whoami/", whoami), path("plain/", plain), path("fail/", fail)]

django.setup()
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

call_command("migrate", verbosity=0)
for _ in range(3):  # primary key 3: not the first row's
    user = User.objects.create_user(f"ada{_}", password="not-recorded")
signed_in = Client(raise_request_exception=False)
signed_in.force_login(user)
for url in ("/whoami/", "/plain/", "/fail/"):
    signed_in.get(url)
Client(raise_request_exception=False).get("/whoami/")  # anonymous
print(user.pk, flush=True)
