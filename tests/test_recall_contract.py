"""One contract suite for every recall backend.

Each contract test runs against the embedded tantivy backend and against the
Elasticsearch backend talking to the Elasticsearch-compatible test server
(``es_url``). Backends are built through :func:`suggestions.recall.get_backend`
from ``SUGGESTIONS_RECALL_BACKENDS`` so the real loader is exercised. The
backend-specific tests at the end cover what the contract cannot: process
sharing and writer locks (tantivy), unreachable clusters and index layout
(Elasticsearch).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from suggestions.adapter import ProductDocument
from suggestions.recall import (
    BaseRecallBackend,
    RecallUnavailable,
    SearchBoosts,
    SearchFilters,
    SearchResult,
    SuggestionEntry,
    get_backend,
)
from tests.plugins.services import free_port

P = ProductDocument

DOCS = [
    P("1", "HP LaserJet Pro M404dn Monochrome Laser Printer", "HP", "Printer", "W1A53A",
      "Fast mono laser printer for small offices", price=279.0, url="/p/1"),
    P("2", "HP LaserJet Enterprise M507x Printer", "HP", "Printer", "1PV88A",
      "Enterprise mono laser printer with duplex", price=649.0),
    P("3", "HP Color LaserJet Pro M255dw Printer", "HP", "Printer", "7KW64A",
      "Wireless color laser printer", price=329.0),
    P("4", "HP 26A Black Original LaserJet Toner Cartridge", "HP", "Toner Cartridge", "CF226A",
      "Original cartridge for LaserJet Pro M402 and M426", price=109.0),
    # Lower-case brand on purpose: filters and facets are case-insensitive.
    P("5", "HP 59A Black Original LaserJet Toner Cartridge", "hp", "Toner Cartridge", "CF259A",
      "Original cartridge for LaserJet Pro M404 and M428", price=119.0,
      attributes={"colour": "black", "pages": 3000}),
    P("6", "Brother TN-760 High Yield Toner Cartridge", "Brother", "Toner Cartridge", "TN760",
      "Black toner for Brother laser printers", price=79.0),
    P("7", "Canon PIXMA TS6420a Inkjet Printer", "Canon", "Printer", "4462C082",
      "Wireless all-in-one inkjet printer", price=99.0),
    P("8", "StarTech.com 2m USB-C to USB-C Cable", "StarTech.com", "Cable", "USB2CC2M",
      "USB 2.0 charging and sync cable", price=14.99),
    P("9", "StarTech.com 1m HDMI Cable 4K", "StarTech.com", "Cable", "HDMM1MP",
      "Premium high speed HDMI cable", price=12.49),
    P("10", "StarTech.com USB 3.0 to Gigabit Ethernet Adapter", "StarTech.com", "Network Adapter",
      "USB31000S", "USB network adapter", price=29.99),
    P("11", "Logitech MX Master 3S Wireless Mouse", "Logitech", "Mouse", "910-006559",
      "Ergonomic wireless mouse", price=99.99),
    P("12", 'Dell UltraSharp U2723QE 27" 4K Monitor', "Dell", "Monitor", "U2723QE",
      "Monitor with USB-C hub"),  # no price: never matches a price filter
    P("13", "佳能 PG-545 墨盒 Ink Cartridge", "Canon", "Ink Cartridge", "PG545",
      "Canon ink for PIXMA printers", price=19.9),
]  # fmt: skip

ALL_IDS = {d.id for d in DOCS}

SUGGESTIONS = [
    SuggestionEntry("hpe proliant", 95, "catalog"),
    SuggestionEntry("hp laserjet", 90, "history"),
    SuggestionEntry("hp ink", 70, "history"),
    SuggestionEntry("hp laserjet toner", 60, "history"),
    SuggestionEntry("hp laserjet pro m404dn", 40, "catalog"),
    SuggestionEntry("gears of war", 50, "history"),
    SuggestionEntry("gears of war 3", 30, "history"),
    SuggestionEntry("gears of wrath", 5, "history"),
    SuggestionEntry("startech usb c cable", 20, "catalog"),
    SuggestionEntry("佳能 墨盒", 3, "catalog"),
]


def _es_config(url: str, prefix: str, **options) -> dict:
    return {
        "BACKEND": "suggestions.recall.elasticsearch",
        "OPTIONS": {"HOSTS": [url], "INDEX_PREFIX": prefix, "TIMEOUT": 10, **options},
    }


@pytest.fixture(
    params=[
        pytest.param("tantivy"),
        pytest.param("elasticsearch", marks=[pytest.mark.es, pytest.mark.services]),
    ]
)
def backend(request, settings):
    """A fresh, empty backend of each kind, built by the real loader."""
    prefix = None
    if request.param == "tantivy":
        config = {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}
    else:
        es_url = request.getfixturevalue("es_url")
        # The server lives for the session: a unique prefix isolates tests.
        prefix = f"t{uuid.uuid4().hex[:12]}"
        config = _es_config(es_url, prefix)
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": config}
    yield get_backend()
    if prefix is not None:
        from elasticsearch import Elasticsearch

        client = Elasticsearch([es_url], request_timeout=10)
        try:
            _drop_indices(client, prefix)
        finally:
            client.close()


def _drop_indices(client, prefix: str) -> None:
    # Deleting by wildcard is refused (action.destructive_requires_name).
    names = list(client.indices.get(index=f"{prefix}-*"))
    if names:
        client.indices.delete(index=",".join(names))


@pytest.fixture
def loaded(backend):
    backend.rebuild_products(DOCS)
    backend.replace_suggestions(SUGGESTIONS)
    return backend


def ids(result: SearchResult) -> list[str]:
    return [hit.id for hit in result.hits]


def texts(hits) -> list[str]:
    return [hit.text for hit in hits]


# -- loading ----------------------------------------------------------------
def test_loader_builds_configured_class(backend, settings):
    expected = settings.SUGGESTIONS_RECALL_BACKENDS["default"]["BACKEND"]
    assert isinstance(backend, BaseRecallBackend)
    assert type(backend).__module__ == expected
    assert get_backend() is backend
    assert backend.ping() is True


def test_empty_backend_answers_empty(backend):
    assert backend.count_products() == 0
    result = backend.search_products("laserjet")
    assert (result.hits, result.total, result.brand_counts) == ([], 0, {})
    assert backend.search_products("").total == 0
    assert backend.suggest("hp") == []
    assert backend.suggest("hp", fuzzy=True) == []


def test_plural_query_words_find_singular_titles(loaded):
    # No title says "printers" or "cables": English stems match them.
    assert {h.id for h in loaded.search_products("printers").hits} >= {"1", "2", "3", "7"}
    assert loaded.search_products("hdmi cables").hits[0].id == "9"


# -- products: boosts from query understanding -----------------------------
def test_boosts_reorder_without_filtering(loaded):
    plain = loaded.search_products("printer")
    top_brand = plain.hits[0].document.brand.lower()
    last = next(h for h in reversed(plain.hits) if h.document.brand.lower() != top_brand)
    boosted = loaded.search_products("printer", boosts=SearchBoosts(brands=(last.document.brand.upper(),), weight=50))
    assert boosted.hits[0].document.brand == last.document.brand
    assert boosted.total == plain.total  # nothing filtered out


def test_boosts_by_product_type_and_without_text(loaded):
    boosted = loaded.search_products("laserjet", boosts=SearchBoosts(product_types=("toner cartridge",), weight=50))
    assert {h.id for h in boosted.hits[:2]} == {"4", "5"}
    everything = loaded.search_products("", boosts=SearchBoosts(brands=("dell",), weight=5))
    assert everything.total == len(DOCS) and everything.hits[0].id == "12"
    assert not SearchBoosts() and SearchBoosts(brands=("x",))


# -- products: ranking ------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("laserjet m404dn", "1"),
        ("CF259A", "5"),
        ("hdmi cable", "9"),
        ("mx master mouse", "11"),
        ("brother toner", "6"),
        ("佳能", "13"),
        ("gigabit ethernet", "10"),
    ],
)
def test_search_puts_best_document_first(loaded, query, first):
    result = loaded.search_products(query)
    assert result.hits, query
    assert result.hits[0].id == first
    assert result.hits[0].document == next(d for d in DOCS if d.id == first)


def test_search_returns_full_documents(loaded):
    hit = loaded.search_products("CF259A").hits[0]
    assert hit.document.attributes == {"colour": "black", "pages": 3000}
    assert hit.document.price == 119.0
    assert hit.document.brand == "hp"
    assert isinstance(hit.score, float)


def test_documents_matching_all_words_rank_first(loaded):
    result = loaded.search_products("hp toner")
    order = ids(result)
    assert set(order[:2]) == {"4", "5"}
    # Partial matches still come back, after the full ones.
    assert "6" in order and order.index("6") >= 2
    assert result.total > 2

    order = ids(loaded.search_products("startech cable"))
    assert set(order[:2]) == {"8", "9"}
    assert order.index("10") >= 2


def test_one_unknown_word_does_not_empty_the_result(loaded):
    result = loaded.search_products("laserjet xyzzyq")
    assert result.total >= 5
    assert set(ids(result)) <= ALL_IDS


# -- products: filters and facets -------------------------------------------
def test_brand_filter_is_case_insensitive(loaded):
    result = loaded.search_products("", SearchFilters(brands=("HP",)))
    assert set(ids(result)) == {"1", "2", "3", "4", "5"}
    assert result.total == 5
    result = loaded.search_products("", SearchFilters(brands=("startech.com", "LOGITECH")))
    assert set(ids(result)) == {"8", "9", "10", "11"}


def test_product_type_filter(loaded):
    result = loaded.search_products("", SearchFilters(product_types=("toner cartridge",)))
    assert set(ids(result)) == {"4", "5", "6"}
    result = loaded.search_products(
        "black", SearchFilters(brands=("hp",), product_types=("Toner Cartridge",))
    )
    assert set(ids(result)) == {"4", "5"}


def test_query_and_filter_combine(loaded):
    result = loaded.search_products("printer", SearchFilters(brands=("canon",)))
    assert ids(result) == ["7"]
    assert result.total == 1
    assert result.brand_counts == {"Canon": 1}


def test_price_range_filter(loaded):
    def price_ids(**kwargs) -> set[str]:
        return set(ids(loaded.search_products("", SearchFilters(**kwargs), limit=50)))

    assert price_ids(min_price=50, max_price=150) == {"4", "5", "6", "7", "11"}
    assert price_ids(min_price=300) == {"2", "3"}
    assert price_ids(max_price=15) == {"8", "9"}
    # Bounds are inclusive.
    assert price_ids(min_price=109, max_price=119) == {"4", "5"}
    result = loaded.search_products("printer", SearchFilters(max_price=100))
    assert set(ids(result)) == {"7"}


def test_brand_counts_cover_every_match(loaded):
    result = loaded.search_products("laser", limit=1)
    assert len(result.hits) == 1
    assert result.total == 4
    assert result.brand_counts == {"HP": 3, "Brother": 1}

    everything = loaded.search_products("")
    assert everything.brand_counts == {
        # "HP" x4 and "hp" x1 count together under the usual spelling.
        "HP": 5,
        "Brother": 1,
        "Canon": 2,
        "StarTech.com": 3,
        "Logitech": 1,
        "Dell": 1,
    }
    assert loaded.search_products("", SearchFilters(brands=("dell",))).brand_counts == {"Dell": 1}


def test_empty_query_lists_everything(loaded):
    result = loaded.search_products("", limit=50)
    assert set(ids(result)) == ALL_IDS
    assert result.total == len(DOCS)
    assert loaded.search_products("   ").total == len(DOCS)


def test_query_without_searchable_token_matches_nothing(loaded):
    # Text that gives no token (only punctuation or symbols) matches nothing,
    # where a blank query lists everything.
    for text in ("!!!", "?!-", " ... "):
        result = loaded.search_products(text, limit=50)
        assert (result.total, ids(result)) == (0, [])
    # With a filter it is a filter-only search.
    result = loaded.search_products("!!!", SearchFilters(brands=("dell",)))
    assert (result.total, ids(result)) == (1, ["12"])


def test_pagination(loaded):
    pages = [loaded.search_products("", offset=offset, limit=5) for offset in (0, 5, 10, 15)]
    assert [len(p.hits) for p in pages] == [5, 5, 3, 0]
    assert all(p.total == len(DOCS) for p in pages)
    seen = [i for p in pages for i in ids(p)]
    assert len(seen) == len(set(seen)) == len(DOCS)

    full = ids(loaded.search_products("printer", limit=50))
    paged = ids(loaded.search_products("printer", offset=0, limit=2)) + ids(
        loaded.search_products("printer", offset=2, limit=50)
    )
    assert paged == full
    assert len(full) >= 4


def test_limit_zero_still_counts(loaded):
    result = loaded.search_products("printer", limit=0)
    assert result.hits == []
    assert result.total >= 4


@pytest.mark.parametrize(
    "query",
    ['"', 'hp"', ":", "(", "laserjet (", ")", "+", "-", "*", "las*", "AND", "hp AND", "OR NOT",
     "\\", "/", "[]", "{}", "~1", "^2", "!", "?", "&&", "||", "café", "日本語", "ｈｐ", "🖨️",
     "a" * 300, "title:hp", 'brand:"HP" AND (toner OR', "\x00", "' OR 1=1 --"],
)  # fmt: skip
def test_special_characters_never_raise(loaded, query):
    result = loaded.search_products(query)
    assert isinstance(result, SearchResult)
    assert result.total >= len(result.hits)
    assert isinstance(loaded.suggest(query, fuzzy=True), list)


def test_query_syntax_is_treated_as_words(loaded):
    # Field syntax is not interpreted: "brand:hp" searches the words.
    result = loaded.search_products("brand:hp")
    assert result.total >= 5
    assert result.hits[0].document.brand.lower() == "hp"
    # A leading minus is not a negation.
    assert "6" in ids(loaded.search_products("-brother"))
    assert ids(loaded.search_products("+toner +brother"))[0] == "6"


# -- products: writes -------------------------------------------------------
def test_rebuild_returns_version_and_counts(backend):
    version = backend.rebuild_products(DOCS)
    assert isinstance(version, str) and version
    assert backend.count_products() == len(DOCS)


def test_rebuild_reports_progress_per_batch(backend, settings):
    settings.SUGGESTIONS_INDEX_BATCH_SIZE = 5
    backend = get_backend()  # the settings change rebuilt the backends
    calls: list[int] = []
    backend.rebuild_products(iter(DOCS), progress=calls.append)
    assert calls == [5, 5, 3]
    assert sum(calls) == len(DOCS)


def test_index_products_updates_a_document(loaded):
    changed = P("8", "StarTech.com 3m Thunderbolt 4 Cable", "StarTech.com", "Cable", "TBLT4MM3M",
                "40Gbps passive cable", price=39.99)  # fmt: skip
    loaded.index_products([changed])
    assert loaded.count_products() == len(DOCS)
    result = loaded.search_products("thunderbolt")
    assert ids(result) == ["8"]
    assert result.hits[0].document == changed
    # The old version is gone, not kept beside the new one.
    assert "8" not in ids(loaded.search_products("sync charging"))
    assert set(ids(loaded.search_products("", SearchFilters(max_price=15)))) == {"9"}


def test_index_products_adds_new_documents(loaded):
    loaded.index_products(
        [P("20", "Epson EcoTank ET-2850 Printer", "Epson", "Printer", price=199.0)]
    )
    assert loaded.count_products() == len(DOCS) + 1
    assert ids(loaded.search_products("ecotank")) == ["20"]
    assert loaded.search_products("", SearchFilters(brands=("epson",))).brand_counts == {"Epson": 1}


def test_index_products_without_rebuild_creates_the_index(backend):
    backend.index_products(DOCS[:2])
    assert backend.count_products() == 2
    assert ids(backend.search_products("m507x")) == ["2"]


def test_delete_products(loaded):
    loaded.delete_products(["4", "does-not-exist"])
    assert loaded.count_products() == len(DOCS) - 1
    assert "4" not in ids(loaded.search_products("26a toner", limit=50))
    assert loaded.search_products("CF226A").total == 0
    loaded.delete_products([])
    assert loaded.count_products() == len(DOCS) - 1


def test_delete_on_empty_backend_is_a_no_op(backend):
    backend.delete_products(["1"])
    assert backend.count_products() == 0


def test_rebuild_swaps_atomically(backend, settings):
    backend.rebuild_products(DOCS)
    # One document per batch, so the new version really is being written
    # while the checks in the generator run.
    settings.SUGGESTIONS_INDEX_BATCH_SIZE = 1
    backend = get_backend()
    during: list[tuple] = []
    new_docs = [
        P("n1", "Epson EcoTank ET-2850 Printer", "Epson", "Printer", price=199.0),
        P("n2", "Epson 104 EcoTank Ink Bottle", "Epson", "Ink", price=12.0),
        P("n3", "Epson WorkForce Pro Printer", "Epson", "Printer", price=149.0),
    ]

    def documents():
        for doc in new_docs:
            yield doc
            during.append(
                (
                    backend.count_products(),
                    backend.search_products("laserjet", limit=50).total,
                    backend.search_products("epson").total,
                )
            )

    backend.rebuild_products(documents())
    # Until the swap, readers saw the old index in full and none of the new one.
    assert during == [(len(DOCS), 5, 0)] * 3
    assert backend.count_products() == 3
    assert backend.search_products("laserjet").total == 0
    assert set(ids(backend.search_products("epson"))) == {"n1", "n2", "n3"}
    assert backend.search_products("").brand_counts == {"Epson": 3}


def test_rebuild_with_no_documents_empties_the_index(loaded):
    loaded.rebuild_products([])
    assert loaded.count_products() == 0
    assert loaded.search_products("").total == 0


# -- suggestions ------------------------------------------------------------
def test_suggest_exact_prefix_ordered_by_weight(loaded):
    hits = loaded.suggest("hp")
    assert texts(hits) == [
        "hpe proliant",
        "hp laserjet",
        "hp ink",
        "hp laserjet toner",
        "hp laserjet pro m404dn",
    ]
    assert [h.weight for h in hits] == [95, 90, 70, 60, 40]
    assert not any(h.fuzzy for h in hits)
    assert hits[0].source == "catalog" and hits[1].source == "history"


def test_suggest_multi_word_prefix(loaded):
    assert texts(loaded.suggest("hp la")) == [
        "hp laserjet",
        "hp laserjet toner",
        "hp laserjet pro m404dn",
    ]
    assert texts(loaded.suggest("hp laserjet p")) == ["hp laserjet pro m404dn"]
    # Prefixes are normalised like the keys.
    assert texts(loaded.suggest("HP  La")) == texts(loaded.suggest("hp la"))
    # A typed trailing space ends the word: "hpe" no longer matches.
    assert "hpe proliant" not in texts(loaded.suggest("hp "))
    assert texts(loaded.suggest("hp "))[0] == "hp laserjet"


def test_suggest_cjk_prefix(loaded):
    assert texts(loaded.suggest("佳能")) == ["佳能 墨盒"]


def test_suggest_fuzzy_one_edit_after_exact(loaded):
    hits = loaded.suggest("gears of wra", fuzzy=True)
    # The exact-prefix match leads despite its lower weight.
    assert texts(hits) == ["gears of wrath", "gears of war", "gears of war 3"]
    assert [h.fuzzy for h in hits] == [False, True, True]
    assert [h.weight for h in hits] == [5, 50, 30]


def test_suggest_fuzzy_handles_each_kind_of_edit(loaded):
    for typo in ("gaers of war", "gears of wa r", "gers of war", "gezrs of war"):
        hits = loaded.suggest(typo, fuzzy=True)
        assert "gears of war" in texts(hits), typo
        assert all(h.fuzzy for h in hits), typo
    # Two edits away: nothing.
    assert loaded.suggest("gaers od war", fuzzy=True) == []


def test_suggest_without_fuzzy_returns_no_fuzzy_hits(loaded):
    assert texts(loaded.suggest("gears of wra")) == ["gears of wrath"]
    assert loaded.suggest("gaers of war") == []
    assert all(not h.fuzzy for h in loaded.suggest("gears"))


def test_suggest_respects_limit(loaded):
    assert texts(loaded.suggest("hp", limit=2)) == ["hpe proliant", "hp laserjet"]
    hits = loaded.suggest("gears of wra", limit=2, fuzzy=True)
    assert texts(hits) == ["gears of wrath", "gears of war"]
    assert loaded.suggest("hp", limit=0) == []


def test_suggest_empty_prefix_returns_nothing(loaded):
    assert loaded.suggest("") == []
    assert loaded.suggest("   ", fuzzy=True) == []


def test_replace_suggestions_removes_old_entries(loaded):
    loaded.replace_suggestions([SuggestionEntry("canon pixma", 5.5, "catalog")])
    assert loaded.suggest("hp") == []
    assert loaded.suggest("gears", fuzzy=True) == []
    hits = loaded.suggest("can")
    assert texts(hits) == ["canon pixma"]
    assert hits[0].weight == 5.5
    loaded.replace_suggestions([])
    assert loaded.suggest("can") == []


def test_replace_suggestions_keeps_heaviest_duplicate(backend):
    backend.replace_suggestions(
        [
            SuggestionEntry("usb hub", 1),
            SuggestionEntry("USB  Hub", 7),
            SuggestionEntry("usb cable", 3),
        ]
    )
    hits = backend.suggest("usb")
    assert [(h.text.lower().split(), h.weight) for h in hits] == [
        (["usb", "hub"], 7),
        (["usb", "cable"], 3),
    ]


def test_suggest_fractional_weights_keep_their_order(backend):
    backend.replace_suggestions(
        [
            SuggestionEntry("toner a", 0.0042),
            SuggestionEntry("toner b", 0.0031),
            SuggestionEntry("toner c", 0.0057),
        ]
    )
    hits = backend.suggest("toner")
    assert texts(hits) == ["toner c", "toner a", "toner b"]
    assert hits[0].weight == pytest.approx(0.0057)


# -- products: synonyms ------------------------------------------------------
def test_synonyms_widen_a_query_to_the_alternatives(loaded):
    # No document says "cord"; the approved synonym "cable" finds the cables.
    assert loaded.search_products("cord").total == 0
    result = loaded.search_products("cord", synonyms={"cord": ("cable",)})
    assert set(ids(result)) == {"8", "9"}
    assert result.total == 2


def test_synonyms_keep_the_original_matches(loaded):
    plain = set(ids(loaded.search_products("mouse")))
    widened = set(ids(loaded.search_products("mouse", synonyms={"mouse": ("monitor",)})))
    assert plain == {"11"}
    assert widened == {"11", "12"}


def test_synonym_variant_matching_every_word_ranks_first(loaded):
    # "usb cord": the variant "usb cable" matches every word of the USB cable.
    result = loaded.search_products("usb cord", synonyms={"cord": ("cable",)})
    assert ids(result)[0] == "8"


def test_multi_word_synonyms(loaded):
    result = loaded.search_products("mono printer", synonyms={"mono printer": ("monochrome laser printer",)})
    assert ids(result)[0] == "1"


def test_synonyms_of_absent_terms_change_nothing(loaded):
    plain = loaded.search_products("toner")
    same = loaded.search_products("toner", synonyms={"cord": ("cable",)})
    assert ids(same) == ids(plain) and same.total == plain.total


def test_synonyms_with_filters(loaded):
    result = loaded.search_products("cord", SearchFilters(max_price=13.0), synonyms={"cord": ("cable",)})
    assert ids(result) == ["9"]


# -- vectors (dense recall) --------------------------------------------------
MODEL = "test-encoder"


def _unit_vectors(seed: int = 0, dim: int = 8) -> dict[str, list[float]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    # Positive components: cosines stay in (0, 1], where every engine orders alike.
    matrix = np.abs(rng.normal(size=(len(DOCS), dim)))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return {d.id: matrix[n].tolist() for n, d in enumerate(DOCS)}


def _nearest_by_hand(vectors: dict[str, list[float]], query: list[float], allowed=None) -> list[str]:
    import numpy as np

    scored = [(float(np.dot(v, query)), i) for i, v in vectors.items() if allowed is None or i in allowed]
    return [i for _s, i in sorted(scored, key=lambda x: (-x[0], x[1]))]


def test_every_backend_stores_vectors(backend):
    assert backend.supports_vectors is True


def test_nearest_products_by_cosine_with_their_documents(loaded):
    vectors = _unit_vectors()
    assert loaded.count_vectors(MODEL) == 0
    assert loaded.search_vectors(MODEL, vectors["3"]).hits == []
    assert loaded.store_vectors(MODEL, list(vectors), list(vectors.values())) == len(DOCS)
    assert loaded.count_vectors(MODEL) == len(DOCS)
    assert loaded.vector_ids(MODEL) == ALL_IDS
    result = loaded.search_vectors(MODEL, vectors["3"], limit=5)
    assert ids(result) == _nearest_by_hand(vectors, vectors["3"])[:5]
    assert result.hits[0].id == "3" and abs(result.hits[0].score - 1.0) < 5e-3  # float32 on the engine side
    assert result.hits[0].document == next(d for d in DOCS if d.id == "3")
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_vector_search_honours_filters(loaded):
    vectors = _unit_vectors(seed=1)
    loaded.store_vectors(MODEL, list(vectors), list(vectors.values()))
    filters = SearchFilters(brands=("hp",), max_price=200)
    result = loaded.search_vectors(MODEL, vectors["8"], filters, limit=10)
    assert set(ids(result)) == {"4", "5"}  # HP under 200: the two toners
    assert ids(result) == _nearest_by_hand(vectors, vectors["8"], {"4", "5"})


def test_vectors_are_kept_per_encoder_and_follow_deletes(loaded):
    vectors = _unit_vectors(seed=2)
    other = _unit_vectors(seed=3)
    loaded.store_vectors(MODEL, list(vectors), list(vectors.values()))
    loaded.store_vectors("other-encoder", ["1", "2"], [other["1"], other["2"]])
    assert loaded.count_vectors("other-encoder") == 2
    assert ids(loaded.search_vectors("other-encoder", other["2"], limit=5)) == ["2", "1"]
    loaded.delete_products(["3"])
    assert "3" not in ids(loaded.search_vectors(MODEL, vectors["3"], limit=20))
    assert "3" not in loaded.vector_ids(MODEL)


def test_storing_again_replaces_a_products_vector_and_skips_unknown_ids(loaded):
    vectors = _unit_vectors(seed=4)
    loaded.store_vectors(MODEL, list(vectors), list(vectors.values()))
    moved = vectors["7"]
    assert loaded.store_vectors(MODEL, ["11", "unknown-id"], [moved, moved]) == 1
    nearest = ids(loaded.search_vectors(MODEL, moved, limit=2))
    assert set(nearest) == {"7", "11"}
    assert loaded.count_vectors(MODEL) == len(DOCS)
    assert loaded.store_vectors(MODEL, ["1"], [vectors["1"]], replace=True) == 1
    assert loaded.vector_ids(MODEL) == {"1"}


# -- tantivy only -----------------------------------------------------------
@pytest.fixture
def tantivy_backend(settings):
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}}
    }
    return get_backend()


def _other_process_view():
    """A second backend instance on the same directory, as another process has."""
    from suggestions.recall.tantivy import TantivyRecallBackend

    return TantivyRecallBackend("default", {})


def test_tantivy_second_instance_sees_committed_writes(tantivy_backend, settings):
    other = _other_process_view()
    assert other.count_products() == 0

    tantivy_backend.rebuild_products(DOCS)
    assert other.count_products() == len(DOCS)
    tantivy_backend.index_products([P("30", "Zebra ZD421 Label Printer", "Zebra", "Printer")])
    assert ids(other.search_products("zebra")) == ["30"]
    tantivy_backend.delete_products(["30", "1"])
    assert other.count_products() == len(DOCS) - 1
    assert other.search_products("zebra").total == 0

    tantivy_backend.replace_suggestions(SUGGESTIONS)
    assert texts(other.suggest("hp la"))[0] == "hp laserjet"

    # And the other way round, including a swap of versions.
    other.rebuild_products(DOCS[:3])
    assert tantivy_backend.count_products() == 3
    other.close()


def test_tantivy_layout_under_data_dir(tantivy_backend, settings):
    tantivy_backend.rebuild_products(DOCS)
    tantivy_backend.rebuild_products(DOCS[:2])
    base = os.path.join(settings.SUGGESTIONS_DATA_DIR, "tantivy", "default")
    assert tantivy_backend.path == base
    with open(os.path.join(base, "products.current")) as fh:
        live = fh.read().strip()
    versions = [n for n in os.listdir(base) if n.startswith("products-v")]
    # Older versions are removed once the pointer moved.
    assert versions == [live]
    assert tantivy_backend.count_products() == 2


def test_tantivy_path_option(settings, tmp_path):
    path = tmp_path / "elsewhere"
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {"PATH": str(path)}}
    }
    backend = get_backend()
    backend.rebuild_products(DOCS[:1])
    assert (path / "products.current").exists()
    assert not os.path.exists(os.path.join(settings.SUGGESTIONS_DATA_DIR, "tantivy"))


def _hold_writer(path: str, seconds: float) -> threading.Thread:
    """Hold the live products index's writer lock for ``seconds``, as a
    writer in another process would."""
    import tantivy

    with open(os.path.join(path, "products.current")) as fh:
        index = tantivy.Index.open(os.path.join(path, fh.read().strip()))
    writer = index.writer(15_000_000, 1)

    def release() -> None:
        time.sleep(seconds)
        writer.wait_merging_threads()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_tantivy_write_waits_for_another_writer(tantivy_backend):
    tantivy_backend.rebuild_products(DOCS)
    thread = _hold_writer(tantivy_backend.path, 0.5)
    started = time.monotonic()
    tantivy_backend.index_products([P("40", "Kyocera Ecosys Printer", "Kyocera", "Printer")])
    assert time.monotonic() - started >= 0.3
    thread.join()
    assert ids(tantivy_backend.search_products("kyocera")) == ["40"]


def test_tantivy_write_gives_up_after_lock_timeout(settings):
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {"LOCK_TIMEOUT": 0.2}}
    }
    backend = get_backend()
    backend.rebuild_products(DOCS)
    thread = _hold_writer(backend.path, 1.5)
    try:
        with pytest.raises(RecallUnavailable):
            backend.index_products([P("41", "Kyocera Ecosys Printer")])
    finally:
        thread.join()
    assert backend.search_products("kyocera").total == 0


def test_tantivy_unusable_directory_is_unavailable(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {
            "BACKEND": "suggestions.recall.tantivy",
            "OPTIONS": {"PATH": str(blocker / "idx")},
        }
    }
    backend = get_backend()
    assert backend.ping() is False
    with pytest.raises(RecallUnavailable):
        backend.rebuild_products(DOCS)
    with pytest.raises(RecallUnavailable):
        backend.replace_suggestions(SUGGESTIONS)


def test_tantivy_concurrent_readers_during_writes(tantivy_backend):
    tantivy_backend.rebuild_products(DOCS)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                assert tantivy_backend.search_products("laserjet").total >= 5
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for n in range(5):
            tantivy_backend.index_products([P(f"c{n}", f"Concurrent LaserJet {n}")])
        tantivy_backend.rebuild_products(DOCS)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert tantivy_backend.count_products() == len(DOCS)


# -- elasticsearch only -----------------------------------------------------
@pytest.mark.es
def test_es_unreachable_cluster_raises_quickly(settings):
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": _es_config(f"http://127.0.0.1:{free_port()}", "down", TIMEOUT=2)
    }
    backend = get_backend()
    assert backend.is_remote is True
    for call in (
        lambda: backend.search_products("laserjet"),
        lambda: backend.suggest("hp", fuzzy=True),
        backend.count_products,
        lambda: backend.index_products(DOCS[:1]),
    ):
        started = time.monotonic()
        with pytest.raises(RecallUnavailable):
            call()
        assert time.monotonic() - started < 5
    started = time.monotonic()
    assert backend.ping() is False
    assert time.monotonic() - started < 5


@pytest.mark.es
def test_es_missing_client_is_improperly_configured(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "elasticsearch", None)
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": _es_config("http://127.0.0.1:9", "x")}
    with pytest.raises(
        ImproperlyConfigured, match=r'pip install "django-shop-suggestions\[elasticsearch\]"'
    ):
        get_backend()


@pytest.mark.es
@pytest.mark.services
def test_es_versions_behind_aliases(es_url, settings):
    from elasticsearch import Elasticsearch

    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": _es_config(es_url, prefix)}
    backend = get_backend()
    client = Elasticsearch([es_url], request_timeout=10)
    try:
        # A first incremental write creates a versioned index behind the
        # alias, never a concrete index named like the alias.
        backend.index_products(DOCS[:1])
        first = list(client.indices.get_alias(name=f"{prefix}-products"))
        assert len(first) == 1 and first[0].startswith(f"{prefix}-products-")

        version = backend.rebuild_products(DOCS)
        backend.rebuild_products(DOCS[:2])
        backend.replace_suggestions(SUGGESTIONS)
        backend.replace_suggestions(SUGGESTIONS[:1])
        products = sorted(client.indices.get(index=f"{prefix}-products-*"))
        suggestions = sorted(client.indices.get(index=f"{prefix}-suggestions-*"))
        assert len(products) == 1 and version not in products
        assert list(client.indices.get_alias(name=f"{prefix}-products")) == products
        assert len(suggestions) == 1
        assert list(client.indices.get_alias(name=f"{prefix}-suggestions")) == suggestions
        source = client.get(index=f"{prefix}-products", id="1")["_source"]
        assert "_id" not in source and source["doc"]["id"] == "1"
    finally:
        _drop_indices(client, prefix)
        client.close()
