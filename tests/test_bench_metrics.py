"""The benchmarks' metric functions (:mod:`bench.metrics`) and pure helpers.

Checks MRR/Success@n, nDCG@k against hand-computed values, bootstrap
determinism, the deterministic user split, and the Most-Popular-Completion
table of :mod:`bench.qac`. No database, no external data.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

import pytest

from bench.metrics import (
    RankStats,
    dcg,
    is_train_user,
    ndcg_at_k,
    paired_bootstrap_ci,
    rank_of,
    user_bucket,
    win_loss_tie,
)
from bench.qac import Search, evaluate, evaluation_pairs, most_popular_completion, split_by_time


def test_rank_of_is_one_based_and_cut_at_k():
    ranked = ["a", "b", "c"]
    assert rank_of("a", ranked) == 1
    assert rank_of("c", ranked) == 3
    assert rank_of("z", ranked) == 0
    assert rank_of("c", ranked, k=2) == 0


def test_mrr_and_success():
    stats = RankStats(k=10)
    for rank in (1, 2, 0, 5):
        stats.add(rank)
    assert stats.n == 4
    assert stats.mrr() == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)
    assert stats.success_at(1) == 0.25
    assert stats.success_at(5) == 0.75
    assert stats.success_at(10) == 0.75


def test_mrr_ignores_ranks_beyond_k_and_empty_is_zero():
    stats = RankStats(k=3)
    stats.add(4)
    assert stats.mrr() == 0.0
    assert RankStats().mrr() == 0.0
    assert RankStats().success_at(1) == 0.0


def test_dcg_known_values():
    # gains 2^r - 1: 7, 3, 0 at discounts 1, log2(3), 2
    assert dcg([3, 2, 0]) == pytest.approx(7 + 3 / math.log2(3))
    assert dcg([]) == 0.0


def test_ndcg_known_values():
    judged = {"a": 3, "b": 2, "c": 0, "d": 1}
    assert ndcg_at_k(["a", "b", "d"], judged) == pytest.approx(1.0)
    # Unjudged "x" counts 0; ideal uses every judged doc: 7, 3, 1.
    ideal = 7 + 3 / math.log2(3) + 1 / 2
    assert ndcg_at_k(["x", "a"], judged) == pytest.approx((7 / math.log2(3)) / ideal)
    # The cut-off applies to both the list and the ideal.
    assert ndcg_at_k(["b", "a"], judged, k=1) == pytest.approx(3 / 7)


def test_ndcg_is_zero_when_nothing_judged_relevant():
    assert ndcg_at_k(["a"], {"a": 0, "b": 0}) == 0.0
    assert ndcg_at_k(["a"], {}) == 0.0


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    a = [0.9, 0.5, 0.7, 0.2, 1.0, 0.3]
    b = [0.6, 0.5, 0.4, 0.3, 0.8, 0.1]
    first = paired_bootstrap_ci(a, b, resamples=2000, seed=7)
    assert first == paired_bootstrap_ci(a, b, resamples=2000, seed=7)
    low, high = first
    observed = sum(a) / len(a) - sum(b) / len(b)
    assert low <= observed <= high
    assert paired_bootstrap_ci(a, a, resamples=100, seed=1) == (0.0, 0.0)


def test_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_bootstrap_ci([], [])


def test_win_loss_tie():
    assert win_loss_tie([1.0, 0.5, 0.2], [0.5, 0.5, 0.3]) == (1, 1, 1)


def test_user_split_is_deterministic_and_near_the_share():
    users = [f"user-{i}" for i in range(5000)]
    first = [is_train_user(u, seed=0, train_share=0.8) for u in users]
    assert first == [is_train_user(u, seed=0, train_share=0.8) for u in users]
    assert 0.77 < sum(first) / len(users) < 0.83
    assert first != [is_train_user(u, seed=1, train_share=0.8) for u in users]
    assert all(0 <= user_bucket(u) < 100 for u in users[:100])


def test_mpc_ranks_by_count_then_text_and_respects_the_gate():
    counts = Counter({"call of duty": 5, "cars": 2, "cabela": 2, "zelda": 9})
    table = most_popular_completion(counts, k=2)
    assert table["c"] == ["call of duty", "cabela"]
    assert table["ca"] == ["call of duty", "cabela"]
    assert table["car"] == ["cars"]
    assert "call of dut" not in table  # prefixes stop at 10 characters
    gated = most_popular_completion(counts, allowed=lambda t: counts[t] >= 3)
    assert gated["c"] == ["call of duty"]


def test_qac_pairs_and_evaluation_with_cached_answers():
    when = datetime(2011, 8, 1)
    test = [Search("u1", "Halo", when, "halo"), Search("u2", "halo reach", when, "halo reach")]
    pairs = evaluation_pairs(test)
    assert pairs[:4] == [("h", "halo"), ("ha", "halo"), ("hal", "halo"), ("halo", "halo")]
    assert len(pairs) == 4 + 10
    calls: list[str] = []

    def answer(prefix: str) -> list[str]:
        calls.append(prefix)
        return ["halo", "halo reach"]

    stats = evaluate(test, answer, servable={"halo"}, returning_users={"u2"})
    assert len(calls) == len(set(p for p, _ in pairs))
    assert stats.overall.n == 14
    assert stats.short.n == 6 and stats.long.n == 8
    assert stats.servable == 4
    assert stats.overall.mrr() == pytest.approx((4 * 1 + 10 * 0.5) / 14)
    assert stats.returning.n == 10 and stats.returning.mrr() == pytest.approx(0.5)
    # "halo" is first from its first letter: 3 of 4 characters saved; "halo reach"
    # is second (top 5) from "h": 9 of 10 saved.
    assert stats.esaved() == pytest.approx((3 / 4 + 9 / 10) / 2)


def test_time_split_keeps_the_earliest_share():
    searches = [Search(f"u{i}", "q", datetime(2011, 8, 1 + i), "q") for i in range(10)]
    train, test = split_by_time(reversed(searches), train_share=0.8)
    assert [s.user for s in train] == [f"u{i}" for i in range(8)]
    assert [s.user for s in test] == ["u8", "u9"]


def test_unseen_slice_title_ngrams_and_per_search_regrouping():
    from bench.qac import bootstrap_by_search, per_search, title_ngram_completion

    when = datetime(2011, 8, 1)
    test = [Search("u1", "Halo", when, "halo"), Search("u2", "halo reach", when, "halo reach")]
    stats = evaluate(test, lambda prefix: ["halo reach"], unseen_queries={"halo reach"})
    assert stats.unseen.n == 10 and stats.unseen.success_at(10) == 1.0
    assert stats.overall.n == 14 and stats.overall.success_at(10) == pytest.approx(10 / 14)

    grouped, _ = per_search(stats.overall.ranks, test)
    assert [(rr, hits, n) for rr, hits, n in grouped] == [(0.0, 0.0, 4), (10.0, 10.0, 10)]
    with pytest.raises(ValueError):
        per_search(stats.overall.ranks[:-1], test)
    low, high = bootstrap_by_search(grouped, grouped, 0, resamples=200)
    assert low == high == 0.0  # a system against itself

    # Runs of title words, by how many titles hold them, shorter first.
    table = title_ngram_completion(["halo reach", "halo 3", "halo reach limited edition"])
    assert table["h"][:3] == ["halo", "halo reach", "halo 3"]
    assert table["re"] == ["reach", "reach limited", "reach limited edition"]
