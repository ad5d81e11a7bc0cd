"""Settings of the demo shop: one app, Celery, no telemetry configuration at all.

Database, broker, cache and log files come from SHOP_* variables so that the same project
runs on a laptop (SQLite, kombu's filesystem broker, local-memory cache) and against real
services (PostgreSQL, Redis, RabbitMQ).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "demo-only-not-secret"
DEBUG = False
# SHOP_ALLOWED_HOSTS=a,b: the names the shop answers to behind compose or Kubernetes.
ALLOWED_HOSTS = os.environ.get("SHOP_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
INSTALLED_APPS = ["django.contrib.contenttypes", "orders"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("SHOP_PG_DB"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["SHOP_PG_DB"],
            "USER": os.environ.get("SHOP_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("SHOP_PG_PASSWORD", ""),
            "HOST": os.environ.get("SHOP_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_PG_PORT", "5432"),
        }
    }
elif os.environ.get("SHOP_MYSQL_DB"):
    # MySQL or MariaDB through PyMySQL, which stands in for mysqlclient (no C build needed).
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ["SHOP_MYSQL_DB"],
            "USER": os.environ.get("SHOP_MYSQL_USER", "root"),
            "HOST": os.environ.get("SHOP_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_MYSQL_PORT", "3306"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "shop.sqlite3")),
            # Web workers and task processes write to the same file.
            "OPTIONS": {"timeout": 30},
        }
    }

if os.environ.get("SHOP_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["SHOP_CACHE_URL"],
            "KEY_PREFIX": os.environ.get("SHOP_CACHE_PREFIX", "shop"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SHOP_QUEUE", "shop")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    _folder = os.environ.get("SHOP_BROKER_DIR", str(BASE_DIR / "broker"))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _folder,
        "data_folder_out": _folder,
        "control_folder": str(Path(_folder) / "control"),
    }

# SHOP_LOG_DIR: the orders app also logs to orders.log (format SHOP_LOG_FORMAT) and to
# orders.jsonl (structured), besides the console.
LOGGING = {"version": 1, "disable_existing_loggers": False}
if os.environ.get("SHOP_LOG_DIR"):
    _logs = Path(os.environ["SHOP_LOG_DIR"])
    LOGGING.update(
        formatters={
            "text": {"format": os.environ.get("SHOP_LOG_FORMAT", "%(asctime)s %(levelname)s %(name)s %(message)s")},
            "json": {"()": "shop.logs.JSONFormatter"},
        },
        handlers={
            "text": {"class": "logging.FileHandler", "filename": str(_logs / "orders.log"), "formatter": "text"},
            "json": {"class": "logging.FileHandler", "filename": str(_logs / "orders.jsonl"), "formatter": "json"},
        },
        loggers={"orders": {"handlers": ["text", "json"], "level": "INFO"}},
    )

# Results, for canvas (chords need a result backend): e.g. redis://..., file:///path.
if os.environ.get("SHOP_RESULT_BACKEND"):
    CELERY_RESULT_BACKEND = os.environ["SHOP_RESULT_BACKEND"]

# SHOP_BEAT_EVERY=<seconds>: `celery -A shop beat` publishes orders.tasks.tick at that interval.
if os.environ.get("SHOP_BEAT_EVERY"):
    CELERY_BEAT_SCHEDULE = {
        "tick": {"task": "orders.tasks.tick", "schedule": float(os.environ["SHOP_BEAT_EVERY"])},
    }
