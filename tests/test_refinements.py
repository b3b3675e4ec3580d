"""Refinement chips and zero-result rewrites (suggestions/refinements.py): the
``refinements`` of ``search/``, their approval and blocked terms at once, the
rewrites of a search that finds nothing, chip events, the storefront's chips
and "No results for …; try …", approved generated completions in ``suggest/``,
and the suggestion ranker learning from searches started from a chip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from suggestions import services, serving, spelling
from suggestions.models import (
    BlockedTerm,
    EventSurface,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)
from suggestions.refinements import refinements_for
from tests.factories import ProductFactory
from tests.factories_suggestions import SuggestionFactory

pytestmark = pytest.mark.django_db

SEARCH_API = reverse("suggestions:search")
SUGGEST_API = reverse("suggestions:suggest")
EVENTS_API = reverse("suggestions:events")
STOREFRONT = reverse("search")


def generated(text: str, seed: str, *, status: str = "approved", score: float = 0.5, results: int = 4,
              weight: float = 1.0) -> Suggestion:
    """A generated refinement, as the generator stores it (the contract of its provenance)."""
    return SuggestionFactory(text=text, source="generated", status=status, weight=weight,
                             provenance={"seed_query": seed, "results": results, "score": score,
                                         "model_version": "generator-test"})


@pytest.fixture(autouse=True)
def _fresh_spelling():
    spelling.reset()
    yield
    spelling.reset()


@pytest.fixture
def shop():
    """Running shoes and socks, indexed, with approved and pending suggestions, published."""
    for title, brand in [("Nike Pegasus running shoes men", "Nike"), ("Nike Vomero running shoes women", "Nike"),
                         ("Asics Gel running shoes waterproof", "Asics"), ("Asics trail running shoes", "Asics"),
                         ("Falke running socks", "Falke")]:
        ProductFactory(title=title, brand=brand, product_type="running shoes", description="")
    services.rebuild_index()
    for text, source, weight in [("running shoes", "history", 90), ("running shoes men", "history", 60),
                                 ("nike running shoes", "catalog", 70), ("running socks", "history", 80),
                                 ("shoes", "catalog", 50), ("running shoes women", "manual", 40)]:
        SuggestionFactory(text=text, source=source, weight=weight)
    SuggestionFactory(text="running shoes kids", source="history", status="pending", weight=99)
    SuggestionFactory(text="running shoes cheap", source="history", status="rejected", weight=98)
    generated("running shoes waterproof", "running shoes", score=0.9)
    generated("asics running shoes trail", "running shoes", score=0.7)
    generated("trail running shoes", "running shoes", status="pending", score=0.95)
    services.publish_suggestions()


def refinements(client, q: str, **params) -> list[dict]:
    response = client.get(SEARCH_API, {"q": q, **params})
    assert response.status_code == 200
    return response.json()["refinements"]


# -- search/ ---------------------------------------------------------------------------------


def test_search_returns_generated_then_mined_refinements_with_all_the_words_plus_more(client, shop):
    got = refinements(client, "Running  Shoes")

    assert got == [
        {"text": "running shoes waterproof", "source": "generated", "kind": "refinement"},
        {"text": "asics running shoes trail", "source": "generated", "kind": "refinement"},
        {"text": "nike running shoes", "source": "catalog", "kind": "refinement"},
        {"text": "running shoes men", "source": "history", "kind": "refinement"},
        {"text": "running shoes women", "source": "manual", "kind": "refinement"},
    ]


def test_a_generated_refinement_for_the_query_is_offered_without_holding_its_words(client, shop):
    generated("trainers for running", "running shoes", score=0.99)
    services.invalidate_cache()

    got = [r["text"] for r in refinements(client, "running shoes")]

    assert got[0] == "trainers for running"
    # Seeded for another query, it refines this one only if it holds all its words.
    generated("marathon flats", "racing shoes", score=1.0)
    services.invalidate_cache()
    assert "marathon flats" not in [r["text"] for r in refinements(client, "running shoes")]


def test_refinements_follow_approval_and_blocked_terms_at_once(client, shop, django_capture_on_commit_callbacks):
    assert "trail running shoes" not in [r["text"] for r in refinements(client, "running shoes")]

    with django_capture_on_commit_callbacks(execute=True):
        services.set_suggestion_status(Suggestion.objects.filter(text="trail running shoes"), "approved")
    assert [r["text"] for r in refinements(client, "running shoes")][0] == "trail running shoes"

    with django_capture_on_commit_callbacks(execute=True):
        services.set_suggestion_status(Suggestion.objects.filter(text="trail running shoes"), "rejected")
        services.block_suggestions(Suggestion.objects.filter(text="nike running shoes"))
    texts = [r["text"] for r in refinements(client, "running shoes")]
    assert "trail running shoes" not in texts and "nike running shoes" not in texts

    # A blocked term hides every refinement holding it, although the suggestion stays approved.
    with django_capture_on_commit_callbacks(execute=True):
        services.block_text("waterproof")
    assert Suggestion.objects.get(text="running shoes waterproof").status == "approved"
    assert BlockedTerm.objects.filter(pattern="waterproof").exists()
    assert "running shoes waterproof" not in [r["text"] for r in refinements(client, "running shoes")]


def test_chinese_refinements_need_no_spaces(client, shop):
    for text, weight in [("跑鞋男", 30), ("跑鞋 透气", 20), ("跑步机", 40), ("男跑鞋", 10)]:
        SuggestionFactory(text=text, source="history", weight=weight)
    services.invalidate_cache()
    assert [r.text for r in refinements_for("跑鞋", found=3)] == ["跑鞋男", "跑鞋 透气", "男跑鞋"]
    assert [r.text for r in refinements_for("跑鞋男", found=3)] == []  # the same words, nothing more


def test_refinements_are_cached_per_version_and_cost_no_query_when_repeated(shop, django_assert_num_queries):
    first = refinements_for("running shoes", found=4)
    with django_assert_num_queries(0):
        assert refinements_for("running shoes", found=4) == first
    Suggestion.objects.filter(text="running shoes men").update(status="rejected")
    assert refinements_for("running shoes", found=4) == first  # same version: the cached answer
    services.invalidate_cache()  # what every moderation change does on commit
    assert "running shoes men" not in [r.text for r in refinements_for("running shoes", found=4)]


def test_the_word_index_answers_as_the_scan_does_and_is_read_once_per_version(shop, django_assert_num_queries):
    from suggestions import refinements as module

    for text, weight in [("men running shoes trail", 30), ("running", 20), ("socks", 10), ("running shoe", 35)]:
        SuggestionFactory(text=text, source="history", weight=weight)
    version = serving._current_version()
    for query in ["running shoes", "running", "shoes", "socks", "running shoes men", "nothing like it"]:
        module.reset_word_index()
        module._word_index(version, build=True)
        indexed = module._candidates(query, 100, version=version)  # more than there are: nothing cut
        scanned = [c for c in module._candidates(query, 100) if c[2] or module._refines(c[0], query.split())]
        assert indexed == scanned, query
        assert indexed or query == "nothing like it"
    # A version's first answers scan; then it builds its index and scans no more.
    module.reset_word_index()
    serving.blocked_matcher(version)  # read once per version, not part of what is counted
    queries = [f"running {n}" for n in range(module.SCANS_BEFORE_INDEX)]
    for query in queries:
        with django_assert_num_queries(2):  # the generated refinements of the query, and the scan
            refinements_for(query, found=4)
    refinements_for("shoes", found=4)  # builds the index: one more query
    with django_assert_num_queries(1):  # the generated refinements of the query; no scan of the texts
        assert [r.text for r in refinements_for("running", found=4)][:1] == ["running shoes"]
    SuggestionFactory(text="running tights", source="history", weight=500)
    services.invalidate_cache()  # a new version: scans again, then a new index
    assert refinements_for("running", found=4)[0].text == "running tights"


def test_rewrites_of_the_shoppers_own_words_stay_out_of_the_shared_cache(shop):
    import hashlib

    from django.core.cache import cache

    def key(query: str, zero: bool) -> str:
        digest = hashlib.blake2b(query.encode(), digest_size=16).hexdigest()
        return f"shop_suggestions:{serving._current_version()}:refinements:default:8:{int(zero)}:{digest}"

    refinements_for("socks qqq", found=0)
    refinements_for("running shoes", found=4)
    assert cache.get(key("socks qqq", True)) is None
    assert ("running shoes men", "history", "refinement") in [tuple(r) for r in cache.get(key("running shoes", False))]
    assert ("socks", "query", "rewrite") in [(r.text, r.source, r.kind) for r in refinements_for("socks qqq", found=0)]


def test_the_best_scored_generated_refinement_leads_however_many_there_are(shop):
    for n in range(12):
        generated(f"running shoes size {40 + n}", "running shoes", score=n / 100)
    services.invalidate_cache()
    assert [r.text for r in refinements_for("running shoes", found=4, limit=1)] == ["running shoes waterproof"]
    Suggestion.objects.filter(text="running shoes waterproof").update(status="rejected")
    Suggestion.objects.filter(text="asics running shoes trail").update(status="rejected")
    services.invalidate_cache()
    assert [r.text for r in refinements_for("running shoes", found=4, limit=2)] == [
        "running shoes size 51", "running shoes size 50"]


def test_refinements_limit_and_switch(client, shop, settings):
    settings.SUGGESTIONS_REFINEMENTS_LIMIT = 2
    assert [r["text"] for r in refinements(client, "running shoes")] == [
        "running shoes waterproof", "asics running shoes trail"]
    settings.SUGGESTIONS_REFINEMENTS = False
    assert refinements(client, "running shoes") == []


def test_filter_only_and_punctuation_searches_have_no_refinements(client, shop):
    assert refinements(client, "", brand="Nike") == []
    assert refinements(client, "!!!") == []


def test_the_schema_documents_refinements_and_chip_events():
    schema = APIClient().get(reverse("suggestions:schema"), {"format": "json"}).json()
    components = schema["components"]["schemas"]
    search = components["SearchResponse"]
    assert "refinements" in search["required"]
    refinement = components["Refinement"]
    assert set(refinement["properties"]) == {"text", "source", "kind"}
    mapping = components["Event"]["discriminator"]["mapping"]
    assert {"refinement_impression", "refinement_click"} <= set(mapping)
    origins = {p["name"]: p for p in schema["paths"][SEARCH_API]["get"]["parameters"]}["origin"]["schema"]["enum"]
    assert "refinement" in origins


# -- zero-result rewrites ----------------------------------------------------------------------


def test_a_search_that_finds_nothing_gets_rewrites_that_find_products(client, shop):
    services.build_suggestions(publish=False)  # the spelling dictionary, from the catalog
    generated("trail shoes asics", "trainers xyz", score=0.8)  # approved, for the zero-result seed
    generated("qqq zzz", "trainers xyz", score=0.9)  # finds nothing either: never offered
    services.publish_suggestions()
    response = client.get(SEARCH_API, {"q": "trainers xyz"})
    assert response.json()["total"] == 0
    rewrites = response.json()["refinements"]
    assert rewrites[0] == {"text": "trail shoes asics", "source": "generated", "kind": "rewrite"}
    assert "qqq zzz" not in [r["text"] for r in rewrites]

    misspelt = client.get(SEARCH_API, {"q": "runing shoez", "exact": "true"}).json()
    texts = {r["text"]: r for r in misspelt["refinements"]}
    assert misspelt["total"] == 0
    assert texts["running shoes"]["source"] == "spelling"
    assert all(r["kind"] == "rewrite" for r in misspelt["refinements"])
    for r in rewrites + misspelt["refinements"]:
        assert client.get(SEARCH_API, {"q": r["text"], "exact": "true"}).json()["total"] > 0, r


def test_rewrites_drop_a_word_only_when_that_finds_products(shop):
    from suggestions.refinements import _rewrites

    rows, complete = _rewrites("socks qqq", ["socks", "qqq"], [], 8, "default")
    assert complete and ("socks", "query", "rewrite") in rows
    assert ("qqq", "query", "rewrite") not in rows


def test_rewrites_never_offer_what_is_not_approved_now(client, shop, monkeypatch):
    monkeypatch.setattr(spelling, "correct", lambda text: None)  # the engine's completions only
    answer = client.get(SEARCH_API, {"q": "runnin"}).json()
    assert answer["total"] == 0
    assert {"text": "running socks", "source": "history", "kind": "rewrite"} in answer["refinements"]

    Suggestion.objects.filter(text="running socks").update(status="rejected")  # the engine still has it
    services.invalidate_cache()
    texts = [r["text"] for r in refinements(client, "runnin")]
    assert "running socks" not in texts and "running shoes" in texts


# -- chip events -------------------------------------------------------------------------------


def test_chip_impressions_and_clicks_are_stored_counted_and_kept_out_of_typeahead_analytics(client, shop):
    answer = client.get(SEARCH_API, {"q": "running shoes"}).json()
    shown = [r["text"] for r in answer["refinements"]]
    response = client.post(EVENTS_API, {"events": [
        {"type": "refinement_impression", "request_id": answer["request_id"], "query": "running shoes",
         "refinements": shown},
        {"type": "refinement_click", "request_id": answer["request_id"], "query": "running shoes",
         "refinement": shown[0], "position": 0},
    ]}, content_type="application/json")

    assert response.status_code == 202 and response.json() == {"accepted": 2, "ignored": 0}
    impression = SuggestionImpression.objects.get()
    assert (impression.surface, impression.prefix, impression.suggestions) == (
        EventSurface.REFINEMENTS, "running shoes", shown)
    click = SuggestionClick.objects.get()
    assert (click.surface, click.suggestion, click.position) == (EventSurface.REFINEMENTS, shown[0], 0)
    stats = services.chip_stats()
    assert (stats[shown[0]].shown, stats[shown[0]].clicked, stats[shown[1]].clicked) == (1, 1, 0)
    assert stats[shown[0]].click_through == 1.0

    # The typeahead's analytics count its own lists only.
    client.post(EVENTS_API, {"events": [
        {"type": "impression", "request_id": answer["request_id"], "prefix": "run", "suggestions": ["running shoes"]},
    ]}, content_type="application/json")
    from suggestions.analytics import rollup_day
    from suggestions.models import AnalyticsDay

    rollup_day(timezone.localdate())
    day = AnalyticsDay.objects.get(date=timezone.localdate())
    assert (day.impressions, day.suggestions_shown, day.suggestion_clicks) == (1, 1, 0)


def test_bad_chip_events_are_refused_and_nothing_is_stored(client, shop):
    response = client.post(EVENTS_API, {"events": [
        {"type": "refinement_click", "request_id": "0" * 32, "query": "running shoes", "position": 0},
    ]}, content_type="application/json")
    assert response.status_code == 400 and "refinement" in response.json()["events"]["0"]
    response = client.post(EVENTS_API, {"events": [
        {"type": "refinement_impression", "request_id": "0" * 32, "query": "", "refinements": ["x"]},
    ]}, content_type="application/json")
    assert response.status_code == 400
    assert not SuggestionClick.objects.exists() and not SuggestionImpression.objects.exists()


def test_erasure_reaches_chip_events(client, shop):
    client.get(SEARCH_API, {"q": "running"})  # the shopper cookie
    answer = client.get(SEARCH_API, {"q": "running shoes"}).json()
    client.post(EVENTS_API, {"events": [
        {"type": "refinement_click", "request_id": answer["request_id"], "query": "running shoes",
         "refinement": "running shoes men", "position": 3}]}, content_type="application/json")
    assert SuggestionClick.objects.filter(surface="refinements").exclude(actor_hash="").exists()
    client.delete(reverse("suggestions:history"))
    assert not SuggestionClick.objects.exists()


# -- the storefront ------------------------------------------------------------------------------


def test_storefront_shows_chips_that_search_with_origin_refinement(client, shop):
    page = client.get(STOREFRONT, {"q": "running shoes"})
    html = page.content.decode()

    chips = [r["text"] for r in page.context["refinements"]]
    assert chips[:2] == ["running shoes waterproof", "asics running shoes trail"]
    assert 'class="refinements"' in html and "data-shop-refinements" in html
    assert f'data-request-id="{page.context["search"].request_id}"' in html
    assert html.index('class="refinements"') < html.index('class="product-grid"')
    first = page.context["refinements"][0]
    assert first["url"] == "?q=running+shoes+waterproof&origin=refinement"
    assert f'href="{first["url"]}"' in html.replace("&amp;", "&")

    client.get(STOREFRONT + first["url"])  # no script needed: a chip is a link
    event = SearchEvent.objects.order_by("-created_at").first()
    assert (event.normalized_query, event.origin) == ("running shoes waterproof", "refinement")


def test_storefront_zero_result_page_offers_rewrites(client, shop):
    services.build_suggestions()
    page = client.get(STOREFRONT, {"q": "runnin sokcs", "exact": "1"})
    html = " ".join(page.content.decode().split())

    assert page.context["search"].total == 0
    assert 'class="refinements"' not in html
    assert "No results for <q>runnin sokcs</q>; try " in html
    rewrites = [r["text"] for r in page.context["refinements"]]
    assert "running socks" in rewrites
    assert 'href="?q=running+socks&amp;origin=refinement"' in html


def test_storefront_without_refinements_shows_no_chip_bar(client, shop):
    page = client.get(STOREFRONT, {"q": "falke"})
    assert page.context["search"].total == 1 and page.context["refinements"] == []
    assert 'class="refinements"' not in page.content.decode()


# -- suggest/ and the ranker -------------------------------------------------------------------


def test_approving_a_generated_suggestion_serves_it_as_a_completion_at_once(
        client, shop, django_capture_on_commit_callbacks):
    def completions() -> list[tuple[str, str]]:
        items = client.get(SUGGEST_API, {"q": "trail run"}).json()["suggestions"]
        return [(i["text"], i["source"]) for i in items]

    assert completions() == []
    with django_capture_on_commit_callbacks(execute=True):  # the publish of suggestions_changed
        services.set_suggestion_status(Suggestion.objects.filter(text="trail running shoes"), "approved")
    assert completions() == [("trail running shoes", "generated")]
    assert ("trail running shoes", 1.0, "generated") in [
        (e.text, e.weight, e.source) for e in serving.served_entries()]


def test_searches_started_from_a_chip_label_generated_candidates_for_the_ranker(shop):
    from suggestions.learning import KINDS
    from suggestions.ml.suggestion_ranker import Search, TrainParams, training_groups

    kind = KINDS["suggestion_ranker"]
    assert kind.catalog()["running shoes waterproof"] == 4  # its result count
    assert kind.catalog_weights()["running shoes waterproof"] == 1.0
    assert "trail running shoes" not in kind.catalog()  # pending

    now = timezone.now()
    for n in range(6):
        services.search("running shoes", user=None, session_key=f"shopper:{n}")
        services.search("running shoes waterproof", origin="refinement", session_key=f"shopper:{n}")
    searches = kind.searches()
    assert sum(s.query == "running shoes waterproof" for s in searches) == 6
    # Older searches give the features; the chip searches are the labels.
    older = [Search(s.query, s.actor, now - timedelta(days=3)) for s in searches if s.query == "running shoes"]
    chip = [Search(s.query, s.actor, now) for s in searches if s.query == "running shoes waterproof"]
    x, y, groups = training_groups(older + chip, lambda part: kind.stats(part, kind.catalog()),
                                   TrainParams(feature_share=0.5))
    assert groups and int(y.sum()) == len(groups)  # one positive per group: the chip's text


# -- outages -----------------------------------------------------------------------------------


def test_refinements_are_answered_while_the_cache_is_down(shop, settings):
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}}
    texts = [r.text for r in refinements_for("running shoes", found=4)]
    assert texts[:2] == ["running shoes waterproof", "asics running shoes trail"]


def test_a_search_with_the_engine_down_keeps_its_mined_refinements_and_offers_no_rewrite(shop, monkeypatch):
    from suggestions.recall import RecallUnavailable, get_backend

    backend = get_backend()

    def down(*args, **kwargs):
        raise RecallUnavailable("down")

    monkeypatch.setattr(backend, "search_products", down)
    monkeypatch.setattr(backend, "suggest", down)
    assert "nike running shoes" in [r.text for r in refinements_for("running shoes", found=2)]
    assert refinements_for("runnin", found=0) == []
    monkeypatch.undo()
    # Not cached while down: the rewrites come back with the engine.
    assert refinements_for("runnin", found=0) != []
