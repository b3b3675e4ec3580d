"""Django settings of the latency benchmark: the demo shop's production branch.

``python -m bench.latency`` sets ``BENCH_DATABASE_URL`` and ``BENCH_REDIS_URL``
for every process it starts; they default to the benchmark's own PostgreSQL
database and Redis database 14 on loopback. They are copied into
``DATABASE_URL`` / ``REDIS_URL`` *before* :mod:`shop_search.settings` is
imported, so the production code paths of those settings are the ones measured
(PostgreSQL with persistent connections, the django-redis cache, the Redis
Celery broker), while a ``DATABASE_URL`` of the shell can never point the
benchmark at a real shop's database. ``ELASTICSEARCH_URL`` is dropped: the
embedded tantivy engine (the default) is measured.

On top of the shop's settings:

* ``DEBUG = False``, as in production (no query log kept per request).
* ``ROOT_URLCONF = "bench.latency.urls"``: the shop's URLs plus
  ``bench/trivial/``, the baseline endpoint.
* The tantivy indexes live under ``var/bench-latency/`` (ignored by git),
  apart from the demo's own ``var/suggestions``.
* The suggest throttle stays **on** (production has it) with a rate so high it
  never refuses a request: its cost (a cache read and a write per request) is
  measured, its 429s are not.
* Logging is quiet: only warnings of the app reach gunicorn's error log.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_suggestions"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"

os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
os.environ.pop("ELASTICSEARCH_URL", None)

from shop_search.settings import *  # noqa: E402,F403
from shop_search.settings import BASE_DIR, REST_FRAMEWORK  # noqa: E402

BENCH_VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR") or BASE_DIR / "var" / "bench-latency")
BENCH_VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = False
ROOT_URLCONF = "bench.latency.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

SUGGESTIONS_DATA_DIR = str(BENCH_VAR_DIR / "suggestions")
SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}}

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
        "suggestions.suggest": "1000000/min",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "suggestions": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
