"""Rate limiting that never turns a cache outage into an error.

DRF's throttles keep their request history in the cache. When that cache is
Redis and Redis is down, the stock throttles raise and every request becomes a
500 — the typeahead box goes dark because of a rate limiter. The throttle here
fails open instead: the request is allowed and a warning is logged.

It also counts in fixed windows with an atomic ``INCR``, where DRF's sliding
log reads and rewrites the whole request history (a GET and a SET) on every
request. The price: a client may send up to twice the rate across a window
boundary.

And each process counts a client's requests in memory first
(:class:`LocalCounts`): it adds them to the shared counter once it holds
``SUGGESTIONS_THROTTLE_LOCAL_SHARE`` of the rate (1%, so 60 requests of a
6000/min rate), or as soon as its estimate (the shared count it last read plus
its own since) passes the rate. On the suggest path, which runs on every
keystroke, a shopper's requests then cost one cache round trip per 60 instead
of one each. The price: each process may let a client past its rate by fewer
than that many requests per window. Rates too small for a share of 2 requests
(the tests' ``2/min``) are counted in the cache on every request.

Client addresses:

* :func:`client_address` is the one rule for "who is this client" (the demo
  project also gives it to django-axes). ``X-Forwarded-For`` is read only when
  the request comes from a proxy listed in ``SUGGESTIONS_TRUSTED_PROXIES``, and
  then the rightmost hop that is not a trusted proxy is the client: every hop
  left of it was written by the client and can be anything. With no trusted
  proxies configured, DRF's ``NUM_PROXIES`` is honoured when it is set (that
  many proxies append to the header; DRF's default ``None``, which trusts the
  whole header, is never followed); otherwise the socket address is used.
* Throttle cache keys hold an HMAC of the address (``SUGGESTIONS_HASH_SALT``),
  never the address itself, so the cache holds no raw client addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from functools import lru_cache

from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from ..conf import app_settings
from ..text import hash_identifier

logger = logging.getLogger("suggestions.api")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[_Network, ...]:
    # Parsed once per distinct setting value; a bad entry is a configuration
    # error and should be loud.
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:443"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


@lru_cache(maxsize=65_536)
def _ident(address: str, salt: str) -> str:
    # One HMAC per client address and salt, not one per request.
    return hash_identifier(address, salt)


def _is_trusted(value: str, networks: tuple[_Network, ...]) -> bool:
    address = _parse_address(value)
    return address is not None and any(address in network for network in networks)


#: Longest text of an address with a port ("[v6 address%zone]:port" fits).
_ADDRESS_TEXT_MAX = 64


@lru_cache(maxsize=65_536)
def _is_trusted_text(value: str, entries: tuple[str, ...]) -> bool:
    return _is_trusted(value, _networks(entries))


def _trusted(value: str, entries: tuple[str, ...]) -> bool:
    # Remembered per address text (parsing one costs microseconds on every
    # request); text longer than any address is judged afresh, so a client
    # cannot fill the memory with long junk hops.
    if len(value) > _ADDRESS_TEXT_MAX:
        return _is_trusted(value, _networks(entries))
    return _is_trusted_text(value, entries)


def client_address(request) -> str:
    """The client's address for rate limiting (see the module docstring).

    Args:
        request: a Django ``HttpRequest`` or DRF ``Request``.

    Returns:
        The address as text; ``""`` when the request carries none.
    """
    meta = request.META
    remote = meta.get("REMOTE_ADDR", "") or ""
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "") or ""
    trusted = app_settings.TRUSTED_PROXIES
    if trusted:
        if not forwarded or not _trusted(remote, trusted):
            return remote
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _trusted(hop, trusted):
                return hop
        # Every hop is one of our proxies: the farthest one is the best we know.
        return hops[0] if hops else remote
    num_proxies = api_settings.NUM_PROXIES
    if num_proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(num_proxies, len(hops))]
    return remote


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

    def parse_rate(self, rate):
        # The same few rate strings on every request: parsed once each.
        return _parse_rate(rate)

    def get_ident(self, request) -> str:
        # Replaces DRF's rule, which with NUM_PROXIES unset takes the whole
        # X-Forwarded-For header from the client: one new header per request
        # was a new budget. Hashed so that the cache keys carry no address.
        return _ident(client_address(request), app_settings.HASH_SALT)

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
        batch = int(self.num_requests * app_settings.THROTTLE_LOCAL_SHARE)
        if batch < 2:
            count = self._add(key, 1)
            return count is None or count <= self.num_requests or self.throttle_failure()
        allowed = _LOCAL.allow(key, batch, self.num_requests, self._add)
        return allowed or self.throttle_failure()

    def _add(self, key: str, n: int) -> int | None:
        """Add ``n`` to the window's shared counter; its new value, or None when
        the cache is down (the request is then allowed: fail open)."""
        try:
            try:
                return self.cache.incr(key, n)
            except ValueError:  # first request of the window
                return n if self.cache.add(key, n, self.duration + 1) else self.cache.incr(key, n)
        except Exception:  # noqa: BLE001 - any cache backend error must fail open
            logger.warning(
                "Throttle cache unavailable; allowing request (scope %s).", self.scope, exc_info=True
            )
            return None

    def wait(self) -> float:
        return max(0.0, self.window_end - self.now)


@lru_cache(maxsize=64)
def _parse_rate(rate: str | None) -> tuple[int | None, int | None]:
    return ScopedRateThrottle.parse_rate(None, rate)


class LocalCounts:
    """A process's not-yet-shared request counts, per throttle key and window.

    For each key it holds the requests counted here since the last flush and
    the shared count that flush returned. A request is allowed without a
    cache call while fewer than ``batch`` requests are held and the estimate
    (shared count + held) is within the rate; otherwise the held requests are
    added to the shared counter in one ``INCR`` and its answer decides.
    Threads of a process share one instance (a lock guards it).
    """

    #: Keys held at most; past it the held counts are dropped (each key's
    #: window is in its name, so old keys are never looked up again).
    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._counts = {}

    def allow(self, key: str, batch: int, limit: int, add) -> bool:
        """Whether one more request of ``key`` (a throttle key with its window)
        is within ``limit``; ``add(key, n)`` adds to the shared counter."""
        with self._lock:
            state = self._counts.get(key)
            if state is None:
                if len(self._counts) >= self.MAX_KEYS:
                    self._counts = {}
                state = self._counts[key] = [0, 0]
            state[0] += 1
            held, shared = state
            if held < batch and shared + held <= limit:
                return True
            state[0] = 0
        total = add(key, held)
        if total is None:  # cache down: fail open
            return True
        with self._lock:
            if self._counts.get(key) is state:
                state[1] = max(state[1], total)
        return total <= limit


#: The counts of this process (see :class:`LocalCounts`).
_LOCAL = LocalCounts()


def reset_local_counts() -> None:
    """Forget this process's held counts (tests; the counts are never persisted)."""
    _LOCAL.reset()
