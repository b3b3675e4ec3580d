"""Did-you-mean (spelling correction from the shop's vocabulary) and synonyms
(mined from co-clicks, approved in the admin, applied to searches)."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from catalog.models import Product
from suggestions import services, spelling, synonyms
from suggestions.history import actor_hash
from suggestions.models import SearchEvent, Synonym, SynonymSource, SynonymStatus
from suggestions.recall import query_variants
from suggestions.spelling import Corrector
from tests.factories import ProductFactory
from tests.factories_suggestions import ProductClickFactory, SearchEventFactory

pytestmark = pytest.mark.django_db

SEARCH_API = reverse("suggestions:search")
STOREFRONT = reverse("search")


@pytest.fixture(autouse=True)
def _fresh_state():
    spelling.reset()
    synonyms.reset()
    yield
    spelling.reset()
    synonyms.reset()


@pytest.fixture
def shop():
    """Printers, toners and a notebook, indexed, with the suggestions built
    (which writes the spelling dictionary)."""
    for i in range(3):
        ProductFactory(brand="HP", product_type="printer", title=f"HP LaserJet Pro M40{i} Laser Printer",
                       description="Mono laser printer", price=Decimal("199.00"))
    ProductFactory(brand="Canon", product_type="printer", title="Canon PIXMA Inkjet Printer",
                   description="Colour inkjet")
    ProductFactory(brand="Brother", product_type="toner cartridge", title="Brother TN-760 Toner Cartridge",
                   description="Black toner")
    ProductFactory(brand="Lenovo", product_type="notebook", title="Lenovo ThinkPad X1 Carbon Notebook",
                   description="14 inch business notebook")
    services.rebuild_index()
    services.build_suggestions()
    return Product.objects.all()


def searched(text: str, shoppers: int) -> None:
    for n in range(shoppers):
        SearchEventFactory(query=text, normalized_query=text, actor_hash=f"{text}-{n}".ljust(64, "x"))


# -- the corrector ----------------------------------------------------------------------


def test_corrector_fixes_each_kind_of_typo():
    corrector = Corrector({"printer": 40, "toner": 30, "cartridge": 20, "laserjet": 10})
    assert corrector.correct_word("prnter") == "printer"  # deletion
    assert corrector.correct_word("pritner") == "printer"  # transposition
    assert corrector.correct_word("tonar") == "toner"  # substitution
    assert corrector.correct_word("cartrdige") == "cartridge"
    assert corrector.correct("hp prnter tonar").text == "hp printer toner"


def test_corrector_prefers_the_more_frequent_of_equally_close_words():
    assert Corrector({"mouse": 50, "moose": 2}).correct_word("mocse") == "mouse"
    assert Corrector({"mouse": 2, "moose": 50}).correct_word("mocse") == "moose"


def test_corrector_leaves_known_words_codes_and_chinese_alone():
    corrector = Corrector({"printer": 40, "m404": 5, "toner": 3})
    assert corrector.correct("printer") is None
    assert corrector.correct_word("m40") is None  # digits: a model code
    assert corrector.correct_word("打印机") is None
    assert corrector.correct_word("tn") is None  # too short to correct
    assert corrector.correct_word("zzzzzzzz") is None  # nothing close


def test_dictionary_is_reloaded_when_the_file_changes(settings):
    spelling.build_dictionary([], {"laptop": {"users": 5, "searches": 9}})
    assert spelling.correct("lapop").text == "laptop"
    path = spelling.dictionary_path()
    spelling.build_dictionary([], {"tablet": {"users": 5, "searches": 9}})
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new stamp, whatever the clock
    assert spelling.correct("lapop") is None
    assert spelling.correct("tablte").text == "tablet"


def test_no_dictionary_corrects_nothing():
    assert spelling.correct("prnter") is None


# -- the k-anonymity gate ---------------------------------------------------------------


def test_history_words_enter_the_dictionary_only_past_the_gate(shop, settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    searched("chromebook", 3)
    searched("zorblax", 1)  # one shopper's word
    searched("zorblax", 1)  # same text, another search by a *different* shopper: still 2 < 3
    services.build_suggestions()
    words = json.load(open(spelling.dictionary_path()))["words"]
    assert "chromebook" in words and "printer" in words
    assert "zorblax" not in words
    spelling.reset()
    assert spelling.correct("zorblx") is None
    assert spelling.correct("cromebook").text == "chromebook"


def test_one_shoppers_word_is_never_a_did_you_mean(shop, client, settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    ProductFactory(brand="Acme", product_type="toner cartridge", title="Acme Toner")
    searched("zorblax", 1)
    services.build_suggestions()
    body = client.get(SEARCH_API, {"q": "zorblx"}).json()
    assert body["corrected_query"] == ""


# -- search -----------------------------------------------------------------------------


def test_zero_result_query_shows_the_corrected_results(shop):
    page = services.search("prnter")
    assert page.corrected_query == "printer"
    assert page.query == "prnter"
    assert page.total == 4
    assert {r.document.product_type for r in page.results} == {"printer"}


def test_history_records_the_query_as_typed_with_its_own_count(shop):
    services.search("prnter")
    event = SearchEvent.objects.get()
    assert event.normalized_query == "prnter"
    assert event.results_count == 0


def test_query_with_results_is_never_corrected(shop):
    # "tonar" is one edit from "toner", but a product says "tonar".
    ProductFactory(brand="Acme", product_type="tonar", title="Acme Tonar Refill")
    services.rebuild_index()
    services.build_suggestions()
    page = services.search("tonar")
    assert page.corrected_query == ""
    assert [r.document.title for r in page.results] == ["Acme Tonar Refill"]


def test_low_result_threshold_is_a_setting(shop, settings):
    ProductFactory(brand="Acme", product_type="gadget", title="Acme Prnter Stand")
    services.rebuild_index()
    assert services.search("prnter").corrected_query == ""  # one result: left alone
    settings.SUGGESTIONS_DIDYOUMEAN_MAX_RESULTS = 1
    page = services.search("prnter")
    assert page.corrected_query == "printer" and page.total == 4


def test_exact_search_is_not_corrected(shop):
    page = services.search("prnter", exact=True)
    assert page.corrected_query == "" and page.total == 0


def test_correction_that_finds_no_more_is_not_shown(shop, settings):
    settings.SUGGESTIONS_DIDYOUMEAN = False
    assert services.search("prnter").corrected_query == ""


def test_correction_keeps_understood_price_filters(shop):
    ProductFactory(brand="HP", product_type="printer", title="HP DeskJet Printer", price=Decimal("59.00"))
    services.rebuild_index()
    page = services.search("prnter under 100")
    assert page.corrected_query == "printer under 100"
    assert "HP DeskJet Printer" in [r.document.title for r in page.results]
    assert all(r.document.price <= 100 for r in page.results)


# -- API and storefront -----------------------------------------------------------------


def test_api_reports_the_correction(shop, client):
    body = client.get(SEARCH_API, {"q": "prnter"}).json()
    assert body["query"] == "prnter"
    assert body["corrected_query"] == "printer"
    assert body["total"] == 4
    exact = client.get(SEARCH_API, {"q": "prnter", "exact": "true"}).json()
    assert exact["corrected_query"] == "" and exact["total"] == 0
    plain = client.get(SEARCH_API, {"q": "printer"}).json()
    assert plain["corrected_query"] == ""


def test_api_rejects_a_bad_exact_flag(shop, client):
    response = client.get(SEARCH_API, {"q": "prnter", "exact": "maybe"})
    assert response.status_code == 400
    assert "exact" in response.json()


def test_storefront_shows_the_did_you_mean_line_and_the_exact_link(shop, client):
    response = client.get(STOREFRONT, {"q": "prnter"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Showing results for <strong><q>printer</q></strong>; search instead for" in html
    assert '<a class="did-you-mean-exact" href="?q=prnter&amp;exact=1">prnter</a>' in html
    assert "HP LaserJet Pro M400 Laser Printer" in html
    exact = client.get(STOREFRONT, {"q": "prnter", "exact": "1"}).content.decode()
    assert "Showing results for" not in exact and "Nothing matches" in exact


# -- synonyms: mining -------------------------------------------------------------------


def clicks(query: str, product_ids: list[str], shoppers: int) -> None:
    ct = ContentType.objects.get_for_model(Product)
    for n in range(shoppers):
        actor = actor_hash(session_key=f"{query}-{n}")
        SearchEventFactory(query=query, normalized_query=query, actor_hash=actor)
        for position, pid in enumerate(product_ids):
            ProductClickFactory(query=query, content_type=ct, object_id=pid, position=position, actor_hash=actor)


def test_coclicked_queries_become_a_pending_pair(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    clicks("laptop", ["1", "2", "3"], 3)
    clicks("notebook", ["2", "3", "4"], 3)
    clicks("mouse", ["9"], 3)
    report = services.mine_synonyms()
    pair = Synonym.objects.get()
    assert (pair.term, pair.synonym) == ("laptop", "notebook")
    assert pair.status == SynonymStatus.PENDING and pair.source == SynonymSource.MINED_COCLICK
    assert pair.evidence["jaccard"] == 0.5 and pair.evidence["shared_products"] == 2
    assert report == {"pairs": 1, "created": 1, "updated": 0}


def test_shared_words_are_set_aside(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop bag", ["1", "2"], 2)
    clicks("notebook bag", ["1", "2"], 2)
    clicks("bag", ["1", "2"], 2)  # a sub-query, not a synonym
    clicks("laptop bags", ["1", "2"], 2)  # a plural, not a synonym
    services.mine_synonyms()
    assert [(s.term, s.synonym) for s in Synonym.objects.all()] == [("laptop", "notebook")]


def test_ungated_queries_never_become_synonyms(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    clicks("laptop", ["1", "2"], 3)
    clicks("zorblax", ["1", "2"], 1)  # one shopper's query
    # Clicks without a search by enough shoppers do not count either.
    clicks("notebook", ["1", "2"], 2)
    services.mine_synonyms()
    assert not Synonym.objects.exists()


def test_weak_overlap_is_not_proposed(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2", "3", "4"], 2)
    clicks("notebook", ["4", "5", "6", "7"], 2)  # 1 of 7 products
    services.mine_synonyms()
    assert not Synonym.objects.exists()


def test_mining_keeps_decisions(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2"], 2)
    clicks("notebook", ["1", "2"], 2)
    services.mine_synonyms()
    services.set_synonym_status(Synonym.objects.all(), SynonymStatus.REJECTED)
    report = services.mine_synonyms()
    assert report["updated"] == 1 and report["created"] == 0
    assert Synonym.objects.get().status == SynonymStatus.REJECTED


def test_mine_command_reports(settings, capsys):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2"], 2)
    clicks("notebook", ["1", "2"], 2)
    call_command("suggestions_mine_synonyms", "--no-progress")
    assert "1 pairs found; 1 new pending" in capsys.readouterr().out


def test_synonyms_survive_erasure_and_hold_no_shopper_text(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2"], 2)
    clicks("notebook", ["1", "2"], 2)
    services.mine_synonyms()
    services.erase_history(session_key="laptop-0")
    assert not SearchEvent.objects.filter(actor_hash=actor_hash(session_key="laptop-0")).exists()
    pair = Synonym.objects.get()
    # Only gated query text and counts: nothing of a shopper to erase.
    assert set(pair.evidence["queries"]) == {"laptop", "notebook"}
    assert actor_hash(session_key="laptop-0") not in json.dumps(pair.evidence)


# -- synonyms: approval and search ------------------------------------------------------


def test_approved_synonym_applies_to_search(shop):
    assert services.search("laptop").total == 0
    pair = Synonym.objects.create(term="laptop", synonym="notebook", source=SynonymSource.MINED_COCLICK)
    assert services.search("laptop").total == 0  # pending: no change
    services.set_synonym_status(Synonym.objects.filter(pk=pair.pk), SynonymStatus.APPROVED)
    page = services.search("laptop")
    assert [r.document.title for r in page.results] == ["Lenovo ThinkPad X1 Carbon Notebook"]
    assert page.corrected_query == ""
    services.set_synonym_status(Synonym.objects.filter(pk=pair.pk), SynonymStatus.REJECTED)
    assert services.search("laptop").total == 0


def test_synonyms_can_be_switched_off(shop, settings):
    services.add_synonym("laptop", "notebook")
    settings.SUGGESTIONS_SYNONYMS = False
    assert services.search("laptop").total == 0


def test_other_processes_see_an_approval_through_the_cache(shop):
    services.add_synonym("laptop", "notebook", approved=False)
    assert synonyms.approved_synonyms() == {}
    # Another process approves: the shared version key changes, the local copy is re-read.
    Synonym.objects.update(status=SynonymStatus.APPROVED)
    synonyms.invalidate()
    assert synonyms.approved_synonyms() == {"laptop": ("notebook",), "notebook": ("laptop",)}


def test_admin_approves_and_rejects_in_bulk(shop, admin_client):
    Synonym.objects.create(term="laptop", synonym="notebook", source=SynonymSource.MINED_COCLICK,
                           evidence={"rule": "coclick", "queries": ["laptop", "notebook"], "jaccard": 0.5,
                                     "shared_products": 2, "clicking_shoppers": {"laptop": 3, "notebook": 4}})
    url = reverse("admin:shop_suggestions_synonym_changelist")
    listing = admin_client.get(url).content.decode()
    assert "clicked 2 of the same products" in listing
    pk = Synonym.objects.get().pk
    response = admin_client.post(url, {"action": "approve", "_selected_action": [pk]}, follow=True)
    assert "1 synonym approved." in response.content.decode()
    assert services.search("laptop").total == 1
    admin_client.post(url, {"action": "reject", "_selected_action": [pk]})
    assert Synonym.objects.get().status == SynonymStatus.REJECTED
    assert services.search("laptop").total == 0


def test_admin_adds_a_manual_pair(shop, admin_client):
    url = reverse("admin:shop_suggestions_synonym_add")
    response = admin_client.post(url, {"term": "Notebook", "synonym": "laptop", "status": "approved"})
    assert response.status_code == 302
    pair = Synonym.objects.get()
    assert (pair.term, pair.synonym, pair.source) == ("laptop", "notebook", SynonymSource.MANUAL)
    assert services.search("laptop").total == 1
    same = admin_client.post(url, {"term": "laptop", "synonym": "LAPTOP", "status": "approved"})
    assert same.status_code == 200 and "two different terms" in same.content.decode()


def test_query_variants():
    assert query_variants("laptop bag", {"laptop": ("notebook",)}) == ["laptop bag", "notebook bag"]
    assert query_variants("laptops", {"laptop": ("notebook",)}) == ["laptops"]  # whole words only
    many = query_variants("a b", {"a": tuple("cdefghij"), "b": tuple("klmnop")})
    assert len(many) == 8 and many[0] == "a b"


def test_a_word_matching_no_product_is_corrected_in_a_query_with_results(shop):
    page = services.search("canon prnter")
    assert page.corrected_query == "canon printer"
    assert page.results[0].document.title == "Canon PIXMA Inkjet Printer"
    assert page.total == 4  # Canon's and every printer


def test_unmatched_word_correction_is_a_setting(shop, settings):
    settings.SUGGESTIONS_DIDYOUMEAN_UNMATCHED_WORDS = False
    page = services.search("canon prnter")
    assert page.corrected_query == "" and page.total == 1


def test_a_word_some_product_has_is_never_corrected(shop):
    ProductFactory(brand="HP", product_type="toner cartridge", title="HP Color Toner")
    services.rebuild_index()
    services.build_suggestions()
    # "colour" is one edit from the dictionary's "color", but a description has it.
    assert spelling.correct("colour").text == "color"
    assert services.search("canon colour").corrected_query == ""


def test_mine_task_runs_the_service(settings):
    from suggestions import tasks

    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2"], 2)
    clicks("notebook", ["1", "2"], 2)
    assert tasks.mine_synonyms.name == "suggestions.synonyms.mine"
    assert tasks.mine_synonyms() == {"pairs": 1, "created": 1, "updated": 0}
    assert tasks.mine_synonyms() == {"pairs": 1, "created": 0, "updated": 1}  # idempotent


def test_pending_pairs_no_longer_found_are_dropped(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = settings.SUGGESTIONS_SYNONYM_MIN_CLICKERS = 2
    clicks("laptop", ["1", "2"], 2)
    clicks("notebook", ["1", "2"], 2)
    clicks("tablet", ["5"], 2)
    clicks("slate", ["5"], 2)
    services.mine_synonyms()
    services.set_synonym_status(Synonym.objects.filter(term="slate"), SynonymStatus.APPROVED)
    # Erasure takes a shopper of each query below the gate.
    for query in ("laptop", "slate"):
        services.erase_history(session_key=f"{query}-0")
    services.mine_synonyms()
    assert [(s.term, s.status) for s in Synonym.objects.all()] == [("slate", SynonymStatus.APPROVED)]


def test_a_synonym_term_is_not_corrected(shop):
    ProductFactory(brand="Acme", product_type="gadget", title="Acme Lapdesk")
    services.rebuild_index()
    services.build_suggestions()
    assert spelling.correct("lapdisk") is not None  # the corrector would touch it
    services.add_synonym("lapdisk", "notebook")
    page = services.search("lenovo lapdisk")
    assert page.corrected_query == ""
    assert [r.document.title for r in page.results] == ["Lenovo ThinkPad X1 Carbon Notebook"]
