"""The shopper's own recent searches in a signed cookie, so the suggest path
never reads the database for them.

Contracts:
* The cookie (``SUGGESTIONS_RECENT_COOKIE_NAME``) holds the shopper's last
  ``SUGGESTIONS_RECENT_COOKIE_SIZE`` distinct normalised queries, newest first,
  each with the day it was searched, and the hash of the shopper it belongs
  to (:func:`suggestions.history.actor_hash`, truncated). It is signed
  (Django's signing, salted): a client can delete it but not forge another
  shopper's, and a cookie of another shopper (a shared computer, a sign-in)
  is ignored.
* The search views add each search to it (:func:`remember`); the first
  suggest request of a shopper without the cookie reads their recent searches
  from the database once (:func:`load`) and the answer sets the cookie, so
  the following keystrokes read none. A shopper with no history gets an empty
  cookie: no database read either.
* Erasure through ``DELETE history/`` deletes the cookie with the rows. Entries
  older than ``SUGGESTIONS_HISTORY_RETENTION_DAYS`` are dropped when read, and
  the cookie expires after that many days.
* Without :class:`~suggestions.middleware.ShopperCookieMiddleware` and a
  signed-in user, an anonymous visitor has no stable id: nothing is kept.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.utils import timezone

from .conf import app_settings
from .history import actor_hash

_SALT = "shop_suggestions.recent"
#: Characters of the shopper hash kept in the cookie (enough to tell shoppers apart).
_OWNER_CHARS = 16


def cookie_owner(user=None, session_key: str | None = None) -> str:
    """The truncated shopper hash a signed cookie of the app is bound to ("" for
    nobody): another shopper's, or a forged, cookie is ignored."""
    if (user is None or not getattr(user, "is_authenticated", False)) and not session_key:
        return ""
    return actor_hash(user=user if user is not None and user.is_authenticated else None,
                      session_key=session_key)[:_OWNER_CHARS]


def read(request, *, user=None, session_key: str | None = None) -> list[str] | None:
    """The shopper's recent queries from the cookie, newest first; ``None`` when
    there is no valid cookie of this shopper (the caller then loads them)."""
    owner = cookie_owner(user, session_key)
    raw = request.COOKIES.get(app_settings.RECENT_COOKIE_NAME)
    if not owner or not raw:
        return None
    try:
        data = signing.loads(raw, salt=_SALT)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict) or data.get("a") != owner or not isinstance(data.get("q"), list):
        return None
    oldest = timezone.localdate().toordinal() - app_settings.HISTORY_RETENTION_DAYS
    out = []
    for entry in data["q"]:
        if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], int) and entry[1] >= oldest):
            out.append(entry)
    return out


def load(*, user=None, session_key: str | None = None) -> list[list]:
    """The shopper's last distinct queries from the database (one query), as cookie entries."""
    from .history import _owner_filter
    from .models import SearchEvent

    owner = _owner_filter(user, session_key)
    if owner is None:
        return []
    size = app_settings.RECENT_COOKIE_SIZE
    entries: list[list] = []
    seen: set[str] = set()
    rows = (SearchEvent.objects.filter(owner).exclude(normalized_query="").order_by("-created_at")
            .values_list("normalized_query", "created_at")[: size * 5])
    for text, created in rows:
        if text not in seen:
            seen.add(text)
            entries.append([text, timezone.localdate(created).toordinal()])
            if len(entries) == size:
                break
    return entries


def matching(entries: list[list], prefix: str, limit: int) -> list[str]:
    """The entries' queries that start with ``prefix`` (newest first), at most ``limit``."""
    return [text for text, _day in entries if text.startswith(prefix)][:max(limit, 0)]


def write(response, entries: list[list], *, user=None, session_key: str | None = None) -> None:
    """Set the cookie of ``entries`` on ``response`` (no-op for nobody), with the
    session cookie's ``Secure``, ``SameSite`` and domain settings."""
    owner = cookie_owner(user, session_key)
    if not owner:
        return
    # Base64 of compressed JSON: cookie headers are Latin-1, queries may be Chinese.
    value = signing.dumps(
        {"a": owner, "q": entries[: app_settings.RECENT_COOKIE_SIZE]}, salt=_SALT, compress=True)
    response.set_cookie(app_settings.RECENT_COOKIE_NAME, value, max_age=app_settings.HISTORY_RETENTION_DAYS * 86400,
                        domain=settings.SESSION_COOKIE_DOMAIN, secure=settings.SESSION_COOKIE_SECURE,
                        httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE)


def remember(request, response, query: str, *, user=None, session_key: str | None = None) -> None:
    """Put ``query`` (normalised) first in the shopper's cookie."""
    if not query or not cookie_owner(user, session_key):
        return
    entries = read(request, user=user, session_key=session_key)
    if entries is None:
        entries = load(user=user, session_key=session_key)
    entries = [[query, timezone.localdate().toordinal()]] + [e for e in entries if e[0] != query]
    write(response, entries, user=user, session_key=session_key)


def forget(response) -> None:
    """Delete the cookie (erasure)."""
    response.delete_cookie(app_settings.RECENT_COOKIE_NAME, domain=settings.SESSION_COOKIE_DOMAIN,
                           samesite=settings.SESSION_COOKIE_SAMESITE)
