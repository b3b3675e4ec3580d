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
* The throttles stay **on** at the shop's own rates (``shop_search.settings``:
  6000/min for suggest, 600/min for search and events, per client), and
  loopback is the trusted proxy (``SUGGESTIONS_TRUSTED_PROXIES``), so each of
  wrk's ``X-Forwarded-For`` shopper addresses has its own budget, as behind a
  real proxy: the throttle's cost is measured, and at these loads no client
  reaches its rate (a 429 makes the run invalid).
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
from shop_search.settings import BASE_DIR  # noqa: E402

BENCH_VAR_DIR = Path(os.environ.get("BENCH_VAR_DIR") or BASE_DIR / "var" / "bench-latency")
BENCH_VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = False
ROOT_URLCONF = "bench.latency.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

SUGGESTIONS_DATA_DIR = str(BENCH_VAR_DIR / "suggestions")
SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}}

# wrk stands for the reverse proxy: its X-Forwarded-For addresses are the clients.
SUGGESTIONS_TRUSTED_PROXIES = ["127.0.0.1/32"]

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
