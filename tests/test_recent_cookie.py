"""The shopper's recent searches travel in a signed cookie: a warm suggest
answer reads no database and makes at most one cache round trip (the
throttle's counter; none while the process holds the count in memory)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from suggestions import services
from suggestions.models import SearchEvent, Suggestion

pytestmark = pytest.mark.django_db

SUGGEST = "/api/suggestions/suggest/"
SEARCH = "/api/suggestions/search/"
COOKIE = "shop_suggestions_recent"


@pytest.fixture
def shop():
    for text, weight in (("halo 3", 9), ("halo reach", 8), ("gears of war", 7)):
        Suggestion.objects.create(text=text, source="history", status="approved", weight=weight)
    services.publish_suggestions()


def shopper() -> Client:
    client = Client()
    client.get(SUGGEST, {"q": "x"})  # the first answer hands out the shopper cookie
    assert client.cookies.get("shop_suggestions_shopper")
    return client


def items(client: Client, q: str) -> list[tuple[str, str]]:
    return [(i["text"], i["kind"]) for i in client.get(SUGGEST, {"q": q}).json()["suggestions"]]


def test_a_warm_answer_touches_no_database_and_the_cache_once(shop, cache_calls):
    client = shopper()
    client.get(SEARCH, {"q": "halo reach"})  # the shopper has history: it is in their cookie now
    for _ in range(2):
        client.get(SUGGEST, {"q": "hal"})  # warms the answer memo and the version
    cache_calls.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(SUGGEST, {"q": "hal"})
    assert response.status_code == 200
    assert response.json()["suggestions"][0] == {"text": "halo reach", "kind": "recent", "source": "recent",
                                                 "fuzzy": False}
    assert [q["sql"] for q in queries.captured_queries] == []
    # The throttle counts in memory (SUGGESTIONS_THROTTLE_LOCAL_SHARE): not even its counter.
    assert cache_calls == []


def test_a_warm_answer_counts_in_the_cache_once_without_a_local_share(shop, cache_calls, settings):
    settings.SUGGESTIONS_THROTTLE_LOCAL_SHARE = 0
    client = shopper()
    client.get(SEARCH, {"q": "halo reach"})
    for _ in range(2):
        client.get(SUGGEST, {"q": "hal"})
    cache_calls.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(SUGGEST, {"q": "hal"}).status_code == 200
    assert queries.captured_queries == []
    assert cache_calls == ["incr"]  # the throttle's counter, and nothing else


def test_a_cookie_less_warm_answer_is_as_cheap(shop, cache_calls):
    client = Client()
    client.get(SUGGEST, {"q": "hal"})
    client.cookies.clear()
    cache_calls.clear()
    with CaptureQueriesContext(connection) as queries:
        assert Client().get(SUGGEST, {"q": "hal"}).status_code == 200
    assert queries.captured_queries == [] and cache_calls == []


def test_history_is_read_once_then_the_cookie_answers(shop):
    client = shopper()
    client.get(SEARCH, {"q": "gears of war"})
    client.cookies.pop(COOKIE)  # e.g. the cookie expired: the history still has the search
    with CaptureQueriesContext(connection) as first:
        assert ("gears of war", "recent") in items(client, "gea")
    assert any("searchevent" in q["sql"] for q in first.captured_queries)
    assert client.cookies.get(COOKIE)
    with CaptureQueriesContext(connection) as second:
        assert ("gears of war", "recent") in items(client, "gear")
    assert not any("searchevent" in q["sql"] for q in second.captured_queries)


def test_a_shopper_without_history_gets_an_empty_cookie_and_no_more_reads(shop):
    client = shopper()
    client.get(SUGGEST, {"q": "hal"})
    assert client.cookies.get(COOKIE)
    with CaptureQueriesContext(connection) as queries:
        client.get(SUGGEST, {"q": "halo"})
    assert not any("searchevent" in q["sql"] for q in queries.captured_queries)


def test_another_shoppers_or_a_tampered_cookie_is_ignored(shop):
    alice, bob = shopper(), shopper()
    alice.get(SEARCH, {"q": "halo reach"})
    stolen = alice.cookies[COOKIE].value
    bob.cookies[COOKIE] = stolen  # a shared computer, a copied cookie
    assert ("halo reach", "recent") not in items(bob, "hal")
    alice.cookies[COOKIE] = stolen[:-3] + "abc"  # a forged signature: read from the history instead
    assert ("halo reach", "recent") in items(alice, "hal")


def test_erasure_deletes_the_cookie_with_the_history(shop):
    client = shopper()
    client.get(SEARCH, {"q": "halo reach"})
    assert client.delete("/api/suggestions/history/").status_code == 200
    assert client.cookies[COOKIE].value == ""
    assert ("halo reach", "recent") not in items(client, "hal")


def test_the_cookie_keeps_the_newest_distinct_searches_within_retention(shop, settings):
    settings.SUGGESTIONS_RECENT_COOKIE_SIZE = 3
    client = shopper()
    for q in ("halo 1", "halo 2", "halo 3", "halo 2", "halo 4"):
        client.get(SEARCH, {"q": q})
    assert [t for t, k in items(client, "halo") if k == "recent"] == ["halo 4", "halo 2", "halo 3"]
    # Older than retention: dropped when read (the history has nothing newer either).
    settings.SUGGESTIONS_HISTORY_RETENTION_DAYS = 1
    SearchEvent.objects.update(created_at=timezone.now() - timedelta(days=5))
    from suggestions import recent

    request = type("R", (), {"COOKIES": {COOKIE: client.cookies[COOKIE].value}})()
    actor = {"user": None, "session_key": f"shopper:{_shopper_id(client)}"}
    entries = recent.read(request, **actor)
    assert entries is not None and len(entries) == 3
    today = timezone.localdate().toordinal()
    stale = [[text, today - 5] for text, _day in entries]
    response = type("Resp", (), {"set_cookie": lambda self, name, value, **kw: setattr(self, "value", value)})()
    recent.write(response, stale, **actor)
    assert recent.read(type("R", (), {"COOKIES": {COOKIE: response.value}})(), **actor) == []


def _shopper_id(client: Client) -> str:
    from django.test import RequestFactory

    from suggestions.middleware import COOKIE_SALT

    request = RequestFactory().get("/")
    request.COOKIES = {"shop_suggestions_shopper": client.cookies["shop_suggestions_shopper"].value}
    return request.get_signed_cookie("shop_suggestions_shopper", salt=COOKIE_SALT)


def test_a_chinese_search_sets_cookies_a_browser_can_receive(shop):
    # HTTP headers are Latin-1: a cookie holding "打印机" as it is made the
    # storefront's own server fail the whole response (found in the browser).
    client = shopper()
    response = client.get(SEARCH, {"q": "打印机"})
    assert response.status_code == 200
    for morsel in response.cookies.values():
        morsel.OutputString().encode("latin-1")
    assert client.cookies.get(COOKIE)
    assert ("打印机", "recent") in items(client, "打")
