"""Who an anonymous shopper is, without a session row.

Contracts:
* :class:`ShopperCookieMiddleware` answers every request that did not carry a
  valid shopper cookie with a new one: a random id signed with ``SECRET_KEY``
  (``HttpResponse.set_signed_cookie``), HttpOnly, with the session cookie's
  ``Secure``, ``SameSite`` and domain, living
  ``SUGGESTIONS_HISTORY_RETENTION_DAYS``. Nothing is written to the database
  or the cache, so cookie-less requests (every ``curl``) cost no storage.
* :func:`shopper_id` is the id the request *carried*, never the one being
  handed out: a shopper has an id only from their second request on. That is
  what makes them identified (history of their own, counted by the k-gate); a
  cookie-less request belongs to nobody.
* A forged or tampered cookie is no id (its signature fails) and is replaced.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .conf import app_settings

#: Salt of the cookie's signature (a cookie signed for anything else is refused).
COOKIE_SALT = "suggestions.middleware.shopper"
#: Attribute set on the request by the middleware: the carried id, or None.
REQUEST_ATTRIBUTE = "suggestions_shopper_id"


def shopper_id(request: HttpRequest) -> str | None:
    """The shopper id the request carried, or None (no cookie, a bad one, or
    the middleware is not installed: see :func:`middleware_installed`)."""
    return getattr(request, REQUEST_ATTRIBUTE, None)


def middleware_installed(request: HttpRequest) -> bool:
    """Whether :class:`ShopperCookieMiddleware` saw this request."""
    return hasattr(request, REQUEST_ATTRIBUTE)


class ShopperCookieMiddleware:
    """Give anonymous shoppers a stable id in a signed cookie (see the module contract).

    Add ``"suggestions.middleware.ShopperCookieMiddleware"`` to ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = app_settings.SHOPPER_COOKIE_NAME
        carried = request.get_signed_cookie(name, default=None, salt=COOKIE_SALT,
                                            max_age=app_settings.HISTORY_RETENTION_DAYS * 86400)
        setattr(request, REQUEST_ATTRIBUTE, carried or None)
        response = self.get_response(request)
        if not carried:
            response.set_signed_cookie(
                name, secrets.token_urlsafe(18), salt=COOKIE_SALT,
                max_age=app_settings.HISTORY_RETENTION_DAYS * 86400,
                domain=settings.SESSION_COOKIE_DOMAIN, secure=settings.SESSION_COOKIE_SECURE,
                httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        return response
