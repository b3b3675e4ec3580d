"""Settings of the Celery worker that ``tests/test_worker.py`` starts.

The test settings, with real task execution on Redis, the test's database
(``DATABASE_URL``, set by the test to its test database) and the test's
tantivy directory (``SUGGESTIONS_DATA_DIR``: ``tests/conftest.py`` gives every
test its own, so the test passes it on).
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["REDIS_URL"]
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
SUGGESTIONS_DATA_DIR = os.environ["SUGGESTIONS_DATA_DIR"]
# Connections are closed after every task, so the test can drop its database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

if os.environ.get("SHARED_CACHE_URL"):
    # Shared with the test process, as a shop's web and worker processes share
    # Redis: an invalidation in the worker reaches the test's answers.
    CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": os.environ["SHARED_CACHE_URL"]}}
