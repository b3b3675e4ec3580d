"""Suggestions v1: mining, gates, moderation effects, ranking, typos, caching, degradation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from suggestions import services
from suggestions.history import ImportedSearch, actor_hash, import_searches
from suggestions.models import (
    BlockedTerm,
    SearchEvent,
    Suggestion,
    SuggestionSource,
    SuggestionStatus,
)

pytestmark = pytest.mark.django_db


def searched(query: str, users: int, *, days_ago: float = 0, prefix: str = "u") -> None:
    """``users`` distinct shoppers searched ``query``, ``days_ago`` days ago."""
    when = timezone.now() - timedelta(days=days_ago)
    import_searches([ImportedSearch(user=f"{prefix}{i}", query=query, time=when) for i in range(users)])


def texts(result) -> list[str]:
    return [item.text for item in result.items]


def build() -> None:
    services.build_suggestions(include_catalog=False)


def test_history_suggestions_need_k_distinct_users(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    searched("call of duty", 3)
    searched("call of duty 4", 2)
    build()
    assert texts(services.suggest("cal", limit=5)) == ["call of duty"]


def test_one_user_searching_many_times_does_not_pass_the_gate():
    import_searches([ImportedSearch(user="same", query="my secret project", time=timezone.now() - timedelta(minutes=i))
                     for i in range(10)])
    build()
    assert texts(services.suggest("my", limit=5)) == []


def test_private_queries_never_become_suggestions():
    searched("jane@example.com", 5)
    searched("4111 1111 1111 1111", 5)
    build()
    assert not Suggestion.objects.exists()


def test_popularity_with_time_decay_orders_completions(settings):
    settings.SUGGESTIONS_DECAY_HALF_LIFE_DAYS = 7
    searched("halo 3", 10, days_ago=60)  # many searches, long ago
    searched("halo reach", 4, days_ago=0, prefix="v")  # fewer, recent
    build()
    assert texts(services.suggest("halo", limit=5)) == ["halo reach", "halo 3"]


def test_typo_tolerance_from_four_characters():
    searched("gears of war", 3)
    build()
    result = services.suggest("gears of wra", limit=5)
    assert texts(result) == ["gears of war"]
    assert result.items[0].fuzzy
    # Three characters: no edit allowed.
    assert texts(services.suggest("gae", limit=5)) == []


def test_blocked_terms_never_appear_even_when_blocked_after_publish():
    searched("dead space", 3)
    searched("dead rising", 3, prefix="v")
    build()
    assert set(texts(services.suggest("dead", limit=5))) == {"dead space", "dead rising"}
    BlockedTerm.objects.create(pattern="space", kind="word")
    services.invalidate_cache()
    assert texts(services.suggest("dead", limit=5)) == ["dead rising"]


def test_rebuild_keeps_moderation_decisions():
    searched("fifa 12", 3)
    searched("fifa 11", 3, prefix="v")
    build()
    Suggestion.objects.filter(text="fifa 12").update(status=SuggestionStatus.REJECTED)
    build()
    assert Suggestion.objects.get(text="fifa 12").status == SuggestionStatus.REJECTED
    assert texts(services.suggest("fifa", limit=5)) == ["fifa 11"]


def test_pinned_suggestion_leads_for_its_prefix():
    searched("minecraft", 5)
    services.add_manual_suggestion("mine sweeper deluxe", weight=0.0, pinned_prefix="mine")
    build()
    assert texts(services.suggest("mine", limit=5))[0] == "mine sweeper deluxe"
    assert texts(services.suggest("mine sw", limit=5)) == ["mine sweeper deluxe"]
    assert services.suggest("mine sw", limit=5).items[0].kind == "pinned"
    # "mines" is not a prefix of the pinned text: both match one edit away, by weight.
    mines = services.suggest("mines", limit=5).items
    assert [(i.text, i.kind, i.fuzzy) for i in mines] == [
        ("minecraft", "suggestion", True), ("mine sweeper deluxe", "suggestion", True)]
    # Shorter than the pinned prefix: ranked by weight only.
    assert texts(services.suggest("min", limit=5))[0] == "minecraft"


def test_manual_suggestions_survive_builds():
    services.add_manual_suggestion("gift cards")
    build()
    assert Suggestion.objects.get(text="gift cards").source == SuggestionSource.MANUAL
    assert texts(services.suggest("gift", limit=5)) == ["gift cards"]


def test_recent_searches_of_the_shopper_come_first():
    searched("batman arkham city", 5)
    build()
    user = get_user_model().objects.create_user("shopper")
    SearchEvent.objects.create(query="Batman lego", normalized_query="batman lego",
                               actor_hash=actor_hash(user=user), user=user)
    mine = services.suggest("bat", limit=5, user=user)
    assert [(i.text, i.kind) for i in mine.items] == [("batman lego", "recent"), ("batman arkham city", "suggestion")]
    # Nobody else sees it: it was searched by one user only.
    assert texts(services.suggest("bat", limit=5)) == ["batman arkham city"]


def test_limit_is_respected():
    for i in range(6):
        searched(f"star wars {i}", 3, prefix=f"p{i}-")
    build()
    assert len(services.suggest("star", limit=4).items) == 4


def test_answers_are_cached_and_invalidated_on_publish(django_assert_num_queries):
    searched("portal 2", 3)
    build()
    assert texts(services.suggest("port", limit=5)) == ["portal 2"]
    with django_assert_num_queries(0):  # served from the cache: no pinned lookup, no recents (anonymous)
        assert texts(services.suggest("port", limit=5)) == ["portal 2"]
    services.add_manual_suggestion("portable speaker", weight=100)
    services.publish_suggestions()
    assert texts(services.suggest("port", limit=5)) == ["portable speaker", "portal 2"]


@pytest.fixture
def product_factory():
    from catalog.models import Product

    counter = iter(range(10_000))

    def make(**fields):
        return Product.objects.create(source_id=f"t{next(counter)}", **fields)

    return make


def test_catalog_phrases_serve_a_shop_without_history(product_factory):
    for title, brand, ptype in [
        ("HP LaserJet Pro M404dn laser printer", "HP", "laser printer"),
        ("HP LaserJet Pro M428fdw laser printer", "HP", "laser printer"),
        ("HP LaserJet Pro M15w laser printer", "HP", "laser printer"),
        ("Xerox 006R90321 toner cartridge Black", "Xerox", "toner cartridge"),
        ("HP 85A toner cartridge Black", "HP", "toner cartridge"),
        ("Lexmark 08A0476 toner cartridge Black", "Lexmark", "toner cartridge"),
    ]:
        product_factory(title=title, brand=brand, product_type=ptype)
    report = services.build_suggestions()
    assert report.catalog > 0 and report.history == 0
    hp = texts(services.suggest("hp la", limit=8))
    assert "hp laserjet pro" in hp and "hp laser printer" in hp
    # The type first; the word alone ("toner", in three titles) may follow.
    assert texts(services.suggest("toner", limit=3))[0] == "toner cartridge"


def test_cache_down_degrades_instead_of_failing(settings):
    searched("skyrim", 3)
    build()
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}}
    result = services.suggest("sky", limit=5)
    assert result.degraded and result.degraded_reasons == ("cache",)
    assert texts(result) == ["skyrim"]


def test_backend_down_answers_from_the_database(settings):
    searched("rock band", 3)
    build()
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": {
        "BACKEND": "suggestions.recall.elasticsearch",
        "OPTIONS": {"HOSTS": ["http://127.0.0.1:1"], "TIMEOUT": 0.5}}}
    result = services.suggest("rock", limit=5)
    assert result.degraded and result.degraded_reasons == ("recall",)
    assert texts(result) == ["rock band"]


@pytest.mark.services
def test_real_redis_cache_serves_and_invalidates(settings, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": "test-suggest"}}
    from django.core.cache import cache

    cache.clear()
    searched("mass effect", 3)
    build()
    assert texts(services.suggest("mass", limit=5)) == ["mass effect"]
    assert any(":" in k for k in cache.keys("*shop_suggestions*"))  # the answer is in Redis
    services.add_manual_suggestion("massage chair", weight=50)
    services.publish_suggestions()
    assert texts(services.suggest("mass", limit=5)) == ["massage chair", "mass effect"]
    cache.clear()


def test_a_typed_trailing_space_ends_the_word():
    searched("hpe proliant", 3)
    searched("hp envy", 3, prefix="v")
    build()
    assert set(texts(services.suggest("hp", limit=5))) == {"hpe proliant", "hp envy"}
    assert texts(services.suggest("hp ", limit=5)) == ["hp envy"]


def test_other_processes_changes_show_within_the_local_cache_delay(settings, monkeypatch):
    from types import SimpleNamespace

    from django.core.cache import cache

    from suggestions import serving
    from suggestions.recall import get_backend
    from suggestions.serving import VERSION_KEY, served_entries

    # The memo's clock is driven by the test: no sleep racing the delay.
    now = [1000.0]
    monkeypatch.setattr(serving, "time", SimpleNamespace(monotonic=lambda: now[0]))
    settings.SUGGESTIONS_LOCAL_CACHE_SECONDS = 30
    searched("lego batman", 3)
    build()
    assert texts(services.suggest("lego", limit=5)) == ["lego batman"]
    # Another process publishes: new suggestions in the engine, a new shared version.
    Suggestion.objects.create(text="lego star wars", source="manual", weight=100)
    get_backend().replace_suggestions(served_entries())
    cache.set(VERSION_KEY, "from-another-process", timeout=None)
    now[0] += 29.9
    assert texts(services.suggest("lego", limit=5)) == ["lego batman"]  # still this process's memo
    now[0] += 0.2  # past the delay since the version was last read
    assert texts(services.suggest("lego", limit=5)) == ["lego star wars", "lego batman"]


def test_one_edit_completions_only_mend_a_prefix_with_few_exact_ones(settings):
    for text in ("mouse", "mouse pad", "mousepad", "household battery"):
        searched(text, 3, prefix=text[:2])
    build()
    # "mouse" has three completions of its own: no "house…" one edit away.
    assert "household battery" not in texts(services.suggest("mouse", limit=8))
    # "mousr" has none: the one-edit ones mend it.
    assert texts(services.suggest("mousr", limit=8))[:1] == ["mouse"]
    settings.SUGGESTIONS_FUZZY_FILL_BELOW = 10
    services.invalidate_cache()
    assert "household battery" in texts(services.suggest("mouse", limit=8))
