"""Settings of the web server and worker that ``tests/test_faults.py`` starts.

:mod:`tests.worker_settings` (real Celery on ``REDIS_URL``, the test's tantivy
directory, ``DATABASE_URL``) with what production has and the fault test
breaks: the django-redis cache on the same Redis with the demo's short socket
timeouts, ``DEBUG = False``, and server errors logged with their traceback
(the test shows the log when it fails). A SQLite database (when no
PostgreSQL is given) runs in WAL mode with immediate transactions, so the web
workers and the Celery worker write to it concurrently without "database is
locked" errors.
"""

from __future__ import annotations

import os

from tests.worker_settings import *  # noqa: F403
from tests.worker_settings import DATABASES

DEBUG = False
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "suggestions": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
