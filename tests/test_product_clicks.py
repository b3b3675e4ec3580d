"""Product clicks imported with a search log, product-name phrases, and the
suggestion ranker's product-click features."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from suggestions import services
from suggestions.adapter import ProductDocument
from suggestions.catalog_phrases import mine_phrases, product_name_phrases
from suggestions.ml.suggestion_ranker import (
    FEATURE_NAMES,
    CandidateStats,
    RankerModel,
    Search,
    TrainParams,
)
from suggestions.models import ProductClick, QueryDailyStat, SearchEvent
from tests.factories import ProductFactory


@pytest.mark.django_db
def test_import_stores_the_clicked_product_without_a_position_once():
    halo = ProductFactory(title="Halo 3")
    when = datetime(2024, 5, 1, 10, 0)
    rows = [services.ImportedSearch("u1", "Halo 3", when, product=str(halo.pk), clicked_at=when + timedelta(minutes=1)),
            services.ImportedSearch("u2", "halo", when, product="no-such-product"),
            services.ImportedSearch("u3", "halo 3", when + timedelta(hours=1))]
    report = services.import_search_history(rows)
    assert (report.imported, report.clicks, report.unknown_products) == (3, 1, 1)
    click = ProductClick.objects.get()
    search = SearchEvent.objects.get(query="Halo 3")
    assert (click.object_id, click.query, click.position) == (str(halo.pk), "halo 3", None)
    assert click.request_id == search.request_id and click.actor_hash == search.actor_hash
    assert click.created_at == timezone.make_aware(when + timedelta(minutes=1))
    assert QueryDailyStat.objects.get(normalized_query="halo 3").product_clicks == 1
    again = services.import_search_history(rows)
    assert (again.imported, again.clicks) == (0, 0) and ProductClick.objects.count() == 1


@pytest.mark.django_db
def test_import_command_reads_a_product_column(tmp_path):
    halo = ProductFactory(title="Halo 3")
    path = tmp_path / "log.csv"
    path.write_text(f"user,sku,query,query_time\nu1,{halo.pk},halo 3,2024-05-01 10:00:00\n"
                    "u2,999999,halo,2024-05-01 10:05:00\n", encoding="utf-8")
    out = []

    class Collect:
        def write(self, text, *_a, **_k):
            out.append(text)

    call_command("suggestions_import_history", str(path), "--product-column", "sku", "--no-progress",
                 stdout=Collect())
    assert ProductClick.objects.get().object_id == str(halo.pk)
    assert "1 product clicks" in out[0] and "1 clicks on products the catalog does not have" in out[0]


def test_product_name_phrases_are_leading_words_not_ending_on_a_stop_word():
    assert product_name_phrases("Call of Duty: Modern Warfare 3") == [
        "call", "call of duty", "call of duty modern", "call of duty modern warfare",
        "call of duty modern warfare 3"]
    assert product_name_phrases("FIFA 12", max_words=1) == ["fifa"]


def _docs(titles):
    return [ProductDocument(id=str(i), title=t) for i, t in enumerate(titles)]


def test_product_names_auto_mines_short_titles_only():
    short = _docs(["Gears of War 3", "Halo Reach", "Halo 3 ODST", "Forza Motorsport 4"])
    phrases = mine_phrases(short, product_names="auto")
    assert phrases["halo"].rule == "product_name" and phrases["halo"].products == 2
    assert "gears of war 3" in phrases and "gears of" not in phrases
    long = _docs(["HP LaserJet Pro M404dn monochrome laser printer 1200 dpi A4 duplex",
                  "HP LaserJet Pro M404n monochrome laser printer 1200 dpi A4 network",
                  "Canon PIXMA TS5150 colour inkjet printer A4 wireless scanner copier"])
    assert not any(p.rule == "product_name" for p in mine_phrases(long, product_names="auto").values())
    assert any(p.rule == "product_name" for p in mine_phrases(long, product_names=True).values())


def test_product_click_features_count_a_names_products_and_a_querys_products():
    now = datetime(2024, 5, 10)
    searches = ([Search("halo", f"u{i}", now - timedelta(days=1), ("1",)) for i in range(4)]
                + [Search("halo reach", f"v{i}", now, ("2",)) for i in range(3)])
    stats = CandidateStats(searches, {"halo 3": 1}, 3, product_names={"halo 3": {"1"}})
    # The name's product had 4 clicks a day ago; "halo reach" led to product 2 (3 clicks now).
    assert stats.product_clicks("halo 3", 7.0) == pytest.approx(4 * 0.5 ** (1 / 7))
    assert stats.product_clicks("halo reach", 7.0) == pytest.approx(3.0)
    assert stats.product_clicks("unknown", 7.0) == 0.0
    pool = stats.pool("halo")
    rows = stats.features("halo", pool)
    column = FEATURE_NAMES.index("product_clicks7_vs_pool_best")
    best = max(pool, key=lambda t: stats.product_clicks(t, 7.0))
    assert rows[pool.index(best), column] == pytest.approx(1.0)


def test_a_model_trained_before_the_click_features_still_scores(tmp_path):
    rng = np.random.default_rng(0)
    old = FEATURE_NAMES[:20]
    x = rng.normal(size=(400, len(old))).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    from suggestions.ml.ltr import fit_lambdarank

    booster = fit_lambdarank(x, y, [10] * 40, TrainParams(n_estimators=10, min_child_samples=5), old, top_k=10)
    RankerModel(booster, {"features": list(old)}).save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    full = np.hstack([x, np.zeros((len(x), len(FEATURE_NAMES) - len(old)), np.float32)])
    assert np.allclose(loaded.scores(full), booster.predict(x))
    meta = tmp_path / "m" / "meta.json"
    meta.write_text(json.dumps({"features": ["something_else"] + list(old[1:])}))
    with pytest.raises(ValueError, match="other features"):
        RankerModel.load(tmp_path / "m")
