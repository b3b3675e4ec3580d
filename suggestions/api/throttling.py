"""Rate limiting that never turns a cache outage into an error.

DRF's throttles keep their request history in the cache. When that cache is
Redis and Redis is down, the stock throttles raise and every request becomes a
500 — the typeahead box goes dark because of a rate limiter. The throttle here
fails open instead: the request is allowed and a warning is logged.

It also counts in fixed windows with one atomic ``INCR`` per request, where
DRF's sliding log reads and rewrites the whole request history (a GET and a
SET): on the suggest path, which runs on every keystroke, that halves the
throttle's cache round trips. The price: a client may send up to twice the
rate across a window boundary.
"""

from __future__ import annotations

import logging

from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from ..conf import app_settings

logger = logging.getLogger("suggestions.api")


class FailOpenScopedRateThrottle(ScopedRateThrottle):
    """:class:`~rest_framework.throttling.ScopedRateThrottle` that allows the
    request when the cache cannot be read or written.

    Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under the
    view's ``throttle_scope`` (``suggestions.suggest``, ``suggestions.search``,
    ``suggestions.events``, ``suggestions.history``). A missing scope is still
    an error: misconfiguration should be loud, only outages are tolerated.
    """

    @property
    def THROTTLE_RATES(self) -> dict[str, str | None]:
        # DRF binds the rates dict once at import; reading it per request
        # honours settings changed later (override_settings, host reconfiguration).
        return api_settings.DEFAULT_THROTTLE_RATES

    @property
    def cache(self):
        # The app's cache alias, so hosts can keep throttling and answers together
        # (or apart) with one setting; resolved per request for the same reason.
        return caches[app_settings.CACHE_ALIAS]

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()  # ImproperlyConfigured for an unknown scope: loud
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        try:
            try:
                count = self.cache.incr(key)
            except ValueError:  # first request of the window
                count = 1 if self.cache.add(key, 1, self.duration + 1) else self.cache.incr(key)
        except Exception:  # noqa: BLE001 - any cache backend error must fail open
            logger.warning(
                "Throttle cache unavailable; allowing request (scope %s).", self.scope, exc_info=True
            )
            return True
        return count <= self.num_requests or self.throttle_failure()

    def wait(self) -> float:
        return max(0.0, self.window_end - self.now)
