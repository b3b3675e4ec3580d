"""Django settings of the benchmarks: the demo shop's settings with throwaway state.

The database (SQLite), the tantivy indexes and the demo's ``var/`` folder all
live in the temporary folder named by ``BENCH_TMP_DIR`` (set by
:func:`bench.common.django_environment` before Django starts). The cache is
local memory, Celery runs tasks eagerly and the embedded tantivy engine is used
whatever ``DATABASE_URL``, ``REDIS_URL`` or ``ELASTICSEARCH_URL`` say, so a
benchmark never touches a real shop's state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP = Path(os.environ.get("BENCH_TMP_DIR") or tempfile.mkdtemp(prefix="shop-bench-"))
os.environ["SHOP_VAR_DIR"] = str(_TMP / "var")

from shop_search.settings import *  # noqa: E402,F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_TMP / "bench.sqlite3"),
        # Throwaway data: durability is not needed, speed is.
        "OPTIONS": {"init_command": "PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY;"},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"}}
SUGGESTIONS_DATA_DIR = str(_TMP / "suggestions")
SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
DEBUG = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"suggestions": {"handlers": ["console"], "level": "WARNING"}},
}
# Dense recall: benchmarks embed the catalog themselves when they measure it
# (bench.search_quality --dense); eager tasks must not embed on every index write.
SUGGESTIONS_DENSE = False
