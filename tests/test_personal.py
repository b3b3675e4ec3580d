"""Personal re-ranking (suggestions/personal.py): profiles from a shopper's clicks
and understood searches, how they reorder that shopper's results and
suggestions, and that nothing changes without one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Product
from suggestions import personal, services
from suggestions.conf import app_settings
from suggestions.history import actor_hash
from suggestions.models import ProductClick, SearchEvent, ShopperProfile, Suggestion
from suggestions.nlp.gazetteer import build_gazetteer
from suggestions.text import hash_identifier

pytestmark = pytest.mark.django_db

SUGGEST = "/api/suggestions/suggest/"
SEARCH = "/api/suggestions/search/"
PROFILE_COOKIE = "shop_suggestions_profile"


@pytest.fixture
def shop():
    """Two laser toners whose searchable text is the same but for the brand field
    (so BM25 ties on "laser toner"), and one stapler of each brand."""
    made = {}
    for brand in ("Acme", "Zeta"):
        made[f"{brand} toner"] = Product.objects.create(title="Laser toner", brand=brand, product_type="toner cartridge")
        made[f"{brand} stapler"] = Product.objects.create(title=f"{brand} desk stapler", brand=brand,
                                                          product_type="stapler")
    services.rebuild_index()
    build_gazetteer(save=True)
    return {k: str(p.pk) for k, p in made.items()}


def click(product_id: str, **actor) -> None:
    services.record_events([{"type": "product_click", "request_id": uuid.uuid4().hex, "query": "stapler",
                             "product_id": product_id, "position": 0}], **actor)


def order(query: str, **kwargs) -> list[tuple[str, float]]:
    return [(r.document.id, r.score) for r in services.search(query, **kwargs).results]


def profile_row(session_key: str) -> ShopperProfile | None:
    return ShopperProfile.objects.filter(actor_hash=actor_hash(session_key=session_key)).first()


def brand_of(pid: str) -> str:
    return Product.objects.get(pk=pid).brand


# -- building the profile ---------------------------------------------------------------------


def test_the_profile_is_built_from_clicks_and_understood_searches(shop):
    services.search("zeta stapler", session_key="alice")
    row = profile_row("alice")
    assert row is not None  # the understanding named brand Zeta and type stapler
    assert row.brands == {"zeta": personal.SEARCH_WEIGHT}
    assert row.product_types == {"stapler": personal.SEARCH_WEIGHT}
    assert row.products == {}

    click(shop["Acme toner"], session_key="alice")
    row.refresh_from_db()
    assert set(row.brands) == {"zeta", "acme"}
    assert row.brands["acme"] == pytest.approx(personal.CLICK_WEIGHT)
    assert row.brands["zeta"] == pytest.approx(personal.SEARCH_WEIGHT, rel=1e-3)  # decayed by seconds only
    assert row.product_types["toner cartridge"] == pytest.approx(personal.CLICK_WEIGHT)
    assert row.products == {shop["Acme toner"]: pytest.approx(personal.CLICK_WEIGHT)}
    assert row.events == 2


def test_older_interests_decay_with_the_half_life(shop, settings):
    settings.SUGGESTIONS_PERSONALIZATION_HALF_LIFE_DAYS = 10
    start = timezone.now() - timedelta(days=10)
    with mock.patch("django.utils.timezone.now", return_value=start):
        click(shop["Acme stapler"], session_key="alice")
    click(shop["Zeta stapler"], session_key="alice")
    brands = profile_row("alice").brands
    assert brands["acme"] == pytest.approx(0.5, rel=1e-3) and brands["zeta"] == pytest.approx(1.0)
    assert services.shopper_profile(actor_hash(session_key="alice")).brands == pytest.approx(
        {"acme": 1 / 3, "zeta": 2 / 3}, rel=1e-3)


def test_a_search_without_brand_or_type_or_a_shopper_without_identity_stores_nothing(shop):
    services.search("laser", session_key="alice")  # no brand, no type understood
    click(shop["Acme toner"])  # nobody
    services.search("zeta stapler")  # nobody
    assert ShopperProfile.objects.count() == 0


def test_rebuilding_from_history_gives_the_live_profile(shop):
    services.search("zeta stapler", session_key="alice")
    click(shop["Acme toner"], session_key="alice")
    live = profile_row("alice")
    ShopperProfile.objects.all().delete()

    assert services.rebuild_profiles() == 1
    rebuilt = profile_row("alice")
    assert rebuilt.brands == pytest.approx(live.brands, rel=1e-3)
    assert rebuilt.product_types == pytest.approx(live.product_types, rel=1e-3)
    assert rebuilt.products == pytest.approx(live.products, rel=1e-3)


# -- search ------------------------------------------------------------------------------------


def test_the_shoppers_brand_comes_first_where_bm25_ties(shop):
    plain = order("laser toner")
    assert len(plain) == 2 and plain[0][1] == pytest.approx(plain[1][1])  # a tie
    second = plain[1][0]
    liked = f"{brand_of(second)} stapler"
    click(shop[liked], session_key="alice")  # alice likes the brand recall put second

    mine = order("laser toner", session_key="alice")
    assert [pid for pid, _s in mine] == [second, plain[0][0]]
    assert [pid for pid, _s in order("laser toner", session_key="bob")] == [pid for pid, _s in plain]


def test_a_much_better_text_match_stays_ahead_of_the_liked_brand(shop):
    click(shop["Zeta toner"], session_key="alice")
    # "acme stapler" matches the Acme stapler's title and brand; Zeta's only on "stapler".
    ids = [pid for pid, _s in order("acme stapler", session_key="alice")]
    assert ids[0] == shop["Acme stapler"]


def test_without_a_profile_the_order_is_exactly_unchanged(shop):
    plain = order("stapler")
    services.search("laser", session_key="carol")  # an identified shopper with no profile
    assert profile_row("carol") is None
    assert order("stapler", session_key="carol") == plain
    assert order("stapler", page=1, page_size=1, session_key="carol") == plain[:1]
    # An explicitly empty profile changes nothing either.
    assert order("stapler", profile=personal.Profile()) == plain


def test_with_the_setting_off_the_order_is_unchanged_and_no_profile_is_kept(shop, settings):
    plain = order("laser toner")
    click(shop[f"{brand_of(plain[1][0])} stapler"], session_key="alice")
    assert order("laser toner", session_key="alice") != plain
    settings.SUGGESTIONS_PERSONALIZATION = False
    assert order("laser toner", session_key="alice") == plain
    click(shop["Acme stapler"], session_key="dave")
    services.search("zeta stapler", session_key="dave")
    assert profile_row("dave") is None


def test_pages_are_cut_from_the_reranked_list(shop):
    plain = order("laser toner")
    click(shop[f"{brand_of(plain[1][0])} stapler"], session_key="alice")
    first = order("laser toner", page=1, page_size=1, session_key="alice")
    second = order("laser toner", page=2, page_size=1, session_key="alice")
    assert [pid for pid, _s in first + second] == [plain[1][0], plain[0][0]]


# -- erasure and retention ---------------------------------------------------------------------


def test_erasure_deletes_the_profile_and_the_cookie(shop):
    client = Client()
    client.get(SUGGEST, {"q": "x"})  # the shopper cookie
    client.get(SEARCH, {"q": "zeta stapler"})
    assert ShopperProfile.objects.count() == 1
    client.get(SEARCH, {"q": "stapler"})  # this answer read the profile and set the cookie
    assert client.cookies[PROFILE_COOKIE].value

    assert client.delete("/api/suggestions/history/").status_code == 200
    assert ShopperProfile.objects.count() == 0
    assert client.cookies[PROFILE_COOKIE].value == ""


def test_erasure_of_a_signed_in_user_and_deleting_the_user_reach_their_profile(shop):
    user = get_user_model().objects.create_user("erin", password="x")
    services.search("zeta stapler", user=user)
    assert ShopperProfile.objects.filter(actor_hash=actor_hash(user=user)).exists()
    services.erase_history(user=user)
    assert not ShopperProfile.objects.exists()

    services.search("zeta stapler", user=user)
    user.delete()
    assert not ShopperProfile.objects.exists()


def test_retention_deletes_old_profiles_and_rebuilds_the_others_without_old_events(shop):
    old = timezone.now() - timedelta(days=app_settings.HISTORY_RETENTION_DAYS + 1)
    with mock.patch("django.utils.timezone.now", return_value=old):
        click(shop["Acme stapler"], session_key="alice")  # only old events
        click(shop["Acme stapler"], session_key="bob")
    ProductClick.objects.update(created_at=old)
    click(shop["Zeta stapler"], session_key="bob")  # and a recent one
    assert set(profile_row("bob").brands) == {"acme", "zeta"}

    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f, **_: f()):
        counts = services.garbage_collect()

    assert counts["shopperprofile"] == 1
    assert profile_row("alice") is None
    bob = profile_row("bob")
    assert set(bob.brands) == {"zeta"} and set(bob.products) == {shop["Zeta stapler"]}


# -- suggestions -------------------------------------------------------------------------------


@pytest.fixture
def suggestions(shop):
    for text, weight in (("stapler acme", 9), ("stapler zeta", 8), ("stapler refill", 7)):
        Suggestion.objects.create(text=text, source="history", status="approved", weight=weight)
    services.publish_suggestions()


def shopper() -> Client:
    client = Client()
    client.get(SUGGEST, {"q": "x"})
    assert client.cookies.get("shop_suggestions_shopper")
    return client


def texts(client: Client, q: str) -> list[str]:
    return [i["text"] for i in client.get(SUGGEST, {"q": q}).json()["suggestions"] if i["kind"] != "recent"]


def test_suggestions_of_the_shoppers_brand_move_up_and_nobody_elses_change(suggestions):
    alice, bob = shopper(), shopper()
    plain = texts(bob, "stapl")
    assert plain == ["stapler acme", "stapler zeta", "stapler refill"]
    alice.get(SEARCH, {"q": "zeta stapler"})  # builds her profile
    alice.get(SEARCH, {"q": "desk"})  # reads it: the answer carries the cookie
    assert alice.cookies[PROFILE_COOKIE].value

    assert texts(alice, "stapl") == ["stapler zeta", "stapler acme", "stapler refill"]
    assert texts(bob, "stapl") == plain
    bob.cookies[PROFILE_COOKIE] = alice.cookies[PROFILE_COOKIE].value  # a copied cookie is not bob's
    assert texts(bob, "stapl") == plain


def test_suggestions_without_profile_or_with_the_setting_off_are_unchanged(suggestions, settings):
    alice = shopper()
    plain = texts(alice, "stapl")
    alice.get(SEARCH, {"q": "zeta stapler"})
    alice.get(SEARCH, {"q": "desk"})
    assert texts(alice, "stapl") != plain
    settings.SUGGESTIONS_PERSONALIZATION = False
    assert texts(alice, "stapl") == plain
    # A pinned suggestion keeps its place whatever the profile.
    items = [services.SuggestionItem("stapler acme", "pinned", "manual"),
             services.SuggestionItem("stapler acme pro", "suggestion", "history"),
             services.SuggestionItem("stapler zeta", "suggestion", "history")]
    liked = personal.Profile(brands={"zeta": 1.0})
    assert [i.text for i in personal.rerank_suggestions(items, liked)] == [
        "stapler acme", "stapler zeta", "stapler acme pro"]
    assert personal.rerank_suggestions(items, None) is items


def test_a_warm_personalised_answer_touches_no_database_and_no_cache(suggestions, cache_calls):
    alice = shopper()
    alice.get(SEARCH, {"q": "zeta stapler"})
    alice.get(SEARCH, {"q": "desk"})
    assert alice.cookies[PROFILE_COOKIE].value
    for _ in range(2):
        alice.get(SUGGEST, {"q": "stapl"})
    cache_calls.clear()
    with CaptureQueriesContext(connection) as queries:
        response = alice.get(SUGGEST, {"q": "stapl"})
    ordered = [i["text"] for i in response.json()["suggestions"] if i["kind"] != "recent"]
    assert ordered[0] == "stapler zeta"
    assert queries.captured_queries == []
    assert cache_calls == []  # the throttle counts in memory (SUGGESTIONS_THROTTLE_LOCAL_SHARE)


def test_search_reads_the_profile_with_one_indexed_query(shop):
    click(shop["Zeta stapler"], session_key="alice")
    with CaptureQueriesContext(connection) as queries:
        services.search("laser toner", session_key="alice")
    reads = [q["sql"] for q in queries.captured_queries
             if "shopperprofile" in q["sql"].lower() and q["sql"].lstrip().upper().startswith("SELECT")]
    # One read, for the ranking (the search names no brand or type: the receiver writes nothing).
    assert len(reads) == 1


def test_imported_shoppers_get_profiles_from_their_clicks(shop):
    actor = hash_identifier("import:u1", app_settings.HASH_SALT)
    SearchEvent.objects.create(query="stapler", normalized_query="stapler", actor_hash=actor, identified=True)
    from django.contrib.contenttypes.models import ContentType

    ProductClick.objects.create(request_id=uuid.uuid4(), query="stapler", object_id=shop["Zeta stapler"],
                                content_type=ContentType.objects.get_for_model(Product), position=0,
                                actor_hash=actor)
    assert services.rebuild_profiles() == 1
    profile = services.shopper_profile(actor)
    assert profile.brands == {"zeta": 1.0} and profile.products == {shop["Zeta stapler"]: 1.0}
    plain = order("laser toner")
    ids = [pid for pid, _s in order("laser toner", profile=profile)]
    assert ids[0] == shop["Zeta toner"] and sorted(ids) == sorted(pid for pid, _s in plain)


def test_affinity_is_the_mean_over_the_dimensions_the_profile_has():
    full = personal.Profile(brands={"zeta": 1.0}, product_types={"stapler": 0.5, "toner cartridge": 0.5},
                            products={"7": 1.0})
    assert full.product_affinity("Zeta", "Stapler", "7") == pytest.approx((1 + 0.5 + 1) / 3)
    assert full.product_affinity("Acme", "", "8") == 0.0
    # A catalog without brands or types: the clicked products alone make the affinity.
    products_only = personal.Profile(products={"7": 0.75, "9": 0.25})
    assert products_only.product_affinity("", "", "7") == pytest.approx(0.75)
