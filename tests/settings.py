"""Test settings: the demo settings with isolated, fast defaults.

``DATABASE_URL`` (PostgreSQL in CI) and ``REDIS_URL`` are honoured when set;
otherwise SQLite and a local-memory cache are used. Every test gets a fresh
tantivy data directory (see ``tests/conftest.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "SHOP_VAR_DIR" not in os.environ:
    # Made (and removed at exit) by the process that first loads these settings;
    # worker processes started by the tests inherit it through the environment.
    _var_dir = tempfile.mkdtemp(prefix="shop-test-var-")
    os.environ["SHOP_VAR_DIR"] = _var_dir
    atexit.register(shutil.rmtree, _var_dir, ignore_errors=True)

from shop_search.settings import *  # noqa: E402,F403

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
# A per-process cache for django-axes' attempt counts: fine in one test process.
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "suggestions.suggest": "100000/min",
        "suggestions.search": "100000/min",
        "suggestions.events": "100000/min",
        "suggestions.history": "100000/min",
    },
}
# Dense recall embeds every indexed product (eagerly here, since tasks run in
# the test process): off by default, on in the tests that are about it.
SUGGESTIONS_DENSE = False
