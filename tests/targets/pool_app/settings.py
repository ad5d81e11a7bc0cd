import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
INSTALLED_APPS = ["pool_app"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "pool_app.urls"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["POOL_APP_DB"]}}

CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": os.environ["POOL_APP_BROKER_DIR"],
    "data_folder_out": os.environ["POOL_APP_BROKER_DIR"],
    "control_folder": os.path.join(os.environ["POOL_APP_BROKER_DIR"], "control"),
}
# POOL_APP_POLLING_INTERVAL=<seconds>: how long a worker sleeps on an empty broker folder (kombu's
# default is 1 s, the time a test would wait for each message it sends).
if os.environ.get("POOL_APP_POLLING_INTERVAL"):
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = float(os.environ["POOL_APP_POLLING_INTERVAL"])
CELERY_TASK_IGNORE_RESULT = True

_CONSOLE = {
    "version": 1,
    "formatters": {"plain": {"format": "APP-LOG %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
if os.environ.get("POOL_APP_LOGGING") == "root":
    LOGGING = {**_CONSOLE, "disable_existing_loggers": False}
elif os.environ.get("POOL_APP_LOGGING") == "disable":
    LOGGING = {**_CONSOLE, "disable_existing_loggers": True}

# POOL_APP_BEAT_EVERY=<seconds>: `celery -A pool_app beat` publishes pool_app.pooled at that interval.
if os.environ.get("POOL_APP_BEAT_EVERY"):
    CELERY_BEAT_SCHEDULE = {"pooled": {"task": "pool_app.pooled", "schedule": float(os.environ["POOL_APP_BEAT_EVERY"])}}
