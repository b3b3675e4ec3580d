"""Privacy hardening (issue 9): who counts as a shopper, no session row per
cookie-less request, and erasure and retention that reach every copy of a
shopper's query.

* Item 3 (first half): the k-anonymity gate of mining, trending and the
  ranker's training counts distinct *identified* shoppers only.
* Item 11 (first half): cookie-less requests write no session row.
* Item 4: erasure and retention reach the events, the daily aggregates, the
  stored understanding and its cache; :data:`QUERY_TEXT_COVERAGE` lists every
  field of the app that can hold text and how each is reached.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from importlib import import_module
from unittest import mock

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import caches
from django.db import models
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Product
from suggestions import analytics, mining, services, understanding
from suggestions.conf import app_settings
from suggestions.history import IMPORT_NAMESPACE
from suggestions.learning import Snapshot, get_kind
from suggestions.models import (
    ProductClick,
    QueryDailyStat,
    QueryUnderstanding,
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
COOKIE = "shop_suggestions_shopper"


def returning_shopper() -> APIClient:
    """A client that already made one request, so it carries the shopper cookie."""
    client = APIClient()
    client.get(TRENDING)
    assert client.cookies.get(COOKIE)
    return client


def signed_in_shopper(name: str) -> APIClient:
    client = APIClient()
    client.force_login(get_user_model().objects.create_user(name, password="pw"))
    return client


def at(moment: datetime):
    """Run the enclosed code as if it were ``moment``."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


# -- item 3: the k-gate counts identified shoppers -------------------------------------------


def test_cookieless_requests_make_no_query_public_but_returning_shoppers_do():
    for _ in range(5):
        assert APIClient().get(SEARCH, {"q": "Zanzibar umbrella"}).status_code == 200
    assert SearchEvent.objects.filter(normalized_query="zanzibar umbrella").count() == 5
    assert "zanzibar umbrella" not in mining.mine_history()
    assert SearchEvent.objects.filter(identified=True).count() == 0

    for client in (returning_shopper(), returning_shopper(), signed_in_shopper("ann")):
        client.get(SEARCH, {"q": "Zanzibar umbrella"})

    mined = mining.mine_history()
    assert mined["zanzibar umbrella"].distinct_users == 3


def test_a_returning_shopper_counts_once_however_often_they_search():
    shopper = returning_shopper()
    for _ in range(3):
        shopper.get(SEARCH, {"q": "zanzibar umbrella"})
    signed_in_shopper("ann").get(SEARCH, {"q": "zanzibar umbrella"})

    assert mining.query_stats()["zanzibar umbrella"]["users"] == 2
    assert "zanzibar umbrella" not in mining.mine_history()


def test_forged_or_tampered_shopper_cookies_count_no_one():
    forged = signing.get_cookie_signer(salt=COOKIE + "another salt").sign("made-up")
    for value in ("made-up", forged, returning_shopper().cookies[COOKIE].value[:-2] + "xx"):
        client = APIClient()
        client.cookies[COOKIE] = value
        client.get(SEARCH, {"q": "zanzibar umbrella"})

    assert list(SearchEvent.objects.values_list("actor_hash", "identified")) == [("", False)] * 3


def test_without_the_middleware_only_an_existing_session_identifies():
    middleware = [m for m in settings.MIDDLEWARE if not m.endswith("ShopperCookieMiddleware")]
    with override_settings(MIDDLEWARE=middleware):
        made_up = APIClient()
        made_up.cookies[settings.SESSION_COOKIE_NAME] = "x" * 32
        made_up.get(SEARCH, {"q": "made up session"})
        real = APIClient()
        real.session  # noqa: B018 - the test client saves a session, as a host's page would
        real.get(SEARCH, {"q": "real session"})

        assert [e["query"] for e in real.get(HISTORY).json()["results"]] == ["real session"]
    rows = dict(SearchEvent.objects.values_list("normalized_query", "identified"))
    assert rows == {"made up session": False, "real session": True}
    assert Session.objects.count() == 1  # the real one; the made-up cookie created none


def test_trending_needs_k_identified_shoppers_within_its_window():
    today = timezone.localdate()
    Suggestion.objects.create(text="usb cable", source="history", status="approved", weight=1)
    QueryDailyStat.objects.create(date=today, normalized_query="usb cable", searches=50)
    for n in range(5):  # cookie-less searches: stored, but nobody's
        SearchEventFactory(query="usb cable", actor_hash="", identified=False)
        SearchEventFactory(query="usb cable", actor_hash=f"{n}" * 64, identified=False)
    old = timezone.now() - timedelta(days=app_settings.TRENDING_DAYS + 2)
    for shopper in "abc":  # identified, but before the window
        SearchEventFactory(query="usb cable", actor_hash=shopper * 64, created_at=old)
    assert services.trending() == []

    for shopper in "ab":
        SearchEventFactory(query="usb cable", actor_hash=shopper * 64)
    assert services.trending() == []
    SearchEventFactory(query="usb cable", actor_hash="c" * 64)
    assert services.trending() == [services.TrendingItem("usb cable", 50)]


def test_the_gate_is_the_shops_min_distinct_users_setting():
    Suggestion.objects.create(text="usb cable", source="history", status="approved", weight=1)
    QueryDailyStat.objects.create(date=timezone.localdate(), normalized_query="usb cable", searches=2)
    for shopper in "ab":
        SearchEventFactory(query="usb cable", actor_hash=shopper * 64)

    assert "usb cable" not in mining.mine_history() and services.trending() == []
    with override_settings(SUGGESTIONS_MIN_DISTINCT_USERS=2):
        assert mining.mine_history()["usb cable"].distinct_users == 2
        assert [t.text for t in services.trending()] == ["usb cable"]


def test_imported_searches_are_identified_when_they_name_a_user():
    now = timezone.now()
    rows = [services.ImportedSearch(user, "zanzibar umbrella", now - timedelta(minutes=i))
            for i, user in enumerate(["u1", "u2", "u3", "", ""])]
    services.import_search_history(rows)

    assert sorted(SearchEvent.objects.values_list("identified", flat=True)) == [False, False, True, True, True]
    assert mining.mine_history()["zanzibar umbrella"].distinct_users == 3


def test_migration_marks_only_users_and_imports_as_identified():
    backfill = import_module("suggestions.migrations.0004_searchevent_identified").backfill
    user = get_user_model().objects.create_user("ann", password="pw")
    signed_in = SearchEventFactory(user=user)
    imported = SearchEventFactory(request_id=uuid.uuid5(IMPORT_NAMESPACE, "u1\x1fq\x1ft"))
    legacy_session = SearchEventFactory(request_id=uuid.uuid4())
    SearchEvent.objects.update(identified=False)

    backfill(apps, None)

    flags = dict(SearchEvent.objects.values_list("pk", "identified"))
    assert flags == {signed_in.pk: True, imported.pk: True, legacy_session.pk: False}


def test_ranker_training_counts_only_identified_shoppers():
    SearchEventFactory(query="usb cable", actor_hash="a" * 64)
    SearchEventFactory(query="usb cable", actor_hash="b" * 64, identified=False)

    searches = get_kind("suggestion_ranker").searches()

    assert sorted(s.actor for s in searches) == ["", "a" * 64]


def test_ranker_examples_kept_with_a_version_show_only_prefixes_k_shoppers_typed(monkeypatch):
    from suggestions.ml import suggestion_ranker

    class Ranker:
        def __init__(self, folder):
            self.folder = folder

        def rank(self, stats, prefix):
            return ["x", "y"] if self.folder == "old" else ["y", "x"]

    monkeypatch.setattr(suggestion_ranker.RankerModel, "load", classmethod(lambda cls, folder: Ranker(folder)))
    now = timezone.now()
    heldout = [suggestion_ranker.Search("usb cable", actor, now) for actor in ("a", "b", "c")]
    heldout += [suggestion_ranker.Search("private thing", "p", now)] * 5
    snapshot = Snapshot(train=None, heldout=heldout, cache={"stats": object()})

    examples = get_kind("suggestion_ranker").changed_examples(snapshot, "new", "old", limit=10)

    assert {e["input"] for e in examples} == {"us", "usb", "usb "}


# -- item 11: no session row per cookie-less request ---------------------------------------------


@pytest.mark.parametrize("url, params", [
    (SEARCH, {"q": "usb cable"}),
    (SUGGEST, {"q": "usb"}),
    (HISTORY, {}),
    (reverse("home"), {}),
    (reverse("search"), {"q": "usb cable"}),
])
def test_cookieless_requests_write_no_session_row(client, url, params):
    for _ in range(3):
        assert client.get(url, params, HTTP_COOKIE="").status_code == 200
        client.cookies.clear()

    assert Session.objects.count() == 0


def test_returning_anonymous_shopper_lists_and_erases_own_history_without_a_session():
    alice, bob = returning_shopper(), returning_shopper()
    alice.get(SEARCH, {"q": "usb cable"})
    alice.get(SEARCH, {"q": "laptop stand"})
    bob.get(SEARCH, {"q": "usb hub"})

    assert [e["query"] for e in alice.get(HISTORY).json()["results"]] == ["laptop stand", "usb cable"]
    assert alice.delete(HISTORY).json() == {"deleted": 2}
    assert alice.get(HISTORY).json() == {"results": []}
    assert [e["query"] for e in bob.get(HISTORY).json()["results"]] == ["usb hub"]
    assert Session.objects.count() == 0


# -- item 4: erasure and retention reach every copy ----------------------------------------------


def _cached(query: str):
    return caches[app_settings.CACHE_ALIAS].get(understanding._key(query))


def _daily(query: str) -> dict[str, dict]:
    fields = ("searches", "zero_results", "suggestion_clicks", "product_clicks")
    return {str(row["date"]): {f: row[f] for f in fields}
            for row in QueryDailyStat.objects.filter(normalized_query=query).values("date", *fields)}


def _shopper_activity(query: str, session_key: str, when: datetime | None = None, *, chips: bool = False) -> None:
    """One shopper's search of ``query``, the list they were shown, their clicks,
    and the workers' understanding of it, all at ``when`` (default: now); with
    ``chips``, also a refinement chip holding the query, shown and chosen."""
    actor = {"session_key": session_key}
    when = when or timezone.now()
    # A product the adapter knows: clicks on unknown ids are not stored.
    product_id = str(Product.objects.get_or_create(title="Wallaby USB cable", defaults={"price": "9.00"})[0].pk)
    request_id = uuid.uuid4()
    with at(when):
        services.search(query, **actor)
        services.record_events([
            {"type": "impression", "request_id": request_id.hex, "prefix": query, "suggestions": [query]},
            {"type": "suggestion_click", "request_id": request_id.hex, "prefix": query, "suggestion": query,
             "position": 0},
            {"type": "product_click", "request_id": request_id.hex, "query": query, "product_id": product_id,
             "position": 0},
        ] + ([
            {"type": "refinement_impression", "request_id": request_id.hex, "query": query,
             "refinements": [f"{query} box"]},
            {"type": "refinement_click", "request_id": request_id.hex, "query": query, "refinement": f"{query} box",
             "position": 0},
        ] if chips else []), **actor)
    # Their default creation time is not the patched clock.
    for model in (SuggestionImpression, SuggestionClick, ProductClick):
        model.objects.filter(request_id=request_id).update(created_at=when)
    understanding.store_understandings([understanding.rules_understanding(query)])


def test_erasure_takes_back_daily_counts_and_forgets_understandings_nobody_else_has():
    yesterday = timezone.now() - timedelta(days=1)
    _shopper_activity("usb cable", "alice", yesterday)
    _shopper_activity("wallaby secret gift", "alice")
    _shopper_activity("usb cable", "alice")
    _shopper_activity("usb cable", "bob")
    before = _daily("usb cable")
    assert QueryUnderstanding.objects.filter(normalized_query="wallaby secret gift").exists()
    assert _cached("wallaby secret gift") is not None

    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f, **_: f()):
        assert services.erase_history(session_key="alice") == 12

    # Alice's query nobody else searched is gone everywhere.
    assert _daily("wallaby secret gift") == {}
    assert not QueryUnderstanding.objects.filter(normalized_query="wallaby secret gift").exists()
    assert _cached("wallaby secret gift") is None
    # The query Bob searched too stays, with only Bob's counts.
    today = str(timezone.localdate())
    assert _daily("usb cable") == {today: {k: v // 2 for k, v in before[today].items()}}
    assert str(timezone.localdate(yesterday)) in before
    assert QueryUnderstanding.objects.filter(normalized_query="usb cable").exists()
    assert _cached("usb cable") is not None


def test_erasure_keeps_understandings_of_labelled_queries():
    _shopper_activity("wallaby secret gift", "alice")
    services.save_label(query="wallaby secret gift", intent="product_search", entities=[], source="corrected")

    services.erase_history(session_key="alice")

    assert QueryUnderstanding.objects.get(normalized_query="wallaby secret gift").source == "label"


def test_erasure_never_takes_a_daily_counter_below_zero():
    _shopper_activity("wallaby secret gift", "alice")
    _shopper_activity("wallaby secret gift", "bob")
    QueryDailyStat.objects.update(searches=1)  # e.g. rebuilt by hand since

    services.erase_history(session_key="alice")

    row = QueryDailyStat.objects.get(normalized_query="wallaby secret gift")
    assert (row.searches, row.suggestion_clicks, row.product_clicks) == (0, 1, 1)


def test_garbage_collect_forgets_understandings_no_event_within_retention_has():
    old = timezone.now() - timedelta(days=app_settings.HISTORY_RETENTION_DAYS + 1)
    _shopper_activity("wallaby secret gift", "alice", old)
    _shopper_activity("usb cable", "alice", old)
    _shopper_activity("usb cable", "bob")
    services.save_label(query="labelled query", intent="product_search", entities=[], source="corrected")

    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f, **_: f()):
        counts = services.garbage_collect()

    assert counts["queryunderstanding"] == 1
    assert set(QueryUnderstanding.objects.values_list("normalized_query", flat=True)) == {"usb cable", "labelled query"}
    assert _cached("wallaby secret gift") is None and _cached("usb cable") is not None


# -- every field that can hold query text, and how erasure and retention reach it -----------------

SHOPPER = "a shopper's own event: deleted by their erasure and by retention"
DAILY = "aggregate of events: erasure takes back the shopper's counts, rows at zero are deleted; retention"
UNDERSTOOD = "per query: deleted by erasure and retention once no event has the query (a label keeps it)"
PUBLIC = "passed the k-gate or is catalog/merchandiser text: not one shopper's; each build recounts"
STAFF = "written by merchandisers or the learning loop from gated data; no shopper's raw query"
NO_TEXT = "holds no query text (identifiers, enumerations, hashes, paths)"
ROLLUP = "analytics rollup of events: erasure rebuilds the shopper's days without them; retention deletes old rows"
PROFILE = ("a shopper's profile (brands, types from understood searches or the catalog, product ids): deleted "
           "by their erasure; retention deletes it or rebuilds it from the remaining events")

#: Every text-holding field of the app's models → how erasure and retention
#: reach it. A new model or field fails the test below until it is listed here.
QUERY_TEXT_COVERAGE = {
    ("SearchEvent", "query"): SHOPPER,
    ("SearchEvent", "normalized_query"): SHOPPER,
    ("SearchEvent", "filters"): SHOPPER,
    ("SearchEvent", "understanding"): SHOPPER,
    ("SearchEvent", "origin"): NO_TEXT,
    ("SearchEvent", "actor_hash"): NO_TEXT,
    ("SuggestionImpression", "prefix"): SHOPPER,
    ("SuggestionImpression", "suggestions"): SHOPPER,
    ("SuggestionImpression", "actor_hash"): NO_TEXT,
    ("SuggestionImpression", "surface"): NO_TEXT,
    ("SuggestionClick", "prefix"): SHOPPER,
    ("SuggestionClick", "suggestion"): SHOPPER,
    ("SuggestionClick", "actor_hash"): NO_TEXT,
    ("SuggestionClick", "surface"): NO_TEXT,
    ("ProductClick", "query"): SHOPPER,
    ("ProductClick", "object_id"): NO_TEXT,
    ("ProductClick", "actor_hash"): NO_TEXT,
    ("QueryDailyStat", "normalized_query"): DAILY,
    ("AnalyticsQueryDay", "normalized_query"): ROLLUP,
    ("AnalyticsChipDay", "query"): ROLLUP,
    ("AnalyticsChipDay", "chip"): ROLLUP,  # a rewrite may be the shopper's query less a word
    ("AnalyticsChipDay", "source"): NO_TEXT,
    ("QueryUnderstanding", "normalized_query"): UNDERSTOOD,
    ("QueryUnderstanding", "query"): UNDERSTOOD,
    ("QueryUnderstanding", "data"): UNDERSTOOD,
    ("QueryUnderstanding", "language"): NO_TEXT,
    ("QueryUnderstanding", "intent"): NO_TEXT,
    ("QueryUnderstanding", "source"): NO_TEXT,
    ("Suggestion", "text"): PUBLIC,
    ("Suggestion", "pinned_prefix"): PUBLIC,
    ("Suggestion", "provenance"): PUBLIC,
    ("Suggestion", "source"): NO_TEXT,
    ("Suggestion", "status"): NO_TEXT,
    ("RankedPrefix", "prefix"): PUBLIC,  # prefixes of gated candidates (CandidateStats.prefixes)
    ("RankedPrefix", "texts"): PUBLIC,
    ("RankedPrefix", "model_version"): NO_TEXT,
    ("QueryLabel", "normalized_query"): STAFF,
    ("QueryLabel", "query"): STAFF,
    ("QueryLabel", "entities"): STAFF,
    ("QueryLabel", "intent"): NO_TEXT,
    ("QueryLabel", "source"): NO_TEXT,
    ("BlockedTerm", "pattern"): STAFF,
    ("BlockedTerm", "note"): STAFF,
    ("BlockedTerm", "kind"): NO_TEXT,
    # Versions keep metrics, counts and (ranker) changed examples whose typed
    # prefixes passed the k-gate; artefacts hold weights and catalog phrases.
    ("ModelVersion", "metrics"): STAFF,
    ("ModelVersion", "baseline_metrics"): STAFF,
    ("ModelVersion", "notes"): STAFF,
    ("ModelVersion", "decision"): STAFF,
    ("ModelVersion", "kind"): NO_TEXT,
    ("ModelVersion", "version"): NO_TEXT,
    ("ModelVersion", "artefact_uri"): NO_TEXT,
    ("ModelVersion", "artefact_checksum"): NO_TEXT,
    ("ModelVersion", "status"): NO_TEXT,
    ("RetrainRun", "log"): STAFF,  # counts and progress lines, never examples
    ("RetrainRun", "error"): STAFF,
    ("RetrainRun", "kind"): NO_TEXT,
    ("RetrainRun", "status"): NO_TEXT,
    # Experiments: orders of served (gated) texts; events know the shopper by the
    # hash, and an interleaved list's teams hold only texts of those orders.
    ("Experiment", "name"): STAFF,
    ("Experiment", "kind"): NO_TEXT,
    ("Experiment", "method"): NO_TEXT,
    ("Experiment", "status"): NO_TEXT,
    ("ExperimentRanking", "arm"): NO_TEXT,
    ("ExperimentRanking", "prefix"): PUBLIC,
    ("ExperimentRanking", "texts"): PUBLIC,
    ("ExperimentEvent", "arm"): NO_TEXT,
    ("ExperimentEvent", "kind"): NO_TEXT,
    ("ExperimentEvent", "actor_hash"): NO_TEXT,
    ("ExperimentEvent", "team"): NO_TEXT,
    ("ExperimentEvent", "teams"): PUBLIC,
    # Synonyms: mined from queries past the k-gate (pending ones no longer found
    # are dropped by the next mining run) or typed by merchandisers.
    ("Synonym", "term"): PUBLIC,
    ("Synonym", "synonym"): PUBLIC,
    ("Synonym", "evidence"): PUBLIC,
    ("Synonym", "source"): NO_TEXT,
    ("Synonym", "status"): NO_TEXT,
    # Personal re-ranking (suggestions/personal.py).
    ("ShopperProfile", "actor_hash"): NO_TEXT,
    ("ShopperProfile", "brands"): PROFILE,
    ("ShopperProfile", "product_types"): PROFILE,
    ("ShopperProfile", "products"): NO_TEXT,
}


def _text_fields():
    for model in apps.get_app_config("shop_suggestions").get_models():
        if model._meta.proxy:  # its rows and fields are its concrete model's
            continue
        for f in model._meta.get_fields():
            if isinstance(f, models.CharField | models.TextField | models.JSONField):
                yield model, f.name


def test_every_text_field_of_the_app_is_in_the_coverage_table():
    found = {(model.__name__, name) for model, name in _text_fields()}

    assert found - set(QUERY_TEXT_COVERAGE) == set(), "new text fields: say how erasure and retention reach them"
    assert set(QUERY_TEXT_COVERAGE) - found == set(), "listed fields that no longer exist"


def _where(marker: str) -> set[tuple[str, str]]:
    """Every (model, field) of the app whose stored value contains ``marker``."""
    out = set()
    for model, name in _text_fields():
        for value in model.objects.values_list(name, flat=True):
            if marker in str(value):
                out.add((model.__name__, name))
    return out


@pytest.mark.parametrize("how", ["erasure", "retention"])
def test_no_copy_of_a_shoppers_query_survives_erasure_or_retention(how):
    marker = "wallaby secret gift"
    age = app_settings.HISTORY_RETENTION_DAYS + 1 if how == "retention" else 0
    when = timezone.now() - timedelta(days=age)
    _shopper_activity(marker, "alice", when, chips=True)
    analytics.rollup_day(timezone.localdate(when))
    # The activity wrote every kind of copy the table says a shopper leaves
    # (it applies no filters, so SearchEvent.filters holds none).
    left = {key for key, why in QUERY_TEXT_COVERAGE.items() if why in (SHOPPER, DAILY, UNDERSTOOD, ROLLUP)}
    assert _where(marker) == left - {("SearchEvent", "filters")}
    assert _cached(marker) is not None

    with mock.patch("django.db.transaction.on_commit", side_effect=lambda f, **_: f()):
        if how == "erasure":
            services.erase_history(session_key="alice")
        else:
            services.garbage_collect()

    assert _where(marker) == set()
    assert _cached(marker) is None
