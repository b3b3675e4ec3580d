"""API views. Thin on purpose: each states its own policy (authentication,
permissions, throttle scope, parsers), validates its input with a serializer
and calls one function of :mod:`suggestions.services`.

Every endpoint is open to anonymous shoppers (``AllowAny``); history is
scoped to the signed-in user, else to the session, and never to anything the
client claims. Authentication is Django's session: for signed-in users
:class:`~rest_framework.authentication.SessionAuthentication` enforces CSRF on
unsafe methods (``POST events/``, ``DELETE history/``), anonymous requests need
no token.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..recall.base import SearchFilters
from . import serializers as s
from .throttling import FailOpenScopedRateThrottle

_BAD_REQUEST = OpenApiResponse(description="Invalid parameters; the body names each bad field.")
_THROTTLED = OpenApiResponse(
    description="Too many requests; retry after the time in `Retry-After`."
)


def _actor(request: Request, *, ensure_session: bool = False) -> dict:
    """Who the request is for: the signed-in user, else the session (if any).

    With ``ensure_session``, an anonymous shopper without a session gets one, so
    that their searches can be listed, erased and counted as one shopper.
    """
    user = request.user if request.user.is_authenticated else None
    session = getattr(request, "session", None)  # absent without SessionMiddleware
    if session is None:
        return {"user": user, "session_key": None}
    if ensure_session and user is None and not session.session_key:
        session.save()
    return {"user": user, "session_key": session.session_key}


class SuggestView(APIView):
    """Completions for what the shopper has typed."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    throttle_scope = "suggestions.suggest"

    @extend_schema(
        operation_id="suggestions_suggest",
        summary="Suggest completions",
        parameters=[s.SuggestQuerySerializer],
        responses={200: s.SuggestResponseSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        params = s.SuggestQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = services.suggest(
            params.validated_data["q"], limit=params.validated_data["limit"], **_actor(request)
        )
        # Built by hand: this runs on every keystroke, and the nested response
        # serializer (which documents this shape) costs more than the answer.
        return Response({
            "query": result.prefix,
            "request_id": result.request_id,
            "suggestions": [
                {"text": i.text, "kind": i.kind, "source": i.source, "fuzzy": i.fuzzy} for i in result.items
            ],
            "degraded": result.degraded,
        })


class SearchView(APIView):
    """Product search with filters and a brand facet; recorded in history."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    throttle_scope = "suggestions.search"

    @extend_schema(
        operation_id="suggestions_search",
        summary="Search products",
        parameters=[s.SearchQuerySerializer],
        responses={200: s.SearchResponseSerializer, 400: _BAD_REQUEST, 429: _THROTTLED},
    )
    def get(self, request: Request) -> Response:
        params = s.SearchQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        filters = SearchFilters(
            brands=tuple(data["brand"]),
            product_types=tuple(data["product_type"]),
            min_price=data["min_price"],
            max_price=data["max_price"],
        )
        page = services.search(
            data["q"],
            filters=filters,
            page=data["page"],
            page_size=data["page_size"],
            origin=data["origin"],
            **_actor(request, ensure_session=True),
        )
        return Response(s.SearchResponseSerializer(page).data)


class EventsView(APIView):
    """Impressions and clicks reported by the client, in batches."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    throttle_classes = [FailOpenScopedRateThrottle]
    # JSON only: no form or multipart parsing on a public write endpoint.
    # (DRF reads JSON bodies through ``request.body``, so Django's
    # DATA_UPLOAD_MAX_MEMORY_SIZE bounds them: larger bodies get a 400.)
    parser_classes = [JSONParser]
    throttle_scope = "suggestions.events"

    @extend_schema(
        operation_id="suggestions_events",
        summary="Record impression and click events",
        request=s.EventsBatchSerializer,
        responses={
            202: s.EventsAcceptedSerializer,
            400: OpenApiResponse(
                description="Invalid batch, malformed JSON or a body over DATA_UPLOAD_MAX_MEMORY_SIZE; nothing was stored. "
                "Errors are keyed by event index."
            ),
            403: OpenApiResponse(description="Signed-in request without a valid CSRF token."),
            415: OpenApiResponse(description="Body is not application/json."),
            429: _THROTTLED,
        },
    )
    def post(self, request: Request) -> Response:
        batch = s.EventsBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        accepted = services.record_events(batch.validated_data["events"], **_actor(request))
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)


class HistoryView(APIView):
    """The shopper's own search history: list it, or erase it."""

    authentication_classes = [SessionAuthentication]
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
        return Response({"deleted": deleted})


class TrendingView(APIView):
    """Most searched queries of the last ``SUGGESTIONS_TRENDING_DAYS`` days."""

    authentication_classes = [SessionAuthentication]
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
