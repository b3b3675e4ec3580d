"""Settings of ``python -m bench.fuzz`` in process: :mod:`bench.settings` with throttles out of the way.

The throwaway SQLite database, tantivy directory, local-memory cache and eager
Celery of :mod:`bench.settings`; only the throttle rates change, so that a
long run reaches the views instead of their 429s (a 429 is documented and
would hide nothing, but would test nothing either).
"""

from __future__ import annotations

from bench.settings import *  # noqa: F403
from bench.settings import REST_FRAMEWORK

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {scope: "1000000/min" for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},
}
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
