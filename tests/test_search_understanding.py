"""Understanding in search: which fallback tags boost, and the search ranker's fusion features."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pytest

from suggestions import services
from suggestions.ml import search_ranker as sr
from suggestions.nlp import rules
from suggestions.nlp.gazetteer import Gazetteer
from suggestions.nlp.types import Entity, Understanding
from suggestions.recall import SearchFilters
from suggestions.recall.base import SearchHit, SearchResult


def _catalog_gazetteer() -> Gazetteer:
    docs = ([{"brand": "Dell", "product_type": "keyboard"}] * 6 + [{"brand": "Canon", "product_type": "camera"}] * 6
            + [{"brand": "SanDisk", "product_type": "card"}] * 2 + [{"brand": "Nikon", "product_type": "digital camera"}])
    return Gazetteer.from_documents(docs)


def _scores(query: str) -> dict[str, float]:
    u = rules.understand_with_rules(query, _catalog_gazetteer(), intents=["product_search"],
                                    entity_labels=["brand", "product_type", "color"])
    return {e.text: e.score for e in u.entities}


def test_fallback_tags_are_scored_by_their_shape_in_the_query():
    # A type of several words; a common one-word type that ends the query.
    assert _scores("digital camera") == {"digital camera": rules.SCORE_TYPE_PHRASE}
    assert _scores("gaming keyboard") == {"keyboard": rules.SCORE_TYPE_HEAD}
    # A one-word type before another word is a modifier ("camera" of a bag);
    # one named on few products is often another product's last word.
    assert _scores("camera bag") == {"camera": rules.SCORE_TYPE_WORD}
    assert _scores("sd card") == {"card": rules.SCORE_TYPE_WORD}
    # A brand first (or after other entities) against a brand after a word.
    assert _scores("dell keyboard")["dell"] == rules.SCORE_BRAND_LEADING
    assert _scores("case for dell")["dell"] == rules.SCORE_BRAND_AFTER_WORD
    # Other entities (built-in words) keep their score; words covered by an
    # entity are not free ("black" does not make "keyboard" a modifier).
    black_keyboard = _scores("black keyboard")
    assert black_keyboard["keyboard"] == rules.SCORE_TYPE_HEAD
    assert black_keyboard["black"] == rules.understand_with_rules("black", Gazetteer()).entities[0].score


def _understood(source: str, *entities: Entity) -> Understanding:
    return Understanding(query="camera bag", language="en", intent="product_search", confidence=0.7,
                         entities=entities, source=source)


def test_only_reliable_fallback_tags_boost_but_a_models_all_do(settings):
    weak = Entity("product_type", "camera", 0, 6, "camera", rules.SCORE_TYPE_WORD)
    strong = Entity("brand", "canon", 0, 5, "Canon", rules.SCORE_BRAND_LEADING)
    _text, _filters, boosts = services.apply_understanding(_understood("rules", weak, strong), SearchFilters())
    assert (boosts.product_types, boosts.brands) == ((), ("Canon",))
    _text, _filters, boosts = services.apply_understanding(_understood("model:v1", weak), SearchFilters())
    assert boosts.product_types == ("camera",)
    settings.SUGGESTIONS_FALLBACK_MIN_SCORE = 0.0
    _text, _filters, boosts = services.apply_understanding(_understood("rules", weak), SearchFilters())
    assert boosts.product_types == ("camera",)


def _indexed_with_gazetteer(settings, tmp_path, *products: tuple[str, str, str, str, float]) -> None:
    """``products`` (source id, title, brand, product type, price) in the catalog,
    indexed, with the catalog gazetteer built and saved where search reads it."""
    from catalog.models import Product
    from suggestions.nlp.gazetteer import build_gazetteer

    for source_id, title, brand, product_type, price in products:
        Product.objects.create(source_id=source_id, title=title, brand=brand, product_type=product_type, price=price)
    services.rebuild_index()
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    build_gazetteer(save=True)


@pytest.mark.django_db
def test_search_does_not_boost_a_modifier_taken_for_the_product_type(settings, tmp_path):
    _indexed_with_gazetteer(
        settings, tmp_path,
        *[(f"c{i}", f"Canon EOS {i}00D camera kit", "Canon", "camera", 500 + i) for i in range(5)],
        *[(f"b{i}", f"Lowepro Adventura {i} shoulder camera bag", "Lowepro", "", 40 + i) for i in range(2)])
    settings.SUGGESTIONS_ENTITY_BOOST = 50.0  # a boost that outweighs any BM25 difference

    page = services.search("camera bag")
    assert [e.score for e in page.understanding.entities_of("product_type")] == [rules.SCORE_TYPE_WORD]
    assert {r.document.brand for r in page.results[:2]} == {"Lowepro"}
    # Boosting every tag (as before the reliability score) lists cameras first.
    from django.core.cache import caches

    caches["default"].clear()
    settings.SUGGESTIONS_FALLBACK_MIN_SCORE = 0.0
    assert services.search("camera bag").results[0].document.brand == "Canon"


# -- the search ranker's fusion features ------------------------------------------------------


def _hit(pid: str, score: float) -> SearchHit:
    from suggestions.adapter import ProductDocument

    return SearchHit(pid, score, ProductDocument(id=pid, title=pid))


def test_fusion_records_each_hits_ranks_and_similarity():
    from suggestions import dense

    lexical = SearchResult([_hit("a", 9.0), _hit("b", 5.0)], total=2)
    nearest = SearchResult([_hit("c", 0.91), _hit("a", 0.88)], total=2)
    fused = dense.fuse(lexical, nearest, weight=0.5, k=60)
    assert fused.fusion == {"a": (0, 1, pytest.approx(0.88)), "b": (1, None, None), "c": (None, 0, pytest.approx(0.91))}


def _stats() -> sr.ClickStats:
    return sr.ClickStats([sr.Click("q", "a", 0, "u", datetime(2026, 1, 1))], [sr.SearchCount("q", "u", datetime(2026, 1, 1))], 1)


def test_fusion_features_read_the_lists_ranks_or_fall_back_to_the_recall_rank():
    names = sr.FEATURE_NAMES
    lexical, knn, similarity = names.index("lexical_rank"), names.index("dense_rank"), names.index("dense_similarity")
    fused = [sr.Candidate("c", 0.0, "c", lexical_rank=None, dense_rank=0, dense_similarity=0.9, fused=True),
             sr.Candidate("a", 3.0, "a", lexical_rank=0, dense_rank=None, dense_similarity=None, fused=True)]
    x = sr.features(_stats(), sr.QueryContext("q"), fused)
    assert x[0, lexical] == sr.DEPTH and x[0, knn] == 0 and x[0, similarity] == pytest.approx(0.9)
    assert x[1, lexical] == 0 and x[1, knn] == sr.DEPTH and math.isnan(x[1, similarity])
    plain = sr.features(_stats(), sr.QueryContext("q"), [sr.Candidate("a", 3.0, "a"), sr.Candidate("b", 2.0, "b")])
    assert plain[:, lexical].tolist() == [0, 1] and plain[:, knn].tolist() == [sr.DEPTH, sr.DEPTH]


def _saved_model(folder, names) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, len(names))).astype("float32")
    model = sr.SearchRankerModel.fit(x, np.tile([1, 0, 0, 0], 10), [4] * 10,
                                     sr.TrainParams(n_estimators=5, min_child_samples=1), _stats())
    model.meta["features"] = list(names)
    model.save(folder)
    meta = json.loads((folder / model.META_FILE).read_text())
    assert meta["features"] == list(names)


def test_a_version_trained_before_the_fusion_features_still_loads_and_ranks(tmp_path, monkeypatch):
    older = sr.FEATURE_NAMES[:-3]  # the features before lexical_rank, dense_rank, dense_similarity
    monkeypatch.setattr(sr, "FEATURE_NAMES", older)
    _saved_model(tmp_path, older)
    monkeypatch.undo()
    model = sr.SearchRankerModel.load(tmp_path)
    assert model.columns == list(range(len(older)))
    cands = [sr.Candidate("a", 1.0, "a"), sr.Candidate("b", 2.0, "b"), sr.Candidate("c", 0.5, "c")]
    x = sr.features(model.stats, sr.QueryContext("q"), cands)
    assert x.shape[1] == len(sr.FEATURE_NAMES)
    assert np.allclose(model.scores(x), model.booster.predict(x[:, :len(older)], num_threads=1))
    assert sorted(model.order(sr.QueryContext("q"), cands)) == [0, 1, 2]


def test_a_version_that_reads_an_unknown_feature_fails_to_load(tmp_path, monkeypatch):
    newer = (*sr.FEATURE_NAMES, "feature_of_a_later_release")
    monkeypatch.setattr(sr, "FEATURE_NAMES", newer)
    _saved_model(tmp_path, newer)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="feature_of_a_later_release"):
        sr.SearchRankerModel.load(tmp_path)


@pytest.mark.django_db
def test_queries_the_ranker_reorders_are_recalled_without_fixed_boosts(settings, tmp_path, monkeypatch):
    from suggestions import search_ranking
    from suggestions.recall import get_backend

    _indexed_with_gazetteer(settings, tmp_path,
                            *[(f"c{i}", f"Canon EOS {i}00D camera", "Canon", "camera", 500 + i) for i in range(3)])
    backend = get_backend()
    seen = []
    original = type(backend).search_products

    def spy(self, text, *args, boosts=None, **kwargs):
        seen.append(boosts)
        return original(self, text, *args, boosts=boosts, **kwargs)

    monkeypatch.setattr(type(backend), "search_products", spy)
    monkeypatch.setattr(search_ranking, "serving_depth", lambda offset: 50)
    monkeypatch.setattr(search_ranking, "rerank", lambda q, u, f, result, *, offset, limit, corrected="":
                        SearchResult(result.hits[offset:offset + limit], result.total))
    understood = []
    for known in (False, True):
        monkeypatch.setattr(search_ranking, "reranks", lambda q, known=known: known)
        seen.clear()
        page = services.search("canon camera")
        understood.append([e.value for e in page.understanding.entities_of("brand")])
        assert len(page.results) == 3
        assert seen[0].brands == (() if known else ("Canon",))
    # The ranker still reads what understanding found (its brand_match feature).
    assert understood == [["Canon"], ["Canon"]]
