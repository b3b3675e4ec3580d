"""The HTTP API, through DRF's test client: validation, storage, privacy,
CSRF, throttling, degradation and the OpenAPI schema.

Every bad-input test asserts both the 400 (with a message naming the field)
and that nothing was stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st
from rest_framework.test import APIClient

from catalog.models import Product
from suggestions import services
from suggestions.api.throttling import LocalCounts, reset_local_counts
from suggestions.models import (
    ProductClick,
    QueryDailyStat,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)
from tests.factories_suggestions import SearchEventFactory

pytestmark = pytest.mark.django_db

SUGGEST = reverse("suggestions:suggest")
SEARCH = reverse("suggestions:search")
EVENTS = reverse("suggestions:events")
HISTORY = reverse("suggestions:history")
TRENDING = reverse("suggestions:trending")

REQUEST_ID = uuid.uuid4().hex


# -- helpers ----------------------------------------------------------------------------


def stored() -> dict[str, int]:
    """Row counts of everything the API may write."""
    return {
        model.__name__: model.objects.count()
        for model in (
            SearchEvent,
            SuggestionImpression,
            SuggestionClick,
            ProductClick,
            QueryDailyStat,
        )
    }


NOTHING_STORED = {
    "SearchEvent": 0,
    "SuggestionImpression": 0,
    "SuggestionClick": 0,
    "ProductClick": 0,
    "QueryDailyStat": 0,
}


def with_session(client: APIClient) -> APIClient:
    """Give ``client`` what a browser that visited the shop has: a saved session
    and the shopper cookie of an earlier response (which makes it a returning,
    identified shopper)."""
    client.session  # noqa: B018 - the test client creates and saves a session on access
    client.get(reverse("suggestions:trending"))
    assert client.cookies.get("shop_suggestions_shopper")
    return client


def post_events(client: APIClient, body, **kwargs):
    return client.post(EVENTS, data=json.dumps(body), content_type="application/json", **kwargs)


def impression(**overrides) -> dict:
    return {
        "type": "impression",
        "request_id": REQUEST_ID,
        "prefix": "usb",
        "suggestions": ["usb cable", "usb hub"],
        **overrides,
    }


def suggestion_click(**overrides) -> dict:
    return {
        "type": "suggestion_click",
        "request_id": REQUEST_ID,
        "prefix": "usb",
        "suggestion": "usb hub",
        "position": 1,
        **overrides,
    }


def product_click(**overrides) -> dict:
    return {
        "type": "product_click",
        "request_id": REQUEST_ID,
        "query": "usb hub",
        "product_id": "42",
        "position": 0,
        **overrides,
    }


def drop(event: dict, key: str) -> dict:
    return {k: v for k, v in event.items() if k != key}


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def published():
    """Approved suggestions, pushed into the recall backend."""
    for text, weight in [
        ("usb cable", 50),
        ("usb hub", 40),
        ("usb-c charger", 30),
        ("laptop stand", 20),
    ]:
        Suggestion.objects.create(text=text, source="history", status="approved", weight=weight)
    Suggestion.objects.create(text="usb secret", source="history", status="rejected", weight=99)
    services.publish_suggestions()


@pytest.fixture
def products():
    """A small indexed catalog."""
    rows = [
        Product(title="Anker USB Cable 1m", brand="Anker", product_type="cable", price="9.99"),
        Product(title="Belkin USB Cable 2m", brand="Belkin", product_type="cable", price="14.50"),
        Product(title="Anker USB Hub 4-port", brand="Anker", product_type="hub", price="29.00"),
        Product(
            title="Logitech Laptop Stand", brand="Logitech", product_type="stand", price="49.00"
        ),
    ]
    for row in rows:
        row.save()
    services.rebuild_index()
    return rows


@pytest.fixture
def broken_cache(settings):
    """A Redis cache where nothing listens: every cache call raises."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }


@pytest.fixture
def recall_down(settings):
    """An Elasticsearch backend where nothing listens."""
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {
            "BACKEND": "suggestions.recall.elasticsearch",
            "OPTIONS": {"HOSTS": ["http://127.0.0.1:1"], "TIMEOUT": 0.5},
        }
    }


# -- suggest ----------------------------------------------------------------------------


def test_suggest_returns_published_suggestions(api, published):
    response = api.get(SUGGEST, {"q": "  USB ", "limit": 2})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "request_id", "suggestions", "degraded", "degraded_reasons"}
    assert body["query"] == "usb"
    assert uuid.UUID(body["request_id"])
    assert (body["degraded"], body["degraded_reasons"]) == (False, [])
    assert [s["text"] for s in body["suggestions"]] == ["usb cable", "usb hub"]
    assert body["suggestions"][0] == {
        "text": "usb cable",
        "kind": "suggestion",
        "source": "history",
        "fuzzy": False,
    }


def test_suggest_default_limit_and_only_approved(api, settings, published):
    settings.SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT = 2

    body = api.get(SUGGEST, {"q": "usb"}).json()

    assert len(body["suggestions"]) == 2
    assert "usb secret" not in [
        s["text"] for s in api.get(SUGGEST, {"q": "usb", "limit": 20}).json()["suggestions"]
    ]


def test_suggest_accepts_limits_at_the_bounds(api, published):
    def answer(params):
        response = api.get(SUGGEST, params)
        assert response.status_code == 200, response.content
        return response.json()

    everything = ["usb cable", "usb hub", "usb-c charger"]
    assert [s["text"] for s in answer({"q": "u", "limit": 1})["suggestions"]] == everything[:1]
    assert [s["text"] for s in answer({"q": "u", "limit": 20})["suggestions"]] == everything
    longest = answer({"q": "u" * 200})
    assert longest["query"] == "u" * 200 and longest["suggestions"] == []


def test_suggest_is_not_recorded_in_history(api, published):
    with_session(api).get(SUGGEST, {"q": "usb"})

    assert stored() == NOTHING_STORED


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "q", "required"),
        ({"q": ""}, "q", "blank"),
        ({"q": "   \t "}, "q", "blank"),
        ({"q": "u" * 201}, "q", "no more than 200 characters"),
        ({"q": "usb\x00cable"}, "q", "Control characters are not allowed"),
        ({"q": "usb\x1bcable"}, "q", "Control characters are not allowed"),
        ({"q": "usb\x7f"}, "q", "Control characters are not allowed"),
        ({"q": "usb", "limit": 0}, "limit", "greater than or equal to 1"),
        ({"q": "usb", "limit": 21}, "limit", "less than or equal to 20"),
        ({"q": "usb", "limit": "abc"}, "limit", "valid integer"),
        ({"q": "usb", "limit": "2.5"}, "limit", "valid integer"),
    ],
    ids=[
        "missing-q",
        "empty-q",
        "whitespace-q",
        "long-q",
        "nul",
        "escape",
        "del",
        "limit-0",
        "limit-21",
        "limit-abc",
        "limit-float",
    ],
)
def test_suggest_rejects_bad_input(api, params, field, message):
    response = with_session(api).get(SUGGEST, params)

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert stored() == NOTHING_STORED


def test_suggest_limits_follow_settings(api, settings):
    settings.SUGGESTIONS_MAX_QUERY_LENGTH = 5
    settings.SUGGESTIONS_MAX_SUGGESTION_LIMIT = 3

    assert api.get(SUGGEST, {"q": "abcdef"}).json() == {
        "q": ["Ensure this field has no more than 5 characters."]
    }
    assert api.get(SUGGEST, {"q": "abc", "limit": 4}).json() == {
        "limit": ["Ensure this value is less than or equal to 3."]
    }


def test_suggest_wrong_method(api):
    assert api.post(SUGGEST, {"q": "usb"}, format="json").status_code == 405


# -- search -----------------------------------------------------------------------------


def test_search_returns_results_facets_and_records_history(api, products):
    response = with_session(api).get(SEARCH, {"q": "usb cable"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "query",
        "request_id",
        "total",
        "page",
        "page_size",
        "results",
        "facets",
        "degraded",
        "degraded_reasons",
        "understanding",
        "corrected_query",
        "refinements",
    }
    assert body["query"] == "usb cable"
    assert uuid.UUID(body["request_id"])
    assert (body["page"], body["page_size"], body["degraded"]) == (1, 20, False)
    assert body["total"] >= 2
    first = body["results"][0]
    assert set(first) == {
        "id",
        "title",
        "brand",
        "product_type",
        "price",
        "url",
        "image_url",
        "score",
        "position",
    }
    assert first["position"] == 0
    assert {r["title"] for r in body["results"][:2]} == {
        "Anker USB Cable 1m",
        "Belkin USB Cable 2m",
    }
    assert body["facets"]["brand"][0].keys() == {"value", "count"}
    assert {f["value"] for f in body["facets"]["brand"]} >= {"Anker", "Belkin"}

    event = SearchEvent.objects.get()
    assert (event.normalized_query, event.origin, event.request_id.hex) == (
        "usb cable",
        "typed",
        body["request_id"],
    )


def test_search_positions_run_across_pages(api, products):
    body = api.get(SEARCH, {"q": "usb", "page": 2, "page_size": 2}).json()

    assert body["total"] == 3
    assert [r["position"] for r in body["results"]] == [2]


def test_search_filters_only_and_repeated_brand(api, products):
    response = api.get(f"{SEARCH}?brand=Anker&brand=Logitech&min_price=10")

    assert response.status_code == 200
    titles = {r["title"] for r in response.json()["results"]}
    assert titles == {"Anker USB Hub 4-port", "Logitech Laptop Stand"}


def test_search_price_range_and_origin(api, products):
    body = (
        with_session(api)
        .get(
            SEARCH,
            {
                "q": "usb",
                "min_price": "10",
                "max_price": "30",
                "product_type": "cable",
                "origin": "suggestion",
            },
        )
        .json()
    )

    assert [r["title"] for r in body["results"]] == ["Belkin USB Cable 2m"]
    assert SearchEvent.objects.get().origin == "suggestion"


def test_search_accepts_the_last_page_of_the_window(api, products):
    response = api.get(SEARCH, {"q": "usb", "page": 100, "page_size": 100})

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "q", "Enter a search text or choose a filter"),
        ({"q": "   "}, "q", "Enter a search text or choose a filter"),
        ({"q": "", "brand": ""}, "q", "Enter a search text or choose a filter"),
        ({"q": "u" * 201}, "q", "no more than 200 characters"),
        ({"q": "usb\x00"}, "q", "Control characters are not allowed"),
        ({"q": "usb\x07"}, "q", "Control characters are not allowed"),
        ({"q": "usb", "page": 0}, "page", "greater than or equal to 1"),
        ({"q": "usb", "page": -3}, "page", "greater than or equal to 1"),
        ({"q": "usb", "page": "two"}, "page", "valid integer"),
        ({"q": "usb", "page": 501}, "page", "Only the first 10000 results"),
        ({"q": "usb", "page": 101, "page_size": 100}, "page", "Only the first 10000 results"),
        ({"q": "usb", "page_size": 0}, "page_size", "greater than or equal to 1"),
        ({"q": "usb", "page_size": 101}, "page_size", "less than or equal to 100"),
        (
            {"q": "usb", "min_price": 50, "max_price": 10},
            "max_price",
            "greater than or equal to min_price",
        ),
        ({"q": "usb", "min_price": -1}, "min_price", "greater than or equal to 0"),
        ({"q": "usb", "max_price": "-0.5"}, "max_price", "greater than or equal to 0"),
        ({"q": "usb", "min_price": "nan"}, "min_price", "valid number"),
        ({"q": "usb", "max_price": "cheap"}, "max_price", "valid number"),
        ({"q": "usb", "origin": "bot"}, "origin", "not a valid choice"),
        ({"q": "usb", "brand": "an\x00ker"}, "brand", "Control characters are not allowed"),
        ({"q": "usb", "brand": "b" * 101}, "brand", "no more than 100 characters"),
    ],
    ids=[
        "no-q-no-filter",
        "whitespace-q",
        "blank-brand-is-no-filter",
        "long-q",
        "nul",
        "bell",
        "page-0",
        "page-negative",
        "page-abc",
        "deep-page",
        "deep-page-big-size",
        "page-size-0",
        "page-size-101",
        "min-gt-max",
        "negative-min",
        "negative-max",
        "nan-price",
        "price-abc",
        "bad-origin",
        "nul-brand",
        "long-brand",
    ],
)
def test_search_rejects_bad_input(api, params, field, message):
    response = with_session(api).get(SEARCH, params)

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field]
    assert message in json.dumps(errors[field])
    assert stored() == NOTHING_STORED


def test_search_rejects_too_many_brand_values(api):
    query = "&".join(f"brand=b{i}" for i in range(21))

    response = api.get(f"{SEARCH}?q=usb&{query}")

    assert response.status_code == 400
    assert response.json() == {"brand": ["Ensure this field has no more than 20 elements."]}
    assert stored() == NOTHING_STORED


# -- events -----------------------------------------------------------------------------


def test_valid_mixed_batch_is_stored(api):
    hub = Product.objects.create(title="Anker USB Hub", brand="Anker", product_type="hub", price="29.00")
    response = post_events(
        with_session(api),
        {"events": [impression(), suggestion_click(), product_click(query="", product_id=str(hub.pk))]},
    )

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "ignored": 0}
    shown = SuggestionImpression.objects.get()
    assert (shown.request_id.hex, shown.prefix, shown.suggestions) == (
        REQUEST_ID,
        "usb",
        ["usb cable", "usb hub"],
    )
    click = SuggestionClick.objects.get()
    assert (click.suggestion, click.position) == ("usb hub", 1)
    product = ProductClick.objects.get()
    assert (product.object_id, product.position, product.query) == (str(hub.pk), 0, "")
    assert shown.actor_hash and shown.actor_hash == click.actor_hash == product.actor_hash


def test_a_batch_is_written_in_a_statement_per_table_and_counted_text(api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hub = Product.objects.create(title="Anker USB Hub", brand="Anker", product_type="hub", price="29.00")
    events = ([impression(prefix=f"us{i}") for i in range(8)]
              + [suggestion_click(suggestion="usb hub") for _ in range(5)]
              + [suggestion_click(suggestion="usb cable") for _ in range(3)]
              + [product_click(query="usb hub", product_id=str(hub.pk)) for _ in range(4)])
    client = with_session(api)
    post_events(client, {"events": [impression()]})  # the session exists before the count starts

    with CaptureQueriesContext(connection) as queries:
        response = post_events(client, {"events": events})

    assert response.json() == {"accepted": 20, "ignored": 0}
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    tables = sorted(sql.split('"')[1] for sql in inserts)
    # One INSERT per event table, plus the daily rows of the two texts first counted here.
    # One INSERT per event table, the daily rows of the two texts first counted here,
    # and the clicking shopper's profile.
    assert tables == sorted(f"shop_suggestions_{name}" for name in (
        "suggestionimpression", "suggestionclick", "productclick", "querydailystat", "querydailystat",
        "shopperprofile"))
    assert stored()["SuggestionImpression"] == 9 and stored()["SuggestionClick"] == 8
    assert stored()["ProductClick"] == 4
    daily = {r.normalized_query: (r.suggestion_clicks, r.product_clicks) for r in QueryDailyStat.objects.all()}
    assert daily == {"usb hub": (5, 4), "usb cable": (3, 0)}


def test_the_statements_of_a_batch_do_not_grow_with_its_size(api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hub = Product.objects.create(title="Anker USB Hub", brand="Anker", product_type="hub", price="29.00")
    client = with_session(api)
    post_events(client, {"events": [impression()]})

    def statements(n: int, text: str) -> int:
        events = [e for _ in range(n) for e in (
            impression(prefix=text), suggestion_click(suggestion=text),
            product_click(query=text, product_id=str(hub.pk)))]
        with CaptureQueriesContext(connection) as queries:
            assert post_events(client, {"events": events}).json()["accepted"] == 3 * n
        return len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]])

    assert statements(2, "usb hub") == statements(6, "usb cable")


def test_a_batch_that_fails_while_it_is_written_stores_nothing(api, monkeypatch):
    from suggestions import history

    real = history._bump_daily

    def failing(day, text, **increments):
        if text == "usb cable":
            raise RuntimeError("disk full")
        return real(day, text, **increments)

    monkeypatch.setattr(history, "_bump_daily", failing)
    events = [impression(), suggestion_click(suggestion="usb hub"), suggestion_click(suggestion="usb cable")]

    with pytest.raises(RuntimeError):
        post_events(with_session(api), {"events": events})

    assert stored() == NOTHING_STORED


def test_events_accept_hyphenated_uuid_and_bounds(api):
    events = [
        suggestion_click(request_id=str(uuid.uuid4()), position=0),
        product_click(position=99),
        impression(suggestions=["s"] * 50),
    ]

    assert post_events(api, {"events": events}).status_code == 202
    assert stored()["SuggestionImpression"] == 1


def test_events_batch_at_the_limit(api, settings):
    settings.SUGGESTIONS_MAX_EVENTS_PER_BATCH = 3

    assert post_events(api, {"events": [impression()] * 3}).status_code == 202
    response = post_events(api, {"events": [impression()] * 4})
    assert response.status_code == 400
    assert response.json() == {"events": ["Ensure this field has no more than 3 elements."]}
    assert stored()["SuggestionImpression"] == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"events": {"type": "impression"}},
            {"events": ['Expected a list of items but got type "dict".']},
        ),
        ({"events": "impression"}, {"events": ['Expected a list of items but got type "str".']}),
        ({"events": None}, {"events": ["This field may not be null."]}),
        ({}, {"events": ["This field is required."]}),
        (
            [impression()],
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
        ),
        ({"events": []}, {"events": ["This list may not be empty."]}),
        (
            {"events": [impression()] * 51},
            {"events": ["Ensure this field has no more than 50 elements."]},
        ),
    ],
    ids=[
        "events-dict",
        "events-str",
        "events-null",
        "events-missing",
        "body-list",
        "empty",
        "too-many",
    ],
)
def test_events_rejects_bad_batch(api, body, expected):
    response = post_events(api, body)

    assert response.status_code == 400
    assert response.json() == expected
    assert stored() == NOTHING_STORED


@pytest.mark.parametrize(
    ("bad_event", "field", "message"),
    [
        ({**impression(), "type": "purchase"}, "type", "Unknown event type 'purchase'"),
        ({**impression(), "type": 3}, "type", "Unknown event type 3"),
        (drop(impression(), "type"), "type", "This field is required."),
        ("impression", "non_field_errors", "Expected an object with a type, but got str."),
        (impression(request_id="not-a-uuid"), "request_id", "Must be a valid UUID."),
        (drop(impression(), "request_id"), "request_id", "This field is required."),
        (drop(impression(), "prefix"), "prefix", "This field is required."),
        (impression(prefix=""), "prefix", "This field may not be blank."),
        (impression(prefix="p" * 201), "prefix", "no more than 200 characters"),
        (impression(suggestions="usb cable"), "suggestions", "Expected a list of items"),
        (impression(suggestions=["s"] * 51), "suggestions", "no more than 50 elements"),
        (impression(suggestions=["s" * 256]), "suggestions", "no more than 255 characters"),
        (
            impression(suggestions=["ok", "bad\x00"]),
            "suggestions",
            "Control characters are not allowed",
        ),
        (suggestion_click(position=-1), "position", "greater than or equal to 0"),
        (suggestion_click(position=100), "position", "less than or equal to 99"),
        (suggestion_click(position="first"), "position", "valid integer"),
        (drop(suggestion_click(), "suggestion"), "suggestion", "This field is required."),
        (drop(suggestion_click(), "position"), "position", "This field is required."),
        (
            suggestion_click(suggestion="x\x1b[31m"),
            "suggestion",
            "Control characters are not allowed",
        ),
        (drop(product_click(), "product_id"), "product_id", "This field is required."),
        (product_click(product_id="9" * 65), "product_id", "no more than 64 characters"),
        (product_click(query="q" * 201), "query", "no more than 200 characters"),
        (product_click(position=-5), "position", "greater than or equal to 0"),
    ],
    ids=[
        "unknown-type",
        "type-not-string",
        "type-missing",
        "event-not-object",
        "bad-uuid",
        "uuid-missing",
        "prefix-missing",
        "prefix-blank",
        "prefix-long",
        "suggestions-not-list",
        "suggestions-oversized",
        "suggestion-text-long",
        "suggestion-nul",
        "click-negative-position",
        "click-position-100",
        "click-position-abc",
        "click-suggestion-missing",
        "click-position-missing",
        "click-escape",
        "product-id-missing",
        "product-id-long",
        "product-query-long",
        "product-negative-position",
    ],
)
def test_events_one_bad_event_rejects_the_batch(api, bad_event, field, message):
    # The bad event sits between valid ones: the error names its index and
    # the valid ones are not stored either.
    response = post_events(
        with_session(api),
        {"events": [impression(), suggestion_click(), bad_event, product_click()]},
    )

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["events"]
    assert list(errors["events"]) == ["2"]
    assert field in errors["events"]["2"]
    assert message in json.dumps(errors["events"]["2"][field])
    assert stored() == NOTHING_STORED


def test_events_errors_name_every_bad_index(api):
    response = post_events(
        api,
        {
            "events": [
                impression(position=None),
                suggestion_click(position=-1),
                impression(),
                product_click(request_id="x"),
            ]
        },
    )

    assert response.status_code == 400
    assert sorted(response.json()["events"]) == ["1", "3"]
    assert stored() == NOTHING_STORED


def test_events_malformed_json(api):
    response = api.post(EVENTS, data='{"events": [', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert stored() == NOTHING_STORED


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "text/plain"],
)
def test_events_wrong_content_type(api, content_type):
    response = api.post(
        EVENTS, data=json.dumps({"events": [impression()]}), content_type=content_type
    )

    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    assert stored() == NOTHING_STORED


def test_events_body_over_the_upload_limit(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = post_events(api, {"events": [impression(suggestions=["s" * 200] * 10)]})

    # Django refuses the body before it is parsed (SuspiciousOperation → 400).
    assert response.status_code == 400
    assert stored() == NOTHING_STORED


def test_events_wrong_method(api):
    assert api.get(EVENTS).status_code == 405
    assert api.put(EVENTS, {"events": [impression()]}, format="json").status_code == 405


# -- history ----------------------------------------------------------------------------


def test_history_shows_and_erases_only_own_searches(products):
    alice, bob = with_session(APIClient()), with_session(APIClient())
    alice.get(SEARCH, {"q": "usb cable"})
    alice.get(SEARCH, {"q": "laptop stand", "origin": "suggestion"})
    bob.get(SEARCH, {"q": "usb hub"})

    body = alice.get(HISTORY).json()
    assert [e["query"] for e in body["results"]] == ["laptop stand", "usb cable"]
    assert body["results"][0]["origin"] == "suggestion"
    assert body["results"][0].keys() == {"query", "created_at", "origin"}
    assert [e["query"] for e in bob.get(HISTORY).json()["results"]] == ["usb hub"]

    response = alice.delete(HISTORY)
    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    assert alice.get(HISTORY).json() == {"results": []}
    assert [e["query"] for e in bob.get(HISTORY).json()["results"]] == ["usb hub"]


def test_history_without_session_is_empty_and_erases_nothing(api, products):
    with_session(APIClient()).get(SEARCH, {"q": "usb"})

    assert api.get(HISTORY).json() == {"results": []}
    assert api.delete(HISTORY).json() == {"deleted": 0}
    assert SearchEvent.objects.count() == 1


def test_history_of_signed_in_users(products):
    User = get_user_model()  # noqa: N806
    ann, ben = APIClient(), APIClient()
    ann.force_login(User.objects.create_user("ann", password="pw"))
    ben.force_login(User.objects.create_user("ben", password="pw"))
    ann.get(SEARCH, {"q": "usb hub"})

    assert [e["query"] for e in ann.get(HISTORY).json()["results"]] == ["usb hub"]
    assert ben.get(HISTORY).json() == {"results": []}
    assert ben.delete(HISTORY).json() == {"deleted": 0}
    assert ann.delete(HISTORY).json() == {"deleted": 1}
    assert SearchEvent.objects.count() == 0


def test_history_wrong_method(api):
    assert api.post(HISTORY, {}, format="json").status_code == 405


# -- CSRF -------------------------------------------------------------------------------


@pytest.fixture
def signed_in_csrf_client(django_user_model) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("csrf", password="pw"))
    return client


def test_signed_in_post_without_csrf_token_is_refused(signed_in_csrf_client):
    response = post_events(signed_in_csrf_client, {"events": [impression()]})

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert stored() == NOTHING_STORED


def test_signed_in_delete_without_csrf_token_is_refused(signed_in_csrf_client, products):
    signed_in_csrf_client.get(SEARCH, {"q": "usb"})

    response = signed_in_csrf_client.delete(HISTORY)

    assert response.status_code == 403
    assert SearchEvent.objects.count() == 1


def test_signed_in_post_with_csrf_token_is_accepted(signed_in_csrf_client, settings):
    token = get_random_string(32)
    signed_in_csrf_client.cookies[settings.CSRF_COOKIE_NAME] = token

    response = post_events(
        signed_in_csrf_client, {"events": [impression()]}, HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 202
    assert SuggestionImpression.objects.get().user is not None


def test_anonymous_post_needs_no_csrf_token():
    response = post_events(APIClient(enforce_csrf_checks=True), {"events": [impression()]})

    assert response.status_code == 202
    assert stored()["SuggestionImpression"] == 1


# -- throttling -------------------------------------------------------------------------


def test_throttling_returns_429(api, throttle_rates, published):
    throttle_rates(suggest="2/min")

    codes = [api.get(SUGGEST, {"q": "usb"}).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    response = api.get(SUGGEST, {"q": "usb"})
    assert int(response["Retry-After"]) > 0
    # Scopes are separate budgets.
    assert api.post(EVENTS, {"events": [impression()]}, format="json").status_code == 202


def test_throttling_of_events(api, throttle_rates):
    throttle_rates(events="1/min")

    assert post_events(api, {"events": [impression()]}).status_code == 202
    assert post_events(api, {"events": [impression()]}).status_code == 429
    assert stored()["SuggestionImpression"] == 1


def test_missing_throttle_rate_is_a_configuration_error(api, settings):
    rates = {
        k: v
        for k, v in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].items()
        if k != "suggestions.history"
    }
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    with pytest.raises(ImproperlyConfigured):
        api.get(HISTORY)


def test_cache_down_fails_open(api, throttle_rates, broken_cache, caplog):
    # A tiny rate: were the throttle counting, the third request would be a 429.
    throttle_rates(suggest="1/min", events="1/min")

    for _ in range(2):
        response = api.get(SUGGEST, {"q": "usb"})
        assert response.status_code == 200
        assert (response.json()["degraded"], response.json()["degraded_reasons"]) == (True, ["cache"])
    assert post_events(api, {"events": [impression()]}).status_code == 202
    assert post_events(api, {"events": [impression()]}).status_code == 202
    assert "Throttle cache unavailable" in caplog.text


def test_local_counts_reach_the_cache_once_per_share(api, throttle_rates, settings, cache_calls, published):
    from django.core.cache import caches

    # 1000/min with a 1% share: the process tells the cache once every 10 requests.
    throttle_rates(suggest="1000/min")
    settings.SUGGESTIONS_THROTTLE_LOCAL_SHARE = 0.01
    api.get(SUGGEST, {"q": "usb"})  # warms the answer memo
    caches["default"].clear()
    reset_local_counts()
    cache_calls.clear()

    codes = [api.get(SUGGEST, {"q": "usb"}).status_code for _ in range(25)]

    assert set(codes) == {200}
    # The 10th request finds no counter (incr fails, add creates it), the 20th adds to it.
    assert [c for c in cache_calls if c in ("incr", "add")] == ["incr", "add", "incr"]
    cache = caches["default"]
    counters = [cache.get(k.split(":", 2)[-1]) for k in list(cache._cache) if "throttle" in k]
    assert counters == [20]


def test_a_rate_holds_with_local_counts(api, throttle_rates, settings, published):
    throttle_rates(suggest="100/min")
    settings.SUGGESTIONS_THROTTLE_LOCAL_SHARE = 0.05  # 5 requests held before the cache hears of them

    codes = [api.get(SUGGEST, {"q": "usb"}).status_code for _ in range(110)]

    assert codes == [200] * 100 + [429] * 10


def test_processes_holding_counts_overshoot_the_rate_by_less_than_their_shares():
    shared = {"n": 0}

    def add(_key, n):
        shared["n"] += n
        return shared["n"]

    processes = [LocalCounts(), LocalCounts(), LocalCounts()]
    allowed = sum(processes[i % 3].allow("client:1", 10, 100, add) for i in range(300))

    # Each process can let through at most batch - 1 requests the others never heard of.
    assert 100 <= allowed <= 100 + 3 * 9
    assert shared["n"] >= 100


def test_local_counts_fail_open_when_the_cache_is_down(api, throttle_rates, settings, broken_cache):
    throttle_rates(suggest="100/min")
    settings.SUGGESTIONS_THROTTLE_LOCAL_SHARE = 0.05

    assert {api.get(SUGGEST, {"q": "usb"}).status_code for _ in range(120)} == {200}


def test_a_bad_local_share_is_a_configuration_error(api, settings):
    settings.SUGGESTIONS_THROTTLE_LOCAL_SHARE = 1.5

    with pytest.raises(ImproperlyConfigured):
        api.get(SUGGEST, {"q": "usb"})


# -- recall backend down ----------------------------------------------------------------


def test_suggest_degrades_when_recall_backend_is_down(api, recall_down):
    Suggestion.objects.create(text="usb cable", source="history", status="approved", weight=10)

    response = api.get(SUGGEST, {"q": "usb"})

    assert response.status_code == 200
    body = response.json()
    assert (body["degraded"], body["degraded_reasons"]) == (True, ["recall"])
    assert [s["text"] for s in body["suggestions"]] == ["usb cable"]


def test_search_degrades_when_recall_backend_is_down(api, recall_down):
    Product.objects.create(
        title="Anker USB Cable 1m", brand="Anker", product_type="cable", price="9.99"
    )

    response = with_session(api).get(SEARCH, {"q": "usb cable"})

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["facets"] == {"brand": []}
    assert SearchEvent.objects.count() == 1


# -- trending ---------------------------------------------------------------------------


def test_trending_lists_approved_popular_queries(api):
    today = timezone.localdate()
    Suggestion.objects.create(text="usb cable", source="history", status="approved", weight=1)
    Suggestion.objects.create(text="laptop stand", source="history", status="approved", weight=1)
    QueryDailyStat.objects.create(date=today, normalized_query="usb cable", searches=5)
    QueryDailyStat.objects.create(
        date=today - timedelta(days=1), normalized_query="laptop stand", searches=3
    )
    QueryDailyStat.objects.create(date=today, normalized_query="jane@example.com", searches=50)
    for text in ("usb cable", "laptop stand"):  # the k-gate: three identified shoppers each
        for shopper in "abc":
            SearchEventFactory(query=text, actor_hash=shopper * 64)

    response = api.get(TRENDING, {"limit": 5})

    assert response.status_code == 200
    assert response.json() == {
        "results": [{"text": "usb cable", "searches": 5}, {"text": "laptop stand", "searches": 3}]
    }


@pytest.mark.parametrize("limit", [0, 51, "abc"])
def test_trending_rejects_bad_limit(api, limit):
    response = api.get(TRENDING, {"limit": limit})

    assert response.status_code == 400
    assert list(response.json()) == ["limit"]


# -- schema and docs --------------------------------------------------------------------


def test_openapi_schema_lists_the_endpoints(api):
    response = api.get(reverse("suggestions:schema"), {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert {SUGGEST, SEARCH, EVENTS, HISTORY, TRENDING} <= set(schema["paths"])
    assert set(schema["paths"][HISTORY]) == {"get", "delete"}
    assert "post" in schema["paths"][EVENTS]
    search_params = {p["name"] for p in schema["paths"][SEARCH]["get"]["parameters"]}
    assert search_params == {
        "q",
        "page",
        "page_size",
        "brand",
        "product_type",
        "min_price",
        "max_price",
        "origin",
        "exact",
    }
    event = schema["components"]["schemas"]["Event"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == {
        "impression",
        "suggestion_click",
        "product_click",
        "refinement_impression",
        "refinement_click",
    }


def test_docs_page_links_the_schema(api):
    docs = api.get(reverse("suggestions:docs"))
    assert docs.status_code == 200
    assert reverse("suggestions:schema") in docs.content.decode()


@pytest.mark.django_db
def test_anonymous_shopper_gets_a_shopper_cookie_not_a_session_and_sees_own_history(client):
    from django.contrib.sessions.models import Session

    assert client.get("/api/suggestions/search/", {"q": "halo"}).status_code == 200
    assert client.cookies.get("shop_suggestions_shopper") and not client.cookies.get("sessionid")
    # The first, cookie-less search belongs to nobody; the next one is the shopper's.
    assert client.get("/api/suggestions/search/", {"q": "halo 3"}).status_code == 200
    history = client.get("/api/suggestions/history/").json()["results"]
    assert [h["query"] for h in history] == ["halo 3"]
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_docs_page_serves_its_assets_locally(client):
    page = client.get("/api/suggestions/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in page and "swagger-ui" in page


# -- the suggest request's plain-parameter shortcut ---------------------------------------

_PARAM_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["usb", " usb ", "", "  ", "0", "5", "05", "10", "11", "100000", "-1", "1.0", "٣", "²",
                     "a\x00b", "a\tb", "x\x7f", "\u00a0usb", "é" * 150]),
)


@settings_hypothesis(max_examples=400, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["q", "limit", "other"]), _PARAM_TEXT), max_size=4))
def test_the_plain_suggest_shortcut_agrees_with_the_serializer(pairs):
    from django.http import QueryDict

    from suggestions.api.serializers import SuggestQuerySerializer, plain_suggest_params

    params = QueryDict(mutable=True)
    for key, value in pairs:
        params.appendlist(key, value)
    fast = plain_suggest_params(params)
    serializer = SuggestQuerySerializer(data=params)
    if fast is not None:
        assert serializer.is_valid(), (pairs, serializer.errors)
        assert fast == dict(serializer.validated_data)


@pytest.mark.parametrize("query, expected", [
    ("q=usb", {"q": "usb", "limit": 10}),
    ("q=%20usb%20&limit=5", {"q": "usb", "limit": 5}),
    ("q=%E6%89%93%E5%8D%B0", {"q": "打印", "limit": 10}),
])
def test_plain_suggest_requests_take_the_shortcut(query, expected, settings):
    from django.http import QueryDict

    from suggestions.api.serializers import plain_suggest_params

    settings.SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT = 10
    assert plain_suggest_params(QueryDict(query)) == expected


@pytest.mark.parametrize("query", ["q=", "limit=5", "q=usb&limit=0", "q=usb&limit=x", "q=a%00b", "q=usb&x=1"])
def test_other_suggest_requests_get_the_serializers_answer(api, query):
    from django.http import QueryDict

    from suggestions.api.serializers import plain_suggest_params

    assert plain_suggest_params(QueryDict(query)) is None
    if query != "q=usb&x=1":  # an unknown parameter is ignored, as before
        assert api.get(SUGGEST + "?" + query).status_code == 400


# -- content negotiation of the keystroke endpoints --------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html", "application/json; indent=4",
                                    "text/html,application/xhtml+xml,*/*;q=0.8", "application/xml"])
@pytest.mark.parametrize("query", ["", "?format=api", "?format=json"])
def test_json_first_negotiation_picks_what_drf_picks(accept, query):
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from suggestions.api.negotiation import JSONFirstNegotiation
    from suggestions.api.views import SuggestView

    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    request = Request(APIRequestFactory().get(SUGGEST + query, **headers))
    renderers = [r() for r in SuggestView().renderer_classes]

    def pick(negotiation):
        try:
            renderer, media_type = negotiation.select_renderer(request, renderers)
        except Exception as exc:  # noqa: BLE001 - the same refusal is the same answer
            return type(exc).__name__
        return type(renderer).__name__, media_type

    assert pick(JSONFirstNegotiation()) == pick(DefaultContentNegotiation())


def test_the_suggest_endpoint_still_serves_the_browsable_api_when_asked(api, published):
    response = api.get(SUGGEST, {"q": "usb"}, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


# -- the search answer built by hand ------------------------------------------------------


@pytest.mark.parametrize("q", ["usb", "anker cable under 20", "zzzz", "hub"])
def test_the_hand_built_search_answer_equals_the_serializers(q, products):
    from suggestions.api.serializers import SearchResponseSerializer, search_response

    page = services.search(q)

    assert json.dumps(search_response(page)) == json.dumps(SearchResponseSerializer(page).data)


def test_the_hand_built_search_answer_covers_every_field():
    from suggestions.adapter import ProductDocument
    from suggestions.api.serializers import SearchResponseSerializer, search_response
    from suggestions.nlp.types import Entity, Understanding
    from suggestions.refinements import Refinement

    page = services.SearchPage(
        query="hp prnter", request_id="ab" * 16, total=2, page=1, page_size=20,
        results=[services.ProductResult(ProductDocument(id="7", title="HP LaserJet", brand="HP", product_type="printer",
                                                        price=129.5, url="/p/7", image_url="/i/7.png"), 3.25, 0),
                 services.ProductResult(ProductDocument(id="8", title="Toner"), 1, 1)],
        brand_counts={"HP": 1, "": 1}, degraded=True,
        understanding=Understanding(query="hp prnter", language="en", intent="product_search", confidence=0.5,
                                    entities=(Entity("brand", "hp", 0, 2, "HP", 0.9),), source="model:3"),
        degraded_reasons=("task_queue", "dense"), corrected_query="hp printer",
        refinements=(Refinement("hp printer ink", "generated", "refinement"),),
    )

    assert json.dumps(search_response(page)) == json.dumps(SearchResponseSerializer(page).data)


@settings_hypothesis(max_examples=400, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["q", "page", "origin", "page_size", "brand", "exact"]),
                                st.one_of(_PARAM_TEXT, st.sampled_from(["typed", "suggestion", "refinement",
                                                                        "history", "499", "500", "501"]))),
                      max_size=4))
def test_the_plain_search_shortcut_agrees_with_the_serializer(pairs):
    from django.http import QueryDict

    from suggestions.api.serializers import SearchQuerySerializer, plain_search_params

    params = QueryDict(mutable=True)
    for key, value in pairs:
        params.appendlist(key, value)
    fast = plain_search_params(params)
    serializer = SearchQuerySerializer(data=params)
    if fast is not None:
        assert serializer.is_valid(), (pairs, serializer.errors)
        assert fast == dict(serializer.validated_data)


@pytest.mark.parametrize("query, expected", [
    ("q=usb", {"page": 1, "origin": "typed"}),
    ("q=usb+hub&page=3&origin=suggestion", {"page": 3, "origin": "suggestion"}),
])
def test_plain_search_requests_take_the_shortcut(query, expected):
    from django.http import QueryDict

    from suggestions.api.serializers import plain_search_params

    data = plain_search_params(QueryDict(query))
    assert data is not None and {k: data[k] for k in expected} == expected


# -- the plain events shortcut ------------------------------------------------------------

_IDS = st.sampled_from([REQUEST_ID, str(uuid.UUID(REQUEST_ID)), REQUEST_ID.upper(), "{" + REQUEST_ID + "}",
                        "urn:uuid:" + str(uuid.UUID(REQUEST_ID)), REQUEST_ID[:-1] + "g", "", 5, None,
                        str(uuid.UUID(REQUEST_ID)).replace("-", "", 1) + "-"])
_POSITIONS = st.sampled_from([0, 5, 99, 100, -1, 1.0, 2.5, "3", True, None])
_TEXTS = st.one_of(_PARAM_TEXT, st.sampled_from([None, 7, ["x"]]))
_LISTS = st.one_of(st.lists(_TEXTS, max_size=3), st.sampled_from(["usb", None, [], ["a"] * 51]))


_FIELDS = {
    "impression": ("prefix", "suggestions"), "suggestion_click": ("prefix", "suggestion", "position"),
    "product_click": ("query", "product_id", "position"), "refinement_impression": ("query", "refinements"),
    "refinement_click": ("query", "refinement", "position"),
}
_VALUES = {"position": _POSITIONS, "suggestions": _LISTS, "refinements": _LISTS}


@st.composite
def _events(draw):
    kind = draw(st.sampled_from([*_FIELDS, "bogus", 3]))
    event = {"type": kind, "request_id": draw(st.one_of(st.just(REQUEST_ID), _IDS))}
    # Mostly the type's own fields with plausible values (the shortcut's cases), sometimes
    # one missing, sometimes another type's field or an unknown one.
    for key in _FIELDS.get(kind, ("prefix",)):
        if draw(st.integers(0, 9)):
            plain = st.just(3) if key == "position" else st.just(["usb hub"]) if key in _VALUES else st.just("usb")
            event[key] = draw(st.one_of(plain, _VALUES.get(key, _TEXTS)))
    if not draw(st.integers(0, 4)):
        event[draw(st.sampled_from(["extra", "query", "prefix", "position"]))] = draw(_TEXTS)
    return event


@settings_hypothesis(max_examples=500, deadline=None)
@given(body=st.one_of(st.fixed_dictionaries({"events": st.lists(_events(), max_size=3)}),
                      st.sampled_from([[], None, {"events": "x"}, {"other": []}])))
def test_the_plain_events_shortcut_agrees_with_the_serializer(body):
    from suggestions.api.serializers import EventsBatchSerializer, plain_events

    fast = plain_events(body)
    serializer = EventsBatchSerializer(data=body)
    if fast is not None:
        assert serializer.is_valid(), (body, serializer.errors)
        assert fast == [dict(e) for e in serializer.validated_data["events"]]


def test_the_storefronts_batches_take_the_events_shortcut():
    from suggestions.api.serializers import plain_events

    body = {"events": [impression(), suggestion_click(), product_click(query=""),
                       {"type": "refinement_impression", "request_id": str(uuid.UUID(REQUEST_ID)), "query": "usb",
                        "refinements": ["usb hub"]},
                       {"type": "refinement_click", "request_id": REQUEST_ID, "query": "usb",
                        "refinement": "usb hub", "position": 0}]}
    events = plain_events(body)

    assert events is not None and [e["type"] for e in events] == [e["type"] for e in body["events"]]
    assert {e["request_id"] for e in events} == {REQUEST_ID}
