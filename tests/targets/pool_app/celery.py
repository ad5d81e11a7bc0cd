import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pool_app.settings")
app = Celery("pool_app", include=["pool_app.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
