"""Rate limiting that never turns a cache outage into an error.

DRF's throttles keep their request history in the cache. When that cache is
Redis and Redis is down, the stock throttles raise and every request becomes a
500 — the typeahead box goes dark because of a rate limiter. The throttle here
fails open instead: the request is allowed and a warning is logged.
"""

from __future__ import annotations

import logging

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
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
        try:
            return super().allow_request(request, view)
        except ImproperlyConfigured:
            raise
        except Exception:  # noqa: BLE001 - any cache backend error must fail open
            logger.warning(
                "Throttle cache unavailable; allowing request (scope %s).",
                getattr(view, "throttle_scope", None),
                exc_info=True,
            )
            return True
