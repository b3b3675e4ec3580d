"""The search ranker: position-corrected and smoothed click features without
leakage, the ``search_ranker`` kind through the learning loop, serving only
with an active version, and bench/search_clicks end to end on a tiny log."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from catalog.models import Product
from suggestions import search_ranking, services
from suggestions.history import ImportedSearch, import_searches
from suggestions.ml import search_ranker as sr
from suggestions.models import ProductClick
from suggestions.recall import SearchFilters
from tests.factories import ProductFactory

T0 = datetime(2026, 1, 1, tzinfo=timezone.get_fixed_timezone(0))


def _click(query, product, position=0, actor="a", minutes=0):
    return sr.Click(query, product, position, actor, T0 + timedelta(minutes=minutes))


def _searches(query, shoppers, minutes=0):
    return [sr.SearchCount(query, f"s{i}", T0 + timedelta(minutes=minutes)) for i in range(shoppers)]


# -- features -------------------------------------------------------------------------------


def test_position_bias_is_recovered_from_the_click_positions():
    rng = np.random.default_rng(0)
    # Equally relevant results, examined with probability (k + 1) ** -1.
    positions = [k for k in range(20) for _ in range(rng.binomial(5000, 1 / (k + 1)))]
    assert sr.position_bias(positions) == pytest.approx(1.0, abs=0.1)
    steeper = [k for k in range(20) for _ in range(rng.binomial(5000, (k + 1) ** -1.6))]
    assert sr.position_bias(steeper) > sr.position_bias(positions) + 0.3
    assert sr.position_bias([0, 0, 0]) == 0.0  # one position: nothing to fit


def test_a_click_deep_in_the_list_counts_more_than_one_at_the_top():
    stats = sr.ClickStats([_click("q", "top", 0), _click("q", "deep", 9)], _searches("q", 3), min_users=3, eta=1.0)
    assert stats.product["deep"] == pytest.approx(10 * stats.product["top"])
    # Clipped: a click far down cannot outweigh everything else.
    clipped = sr.ClickStats([_click("q", "far", 500)], _searches("q", 3), min_users=3, eta=1.0)
    assert clipped.product["far"] == sr.MAX_IPS_WEIGHT


def _row(stats, query, product):
    x = sr.features(stats, sr.QueryContext(query), [sr.Candidate(product, 1.0, product), sr.Candidate("other", 0.5)])
    return dict(zip(sr.FEATURE_NAMES, x[0].tolist(), strict=True))


def test_click_rates_are_smoothed_towards_the_product_prior():
    elsewhere = [_click("other", "x", 0, f"o{i}") for i in range(200)]
    few = sr.ClickStats([_click("q", "p", 0, f"s{i}") for i in range(2)] + elsewhere,
                        _searches("q", 3) + _searches("other", 200), min_users=3, eta=0.0)
    # 3 searches, 2 clicks: the raw rate is 2/3; the smoothed one stays near the product's low prior.
    rate_few = np.exp(_row(few, "q", "p")["qp_rate"])
    assert 0.01 < rate_few < 0.4
    many = sr.ClickStats([_click("q", "p", 0, f"s{i}") for i in range(200)] + elsewhere,
                         _searches("q", 300) + _searches("other", 200), min_users=3, eta=0.0)
    rate_many = np.exp(_row(many, "q", "p")["qp_rate"])
    assert rate_many == pytest.approx(200 / 300, rel=0.05)  # enough evidence: close to the raw rate


def test_a_query_below_the_gate_feeds_only_product_popularity():
    clicks = [_click("rare secret", "p", 0, "s0"), _click("rare secret", "p", 0, "s1")]
    stats = sr.ClickStats(clicks, _searches("rare secret", 2), min_users=3, eta=0.0)
    assert "rare secret" not in stats.query_products and "secret" not in stats.word_products
    assert stats.product["p"] == 2.0
    assert "rare secret" not in stats.to_dict()["query_searches"]
    gated = sr.ClickStats(clicks, _searches("rare secret", 3), min_users=3, eta=0.0)
    assert gated.query_products["rare secret"]["p"] == 2.0


def test_similar_gated_queries_lend_their_clicks():
    clicks = [_click("call of duty", "cod", 0, f"s{i}") for i in range(5)]
    stats = sr.ClickStats(clicks, _searches("call of duty", 5), min_users=3, eta=0.0)
    shares, similarity = stats.neighbours("cal of duty")
    assert set(shares) == {"cod"} and similarity > 0.8
    assert stats.clicked_for("cal of duty") == ["cod"]
    assert stats.neighbours("call of duty")[0] == {}  # never its own neighbour
    assert stats.neighbours("zelda")[0] == {}


def test_only_queries_the_clicks_know_are_reranked():
    clicks = [_click("call of duty", "cod", 0, f"s{i}") for i in range(5)]
    stats = sr.ClickStats(clicks, _searches("call of duty", 5), min_users=3, eta=0.0)
    assert stats.knows("call of duty") and stats.knows("cal of duty") and stats.knows("duty")
    assert not stats.knows("toner cartridge")


def test_training_features_never_see_their_own_label_click():
    # Older clicks of "q" go to "old"; the newer (label) clicks to "new". If
    # the features saw the labels, "new" would carry the query's click share.
    clicks = [_click("q", "old", 0, f"a{i}", minutes=i) for i in range(70)]
    clicks += [_click("q", "new", 1, f"b{i}", minutes=100 + i) for i in range(30)]
    searches = [sr.SearchCount("q", f"u{i}", T0 + timedelta(minutes=i)) for i in range(130)]

    def recall(query):
        return sr.QueryContext(query), [sr.Candidate("old", 2.0, "old thing"), sr.Candidate("new", 1.0, "new thing")]

    x, y, groups = sr.training_groups(clicks, searches, recall, None, sr.TrainParams(feature_shares=(0.7,)),
                                      min_users=3)
    assert groups == [2] * 30 and y.sum() == 30
    share = sr.FEATURE_NAMES.index("qp_share")
    positives, negatives = x[y == 1, share], x[y == 0, share]
    assert (positives < negatives).all()
    # Two cuts: the clicks between them are labels of the first, features of the second, never both.
    x, y, groups = sr.training_groups(clicks, searches, recall, None, sr.TrainParams(feature_shares=(0.5, 0.75)),
                                      min_users=3)
    assert len(groups) == 50
    # The statistics saved with a version round-trip.
    stats = sr.ClickStats(clicks, searches, min_users=3)
    again = sr.ClickStats.from_dict(stats.to_dict())
    assert again.query_products == stats.query_products and again.eta == stats.eta


# -- the kind through the loop ----------------------------------------------------------------


def _shop(days: int = 30, per_day: int = 12, seed: int = 0):
    """Six 'acme toner' products; shoppers click the one BM25 ranks last, at its position."""
    rng = random.Random(seed)
    products = [ProductFactory(title=f"Acme toner {'black ' * (5 - i)}cartridge {i}") for i in range(6)]
    services.rebuild_index()
    order = [r.document.id for r in services.get_backend().search_products("acme toner", limit=10).hits]
    favourite = next(p for p in products if str(p.pk) == order[-1])
    others = [p for p in products if p != favourite]
    start = timezone.now() - timedelta(days=days)
    searches, clicks = [], []
    ct = ContentType.objects.get_for_model(Product)
    for day in range(days):
        for i in range(per_day):
            when = start + timedelta(days=day, minutes=i)
            user = f"u{day}-{i}"
            searches.append(ImportedSearch(user=user, query="acme toner", time=when))
            target = favourite if rng.random() < 0.8 else rng.choice(others)
            clicks.append(ProductClick(created_at=when + timedelta(seconds=20), request_id="0" * 32,
                                       query="acme toner", content_type=ct, object_id=str(target.pk),
                                       position=order.index(str(target.pk)), actor_hash=f"h{user}"))
    import_searches(searches)
    ProductClick.objects.bulk_create(clicks)
    return products, favourite, order


@pytest.mark.django_db
def test_the_kind_learns_from_clicks_is_gated_and_serves_only_when_active(
        settings, tmp_path, django_capture_on_commit_callbacks):
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 0
    settings.SUGGESTIONS_HELDOUT_DAYS = 7
    search_ranking.reset()
    products, favourite, order = _shop()
    assert order[0] != str(favourite.pk)
    before = [r.document.id for r in services.search("acme toner", page_size=3).results]
    assert search_ranking.active_ranker() is None  # no active version: nothing loaded, search unchanged

    with django_capture_on_commit_callbacks(execute=True):
        report = services.retrain("search_ranker")
    version = report.version
    assert report.promoted, report.gate.reason
    assert version.kind == "search_ranker" and version.status == "active"
    assert version.training_window_end < version.heldout_window_start
    assert version.metrics["heldout_units"] == report.gate.n > 0
    assert Path(version.artefact_uri, "ranker.txt").exists()
    # Promotion refreshed the serving statistics from the whole history.
    assert search_ranking.serving_stats_path(version.version).exists()
    page = services.search("acme toner", page_size=3)
    assert page.results[0].document.id == str(favourite.pk)
    assert [r.position for r in page.results] == [0, 1, 2]
    # Page 2 continues the reranked order without repeating page 1.
    second = services.search("acme toner", page=2, page_size=3)
    assert not {r.document.id for r in second.results} & {r.document.id for r in page.results}

    # The setting turns it off: recall's order again.
    settings.SUGGESTIONS_SEARCH_RANKER = False
    assert [r.document.id for r in services.search("acme toner", page_size=3).results] == before
    settings.SUGGESTIONS_SEARCH_RANKER = True

    # A broken challenger (labels shuffled) is rejected; the active one stays.
    broken = services.retrain("search_ranker", options={"shuffle_labels": True})
    assert not broken.promoted and broken.version.status == "rejected"
    version.refresh_from_db()
    assert version.status == "active"

    # Retired: no active version, search as recall orders it.
    with django_capture_on_commit_callbacks(execute=True):
        services.retire(version)
    assert [r.document.id for r in services.search("acme toner", page_size=3).results] == before
    assert not search_ranking.serving_stats_path(version.version).exists()


@pytest.mark.django_db
def test_without_an_active_version_search_asks_recall_for_the_page_only(settings, monkeypatch):
    search_ranking.reset()
    ProductFactory(title="Acme toner cartridge")
    services.rebuild_index()
    backend = services.get_backend()
    limits = []
    original = backend.search_products

    def spy(*args, **kwargs):
        limits.append(kwargs.get("limit"))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend, "search_products", spy)
    services.search("acme toner", page_size=7)
    assert limits and limits[0] == 7


@pytest.mark.django_db
def test_filters_keep_click_recalled_products_out(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 0
    settings.SUGGESTIONS_HELDOUT_DAYS = 7
    search_ranking.reset()
    products, favourite, _order = _shop()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.retrain("search_ranker").promoted
    model = search_ranking.active_ranker()
    hits = services.get_backend().search_products("acme toner", limit=2).hits  # the favourite is not among them
    assert str(favourite.pk) not in {h.id for h in hits}
    result = services.get_backend().search_products("acme toner", limit=2)
    unfiltered = search_ranking.rerank("acme toner", None, SearchFilters(), result, offset=0, limit=3)
    assert str(favourite.pk) in {h.id for h in unfiltered.hits}  # joined from its clicks
    filtered = search_ranking.rerank("acme toner", None, SearchFilters(brands=("Acme",)), result, offset=0, limit=3)
    assert {h.id for h in filtered.hits} == {h.id for h in hits}
    # A failing model serves recall's order instead of an error.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model, "scores", lambda _x: 1 / 0)
        failed = search_ranking.rerank("acme toner", None, SearchFilters(), result, offset=0, limit=3)
    assert [h.id for h in failed.hits] == [h.id for h in hits]
    # A query the clicks know nothing about keeps recall's order.
    unknown = search_ranking.rerank("zebra", None, SearchFilters(), result, offset=0, limit=3)
    assert [h.id for h in unknown.hits] == [h.id for h in hits]
    assert model is not None


# -- bench/search_clicks --------------------------------------------------------------------


def test_bench_search_clicks_runs_end_to_end_on_a_tiny_log(tmp_path):
    rng = random.Random(1)
    games = {"101": "Call of Duty: Black Ops", "102": "Gears of War 3", "103": "Halo: Reach",
             "104": "Madden NFL 12", "105": "Battlefield 3", "106": "Forza Motorsport 4"}
    queries = {"101": ["call of duty", "black ops", "cod"], "102": ["gears of war", "gears 3"],
               "103": ["halo", "halo reach"], "104": ["madden", "madden 12"], "105": ["battlefield", "bf3"],
               "106": ["forza", "forza 4"]}
    (tmp_path / "bestbuy").mkdir()
    (tmp_path / "bestbuy" / "sku_name.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in games.items()))
    with (tmp_path / "bestbuy" / "train.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["user", "sku", "category", "query", "click_time", "query_time"])
        start = datetime(2011, 8, 1)
        for i in range(1500):
            sku = rng.choice(list(games))
            when = start + timedelta(minutes=40 * i)
            out.writerow([f"u{rng.randrange(400)}", sku, "c", rng.choice(queries[sku]), when + timedelta(seconds=30),
                          when])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run([sys.executable, "-m", "bench.search_clicks", "--data-dir", str(tmp_path), "--latency", "5",
                          "--resamples", "50"], capture_output=True, text=True, env=env, timeout=600,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for system in ("BM25 over names", "click prior", "search without the ranker", "ours: search with the ranker"):
        assert system in out
    ours = float(next(line for line in out.splitlines() if line.startswith("| ours")).split("|")[2])
    bm25 = float(next(line for line in out.splitlines() if line.startswith("| BM25")).split("|")[2])
    assert ours > bm25  # "cod", "bf3" and friends are learnt from clicks
    assert "median ratio on/off" in out


def test_reranking_in_a_web_process_imports_no_torch(tmp_path):
    code = (
        "import sys, numpy as np;"
        "from datetime import datetime;"
        "from suggestions.ml import search_ranker as sr;"
        "rng = np.random.default_rng(0); x = rng.random((40, len(sr.FEATURE_NAMES))).astype('float32');"
        "y = np.tile([1, 0, 0, 0], 10); stats = sr.ClickStats([sr.Click('q', 'a', 0, 'u', datetime(2026, 1, 1))],"
        " [sr.SearchCount('q', 'u', datetime(2026, 1, 1))], 1);"
        "sr.SearchRankerModel.fit(x, y, [4] * 10, sr.TrainParams(n_estimators=5, min_child_samples=1), stats)"
        f".save({str(tmp_path)!r});"
        f"m = sr.SearchRankerModel.load({str(tmp_path)!r});"
        "order = m.order(sr.QueryContext('q'), [sr.Candidate('a', 1.0, 'a'), sr.Candidate('b', 2.0, 'b')]);"
        "assert sorted(order) == [0, 1];"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""


def test_bench_search_clicks_without_the_log_is_a_clear_error(tmp_path, capsys):
    from bench import search_clicks

    with pytest.raises(SystemExit) as exc:
        search_clicks.main(["--data-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "Best Buy search log not found" in capsys.readouterr().err
