"""A Django 6 project whose views enqueue django.tasks tasks on each backend: Django's own two, and
django-tasks-db's database backend (run by its db_worker command) when that package is installed."""

import importlib.util
import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
INSTALLED_APPS = ["tasks_app"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tasks_app.urls"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TASKS_APP_DB"]}}

TASKS = {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
}
if importlib.util.find_spec("django_tasks_db") is not None:
    INSTALLED_APPS.append("django_tasks_db")
    TASKS["database"] = {"BACKEND": "django_tasks_db.DatabaseBackend"}
