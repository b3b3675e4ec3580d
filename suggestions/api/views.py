"""API views. Thin on purpose: each states its own policy (authentication,
permissions, throttle scope, parsers), validates its input with a serializer
and calls one function of :mod:`suggestions.services`.

Every endpoint is open to anonymous shoppers (``AllowAny``); history is
scoped to the signed-in user, else to the anonymous shopper the request
carried a cookie for (:func:`suggestions.services.request_actor`), and never
to anything else the client claims. No endpoint creates a session. Authentication is Django's session: for signed-in users
:class:`~rest_framework.authentication.SessionAuthentication` enforces CSRF on
unsafe methods (``POST events/``, ``DELETE history/``), anonymous requests need
no token.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..conf import app_settings
from ..recall.base import SearchFilters
from . import serializers as s
from .negotiation import JSONFirstNegotiation
from .parsers import BoundedJSONParser
from .querystring import plain_query
from .renderers import api_renderer_classes
from .throttling import FailOpenScopedRateThrottle

# JSON answers are written by orjson where that gives DRF's bytes (renderers.py).
_RENDERERS = api_renderer_classes()

_BAD_REQUEST = OpenApiResponse(description="Invalid parameters; the body names each bad field.")
_THROTTLED = OpenApiResponse(
    description="Too many requests; retry after the time in `Retry-After`."
)


def _actor(request: Request) -> dict:
    """Who the request is for: the signed-in user, else the anonymous shopper
    whose cookie it carried, else nobody. A cookie-less request gets no session
    row (its search is stored for nobody and counts no shopper); the shopper
    cookie set on its response makes the next request theirs."""
    return services.request_actor(request)


class SuggestView(APIView):
    """Completions for what the shopper has typed."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    content_negotiation_class = JSONFirstNegotiation
    throttle_scope = "suggestions.suggest"

    @services.observed("suggest")
    def dispatch(self, request, *args, **kwargs):
        # Timed as a whole: authentication, throttle, the answer and its rendering.
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="suggestions_suggest",
        summary="Suggest completions",
        parameters=[s.SuggestQuerySerializer],
        responses={200: s.SuggestResponseSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        # A keystroke's ?q=… is read without building Django's QueryDict (querystring.py).
        query = plain_query(request)
        data = s.plain_suggest_params(request.query_params if query is None else query)
        if data is None:
            params = s.SuggestQuerySerializer(data=request.query_params)
            params.is_valid(raise_exception=True)
            data = params.validated_data
        actor = _actor(request)
        # The shopper's recent searches come from their cookie; without one, from
        # the history once, and this answer sets the cookie (suggestions/recent.py).
        entries = services.recent_from_cookie(request, **actor)
        loaded = entries is None and (actor["user"] is not None or actor["session_key"] is not None)
        if loaded:
            entries = services.recent_from_history(**actor)
        result = services.suggest(
            data["q"], limit=data["limit"],
            recent=[text for text, _day in entries] if entries is not None else [],
            # Personal re-ranking from the shopper's signed cookie: no database per keystroke.
            profile=services.profile_from_cookie(request, **actor), **actor
        )
        services.count_degraded("suggest", result.degraded_reasons)
        # Built by hand: this runs on every keystroke, and the nested response
        # serializer (which documents this shape) costs more than the answer.
        response = Response({
            "query": result.prefix,
            "request_id": result.request_id,
            "suggestions": [
                {"text": i.text, "kind": i.kind, "source": i.source, "fuzzy": i.fuzzy} for i in result.items
            ],
            "degraded": result.degraded,
            "degraded_reasons": list(result.degraded_reasons),
        })
        if loaded:
            services.write_recent_cookie(response, entries, **actor)
        return response


class SearchView(APIView):
    """Product search with filters and a brand facet; recorded in history."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    content_negotiation_class = JSONFirstNegotiation
    throttle_scope = "suggestions.search"

    @services.observed("search")
    def dispatch(self, request, *args, **kwargs):
        # Timed as a whole: authentication, throttle, the answer and its rendering.
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="suggestions_search",
        summary="Search products",
        description=(
            "At least one of `q`, `brand`, `product_type`, `min_price` and `max_price` is "
            "required (400 otherwise). Text with no letters or digits matches nothing. "
            "`degraded` is true, with its causes in `degraded_reasons`, when the search "
            "engine or the task queue was unavailable. `refinements` are searches to offer "
            "with the results (chips), or instead of them when nothing was found."
        ),
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchResponseSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        query = plain_query(request)
        data = s.plain_search_params(request.query_params if query is None else query)
        if data is None:
            params = s.SearchQuerySerializer(data=request.query_params)
            params.is_valid(raise_exception=True)
            data = params.validated_data
        filters = SearchFilters(
            brands=tuple(data["brand"]),
            product_types=tuple(data["product_type"]),
            min_price=data["min_price"],
            max_price=data["max_price"],
        )
        actor = _actor(request)
        page = services.search(
            data["q"],
            filters=filters,
            page=data["page"],
            page_size=data["page_size"],
            origin=data["origin"],
            exact=data["exact"],
            **actor,
        )
        services.count_degraded("search", page.degraded_reasons)
        # Built by hand, as suggest's: s.SearchResponseSerializer documents the shape.
        response = Response(s.search_response(page))
        services.remember_recent(request, response, page.query, **actor)
        if page.query:  # the profile this search read travels to the suggest path
            services.write_profile_cookie(request, response, page.profile, **actor)
        return response


class EventsView(APIView):
    """Impressions and clicks reported by the client, in batches."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    content_negotiation_class = JSONFirstNegotiation
    # JSON only: no form or multipart parsing on a public write endpoint. The
    # parser refuses a body over max_body_bytes() before parsing it (413) and
    # nesting deeper than an event batch needs (400).
    parser_classes = [BoundedJSONParser]
    throttle_scope = "suggestions.events"

    @services.observed("events")
    def dispatch(self, request, *args, **kwargs):
        # Timed as a whole: authentication, throttle, the answer and its rendering.
        return super().dispatch(request, *args, **kwargs)

    def max_body_bytes(self) -> int:
        """Largest body accepted: ``SUGGESTIONS_MAX_EVENTS_PER_BATCH`` events of
        ``SUGGESTIONS_MAX_EVENT_BYTES`` each, plus 1 KiB."""
        return app_settings.MAX_EVENTS_BODY_BYTES

    @extend_schema(
        operation_id="suggestions_events",
        summary="Record impression and click events",
        request=s.EventsBatchSerializer,
        responses={
            202: s.EventsAcceptedSerializer,
            400: OpenApiResponse(
                description="Invalid batch, malformed JSON or JSON nested deeper than an event batch; "
                "nothing was stored. Errors are keyed by event index."
            ),
            403: OpenApiResponse(description="Signed-in request without a valid CSRF token."),
            413: OpenApiResponse(
                description="Body larger than SUGGESTIONS_MAX_EVENTS_PER_BATCH × SUGGESTIONS_MAX_EVENT_BYTES "
                "(+1 KiB); refused before parsing, nothing was stored."
            ),
            415: OpenApiResponse(description="Body is not application/json."),
            429: _THROTTLED,
        },
    )
    def post(self, request: Request) -> Response:
        events = s.plain_events(request.data)
        if events is None:
            batch = s.EventsBatchSerializer(data=request.data)
            batch.is_valid(raise_exception=True)
            events = batch.validated_data["events"]
        accepted = services.record_events(events, **_actor(request))
        return Response(
            {"accepted": accepted, "ignored": len(events) - accepted}, status=status.HTTP_202_ACCEPTED
        )


class HistoryView(APIView):
    """The shopper's own search history: list it, or erase it."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    throttle_scope = "suggestions.history"

    @extend_schema(
        operation_id="suggestions_history_list",
        summary="List own recent searches",
        responses={200: s.HistoryResponseSerializer, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        entries = services.list_history(**_actor(request))
        return Response(s.HistoryResponseSerializer({"results": entries}).data)

    @extend_schema(
        operation_id="suggestions_history_erase",
        summary="Erase own search history",
        responses={
            200: s.HistoryDeletedSerializer,
            403: OpenApiResponse(description="Signed-in request without a valid CSRF token."),
            429: _THROTTLED,
        },
    )
    def delete(self, request: Request) -> Response:
        deleted = services.erase_history(**_actor(request))
        response = Response({"deleted": deleted})
        services.forget_recent_cookie(response)
        services.forget_profile_cookie(response)
        return response


class TrendingView(APIView):
    """Most searched queries of the last ``SUGGESTIONS_TRENDING_DAYS`` days."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    # Trending is as cheap and as public as suggestions: same budget.
    throttle_scope = "suggestions.suggest"

    @extend_schema(
        operation_id="suggestions_trending",
        summary="Trending searches",
        parameters=[s.TrendingQuerySerializer],
        responses={200: s.TrendingResponseSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        params = s.TrendingQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        items = services.trending(limit=params.validated_data["limit"])
        return Response(s.TrendingResponseSerializer({"results": items}).data)


class UnderstandView(APIView):
    """Intent and entities of a query. Never waits on a model: answers from the
    workers' stored result, else from the rules fallback."""

    authentication_classes = [SessionAuthentication]
    renderer_classes = _RENDERERS
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    # As cheap as a suggestion and called as often (the widget may group by it).
    throttle_scope = "suggestions.suggest"

    @extend_schema(
        operation_id="suggestions_understand",
        summary="Understand a query",
        parameters=[s.UnderstandQuerySerializer],
        responses={200: s.UnderstandingSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        params = s.UnderstandQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        understood = services.understand(params.validated_data["q"])
        return Response(s.UnderstandingSerializer(understood).data)


class SchemaView(SpectacularAPIView):
    """The OpenAPI document, with every answer it can give documented.

    drf-spectacular documents only the 200; DRF answers an unknown
    ``?format=`` (anything but ``json`` or ``yaml``) with a 404, which a client
    generated from the schema must expect too.
    """

    if "responses" in SCHEMA_KWARGS:  # absent when the schema leaves itself out

        @extend_schema(**{
            **SCHEMA_KWARGS,
            "responses": {
                **SCHEMA_KWARGS["responses"],
                404: OpenApiResponse(description="Unknown `format`; use `json` or `yaml`."),
            },
        })
        def get(self, request, *args, **kwargs):
            return super().get(request, *args, **kwargs)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (text exposition format). For a Prometheus server
    with ``SUGGESTIONS_METRICS_TOKEN`` as a bearer token, else for signed-in
    staff; anyone else gets 403. Never cached."""
    token = app_settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    allowed = (bool(token) and header.startswith("Bearer ")
               and hmac.compare_digest(header[len("Bearer "):].encode(), token.encode()))
    if not allowed and not (request.user.is_authenticated and request.user.is_staff):
        return HttpResponseForbidden("Metrics need the metrics token (Authorization: Bearer …) or a staff login.\n",
                                     content_type="text/plain")
    body, content_type = services.metrics_page()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
