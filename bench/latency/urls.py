"""URLs of the latency benchmark: the shop's URLs plus the baseline endpoint.

``bench/trivial/`` is the cheapest DRF answer the shop could give, so the gap
between it and ``api/suggestions/suggest/`` is the cost of suggesting and
nothing else. It goes through the same middleware stack (sessions, CSRF,
authentication, messages …), the same DRF machinery (content negotiation,
``SessionAuthentication``, ``AllowAny``, JSON rendering) and the same gunicorn
workers as the suggest endpoint, in the same run. The one deliberate
difference: it has no throttle, while the suggest view keeps its
fail-open scoped throttle (see :mod:`bench.latency.settings`), because the
throttle's cache round trips are part of what a suggest request costs in
production.

The shop's patterns are spliced into this list rather than included: an
``include("shop_search.urls")`` would resolve every shop URL one nesting
level deeper than the shop itself does (``shop_search.urls`` is the demo's
root), and each level of resolution is a few microseconds that only the
suggest side of the comparison would pay. Here the suggest URL resolves at
the depth it has in the shop, after one failed match of the trivial pattern.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_search import urls as shop_urls


class TrivialView(APIView):
    """``{"ok": true}``: DRF's fixed cost, the baseline of the benchmark."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/trivial/", TrivialView.as_view(), name="bench-trivial"),
    *shop_urls.urlpatterns,
]
