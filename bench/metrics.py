"""Metric functions of the benchmarks: pure Python, no Django, no data.

* Ranking of one target: :func:`rank_of` gives the 1-based position of the
  wanted item in a ranked list cut at ``k`` (0 when absent);
  :class:`RankStats` turns ranks into MRR@k and Success@n.
* Graded relevance: :func:`dcg` and :func:`ndcg_at_k` with gains
  ``2**rating - 1``, unjudged documents counting 0, and the ideal DCG taken
  from every judged document of the query.
* Significance: :func:`paired_bootstrap_ci` resamples queries with
  replacement (seeded) and gives a percentile confidence interval of the mean
  difference between two systems.
* Splits: :func:`is_train_user` assigns a user to the train or test part from
  a SHA-1 hash of the seed and the user id, so the split is deterministic and
  independent of row order.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


def rank_of(target: str, ranked: Sequence[str], k: int = 10) -> int:
    """Position of ``target`` in ``ranked``, counting from 1, within the first ``k``.

    Args:
        target: The wanted item.
        ranked: Items, best first.
        k: Cut-off.

    Returns:
        The 1-based rank, or 0 when ``target`` is not among the first ``k`` items.
    """
    for position, item in enumerate(ranked[:k], start=1):
        if item == target:
            return position
    return 0


@dataclass
class RankStats:
    """Accumulates ranks (0 = not found) into MRR@k and Success@n.

    Attributes:
        k: Cut-off of the reciprocal rank.
        ranks: Every rank added, in order.
    """

    k: int = 10
    ranks: list[int] = field(default_factory=list)

    def add(self, rank: int) -> None:
        """Record one ranking.

        Args:
            rank: 1-based rank of the target, 0 when absent.
        """
        self.ranks.append(rank)

    @property
    def n(self) -> int:
        """Number of rankings recorded."""
        return len(self.ranks)

    def mrr(self) -> float:
        """Mean reciprocal rank at ``k`` (ranks above ``k`` count 0); 0.0 when empty."""
        if not self.ranks:
            return 0.0
        return sum(1.0 / r for r in self.ranks if 0 < r <= self.k) / len(self.ranks)

    def success_at(self, n: int) -> float:
        """Share of rankings whose target is within the first ``n``; 0.0 when empty.

        Args:
            n: Cut-off.
        """
        if not self.ranks:
            return 0.0
        return sum(1 for r in self.ranks if 0 < r <= n) / len(self.ranks)


def gain(rating: float) -> float:
    """Exponential gain of a relevance grade: ``2**rating - 1``."""
    return 2.0**rating - 1.0


def dcg(ratings: Iterable[float]) -> float:
    """Discounted cumulative gain of ratings in rank order.

    Args:
        ratings: Relevance grades, best-ranked first.

    Returns:
        ``sum((2**r - 1) / log2(i + 1))`` over 1-based positions ``i``.
    """
    return sum(gain(r) / math.log2(i + 1) for i, r in enumerate(ratings, start=1))


def ndcg_at_k(ranked_ids: Sequence[str], judgments: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of one ranked list.

    Args:
        ranked_ids: Document ids, best first.
        judgments: Rating of every judged document of the query; documents
            absent from it count 0.
        k: Cut-off.

    Returns:
        DCG@k divided by the DCG@k of the judged documents sorted by rating;
        0.0 when that ideal is 0 (no judged document is relevant).
    """
    ideal = dcg(sorted(judgments.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg(judgments.get(doc_id, 0.0) for doc_id in ranked_ids[:k]) / ideal


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0.0 for an empty sequence."""
    return sum(values) / len(values) if values else 0.0


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``mean(a) - mean(b)``.

    Queries are resampled with replacement, keeping each query's pair of
    scores together.

    Args:
        a: Per-query scores of the first system.
        b: Per-query scores of the second system, same order.
        resamples: Number of bootstrap samples.
        seed: Seed of the random generator (same seed, same interval).
        confidence: Coverage of the interval.

    Returns:
        ``(low, high)`` bounds of the interval.

    Raises:
        ValueError: When the sequences differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError("paired_bootstrap_ci needs two non-empty sequences of equal length")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    low = means[max(0, math.floor(tail * resamples))]
    high = means[min(resamples - 1, math.ceil((1.0 - tail) * resamples) - 1)]
    return low, high


def win_loss_tie(a: Sequence[float], b: Sequence[float], eps: float = 1e-9) -> tuple[int, int, int]:
    """Count queries where ``a`` beats, loses to or ties ``b``.

    Args:
        a: Per-query scores of the first system.
        b: Per-query scores of the second system, same order.
        eps: Differences at most this large are ties.

    Returns:
        ``(wins, losses, ties)`` of ``a``.
    """
    wins = sum(1 for x, y in zip(a, b, strict=True) if x - y > eps)
    losses = sum(1 for x, y in zip(a, b, strict=True) if y - x > eps)
    return wins, losses, len(a) - wins - losses


def user_bucket(user: str, seed: int = 0) -> int:
    """Bucket 0..99 of a user: SHA-1 of ``"<seed>:<user>"`` modulo 100."""
    digest = hashlib.sha1(f"{seed}:{user}".encode()).hexdigest()
    return int(digest, 16) % 100


def is_train_user(user: str, *, seed: int = 0, train_share: float = 0.8) -> bool:
    """Whether ``user`` falls in the train part of a deterministic user split.

    Args:
        user: User id.
        seed: Changes the split; the same seed always gives the same split.
        train_share: Share of the 100 hash buckets that are train (0.8 = 80%).
    """
    return user_bucket(user, seed) < round(train_share * 100)
