"""The suggestion ranker: learning to rank completions for a typed prefix.

Worker-only (imports numpy and LightGBM). Django-free: the learning loop
(:mod:`suggestions.learning`) reads the database and hands plain values in.

Contracts:

* :class:`CandidateStats` holds what is known about every servable completion
  over one window of searches: the candidates (history queries that pass the
  k-anonymity gate, their one-edit, word-order and leading-words variants,
  catalog phrases) and their popularity features. :meth:`CandidateStats.pool`
  gives the first-stage pool of a prefix (by time-decayed popularity, as the
  recall backend orders suggestions); the ranker only reorders a pool.
* Features are scale-free where they measure popularity (shares of the
  window's searches, ratios to the pool's best), so a model trained on a part
  of a window applies to the whole window.
* Training never sees its own labels in its features: features come from an
  older part of the training window (or from other shoppers) and labels from
  the rest (:func:`training_groups`), so the model cannot memorise which counts
  belong to the searched query.
* :func:`evaluate` scores any ranking function on held-out searches and
  returns one reciprocal-rank average per search (the unit the evaluation
  gate resamples).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .ltr import fit_lambdarank, shuffled_labels  # noqa: F401  (shuffled_labels: re-exported)

#: Prefix lengths the ranker orders (longer prefixes have few candidates; the
#: backend's popularity order serves them).
MAX_PREFIX = 10
#: Candidates the ranker reorders per prefix.
POOL_SIZE = 50
#: Ranks counted by the metric.
TOP_K = 10
#: Half-lives (days) of the decayed popularity features.
HALF_LIVES = (7.0, 30.0, 90.0)
#: Days counted as "recent" by the trend feature.
RECENT_DAYS = 7.0

FEATURE_NAMES = (
    "searches_share", "users_share", "decayed7_share", "decayed30_share", "decayed90_share",
    "recent_share", "searches_vs_pool_best", "searches_pool_share", "log_searches_vs_pool_best",
    "is_catalog", "catalog_products", "is_variant", "text_length", "words", "prefix_length",
    "prefix_coverage", "equals_prefix", "prefix_ends_word", "first_stage_rank", "pool_size",
    # Product clicks (appended last: a model trained without them reads the first columns).
    "product_clicks7_share", "product_clicks7_vs_pool_best", "product_clicks30_share",
    "product_clicks30_vs_pool_best",
)
#: Half-lives (days) of the product-click popularity features.
CLICK_HALF_LIVES = (7.0, 30.0)


@dataclass(frozen=True)
class Search:
    """One search of the window: normalised query, hashed shopper, time, and
    the ids of the products clicked after it."""

    query: str
    actor: str
    time: datetime
    products: tuple[str, ...] = ()


@dataclass
class CandidateStats:
    """Candidates and their popularity over a window of searches.

    Attributes:
        searches: The window's searches.
        catalog: Catalog phrase → number of products it describes.
        min_users: The k-anonymity gate (distinct shoppers).
        allowed: Whether a query may be served at all (privacy filter, length);
            the build's own rule.
        variant_rule: ``(public texts, other searched queries) → variants``
            that may be served although below the gate (the build's
            :func:`suggestions.mining.variant_queries`); none when omitted.
        served: When given, exactly these texts are the candidates (what is
            served now), instead of the ones this window's gate, variants and
            catalog make.
        half_life: Days of the first-stage popularity decay (the build's
            ``SUGGESTIONS_DECAY_HALF_LIFE_DAYS``).
        catalog_weight_scale: Weight of a catalog phrase per log(1 + products)
            in the first stage (the build's
            :data:`suggestions.mining.CATALOG_WEIGHT_SCALE`).
    """

    searches: Sequence[Search]
    catalog: dict[str, int]
    min_users: int
    allowed: Callable[[str], bool] = lambda _q: True
    variant_rule: Callable[[set[str], list[str]], set[str]] | None = None
    served: set[str] | None = None
    half_life: float = 30.0
    catalog_weight_scale: float = 0.1
    #: The build's first-stage weight of each catalog phrase (its rule's
    #: score times ``catalog_weight_scale``), when known; else
    #: log(1 + products) × ``catalog_weight_scale``.
    catalog_weights: dict[str, float] | None = None
    #: Product-name phrase → ids of the products whose names start with it
    #: (:func:`suggestions.catalog_phrases.product_name_phrases` of clicked
    #: products): a name's click popularity is its products' clicks.
    product_names: dict[str, set[str]] | None = None

    def __post_init__(self) -> None:
        self.reference = max((s.time for s in self.searches), default=None)
        self.count: Counter[str] = Counter()
        users: dict[str, set[str]] = defaultdict(set)
        self.decayed = {h: defaultdict(float) for h in {*HALF_LIVES, self.half_life}}
        self.recent: Counter[str] = Counter()
        for s in self.searches:
            age = max((self.reference - s.time).total_seconds() / 86400.0, 0.0)
            self.count[s.query] += 1
            if s.actor:
                users[s.query].add(s.actor)
            for h, decayed in self.decayed.items():
                decayed[s.query] += 0.5 ** (age / h)
            if age <= RECENT_DAYS:
                self.recent[s.query] += 1
        # Product clicks: each product's decayed clicks, and which products each
        # query's searches led to (a query's click popularity is that of its products).
        self.product_decayed = {h: defaultdict(float) for h in CLICK_HALF_LIVES}
        self.query_products: dict[str, Counter[str]] = defaultdict(Counter)
        for s in self.searches:
            if not s.products:
                continue
            age = max((self.reference - s.time).total_seconds() / 86400.0, 0.0)
            for product in s.products:
                for h, decayed in self.product_decayed.items():
                    decayed[product] += 0.5 ** (age / h)
                self.query_products[s.query][product] += 1
        self.product_total = {h: max(sum(d.values()), 1e-9) for h, d in self.product_decayed.items()}
        self.users = {q: len(u) for q, u in users.items()}
        self.total = max(len(self.searches), 1)
        self.decayed_total = {h: max(sum(d.values()), 1e-9) for h, d in self.decayed.items()}
        self.recent_total = max(sum(self.recent.values()), 1)
        if self.served is not None:
            # Served searched texts below the gate and not catalog phrases are
            # the build's variants: the feature must mean what it meant in training.
            self.candidates = set(self.served)
            self.variants = {t for t in self.candidates if t in self.users and t not in self.catalog
                             and self.users[t] < self.min_users}
        else:
            allowed = {q for q in self.users if self.allowed(q)}
            gated = {q for q in allowed if self.users[q] >= self.min_users}
            public = gated | set(self.catalog)
            self.variants = (self.variant_rule(public, [q for q in allowed if q not in public])
                             if self.variant_rule else set())
            self.candidates = public | self.variants
        self._index: dict[str, list[str]] = defaultdict(list)
        for text in sorted(self.candidates, key=lambda t: (-self.first_stage(t), t)):
            for length in range(1, min(MAX_PREFIX, len(text)) + 1):
                pool = self._index[text[:length]]
                if len(pool) < POOL_SIZE:
                    pool.append(text)

    def first_stage(self, text: str) -> float:
        """The popularity weight the recall backend orders by (decayed searches,
        plus the catalog weight), as :mod:`suggestions.mining` computes it."""
        weight = self.decayed[self.half_life].get(text, 0.0)
        if text in self.catalog:
            known = self.catalog_weights.get(text) if self.catalog_weights else None
            weight += known if known is not None else math.log1p(self.catalog[text]) * self.catalog_weight_scale
        return weight

    def pool(self, prefix: str) -> list[str]:
        """First-stage candidates of ``prefix``, best first (empty past :data:`MAX_PREFIX`)."""
        return self._index.get(prefix, [])

    def prefixes(self) -> Iterable[str]:
        """Every prefix with at least two candidates (those whose order matters)."""
        return (p for p, pool in self._index.items() if len(pool) >= 2)

    def product_clicks(self, text: str, half_life: float) -> float:
        """Decayed clicks of the products ``text`` stands for: a product name's
        products, else the products its searches led to (their mean, weighted
        by how often each followed it); 0 when neither is known."""
        decayed = self.product_decayed[half_life]
        names = self.product_names.get(text) if self.product_names else None
        if names:
            return sum(decayed.get(p, 0.0) for p in names)
        led = self.query_products.get(text)
        if not led:
            return 0.0
        return sum(n * decayed.get(p, 0.0) for p, n in led.items()) / sum(led.values())

    def features(self, prefix: str, pool: Sequence[str]) -> np.ndarray:
        """One row of :data:`FEATURE_NAMES` per pool candidate."""
        counts = [self.count.get(c, 0) for c in pool]
        clicks = {h: [self.product_clicks(c, h) for c in pool] for h in CLICK_HALF_LIVES}
        clicks_best = {h: max(v, default=0.0) or 1e-9 for h, v in clicks.items()}
        best = max(counts, default=0) or 1
        pool_total = sum(counts) or 1
        n_prefix = len(prefix)
        rows = []
        for rank, (text, n) in enumerate(zip(pool, counts, strict=True)):
            length = len(text)
            rows.append((
                math.log((n + 0.5) / self.total),
                math.log((self.users.get(text, 0) + 0.5) / self.total),
                *(math.log((self.decayed[h].get(text, 0.0) + 0.01) / self.decayed_total[h]) for h in HALF_LIVES),
                math.log((self.recent.get(text, 0) + 0.5) / self.recent_total),
                n / best, n / pool_total, math.log((n + 0.5) / (best + 0.5)),
                1.0 if text in self.catalog else 0.0, math.log1p(self.catalog.get(text, 0)),
                1.0 if text in self.variants else 0.0,
                length, text.count(" ") + 1, n_prefix, n_prefix / length,
                1.0 if text == prefix else 0.0,
                1.0 if n_prefix == length or text[n_prefix:n_prefix + 1] == " " else 0.0,
                rank, len(pool),
                *(x for h in CLICK_HALF_LIVES for x in (
                    math.log((clicks[h][rank] + 0.01) / self.product_total[h]), clicks[h][rank] / clicks_best[h])),
            ))
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


@dataclass
class TrainParams:
    """Hyper-parameters of the LightGBM ranker (stored with the version)."""

    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    seed: int = 13
    #: Share of the training window whose searches give the features; the
    #: newer rest gives the labels (``label_split="time"``).
    feature_share: float = 0.7
    #: ``time``: features from the older part, labels from the newer one (a
    #: shop predicts tomorrow from yesterday); ``shoppers``: two folds of
    #: shoppers, each labelling with the other's features (demand that does
    #: not drift).
    label_split: str = "time"
    max_groups: int = 250_000

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _shopper_fold(actor: str) -> int:
    return hashlib.sha1(actor.encode()).digest()[0] & 1


def training_groups(searches: Sequence[Search], make_stats: Callable[[Sequence[Search]], CandidateStats],
                    params: TrainParams) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Learning-to-rank groups: every prefix of every label search whose query
    is in its prefix's pool, the searched query as the only positive.

    Args:
        searches: The training window (held-out searches excluded).
        make_stats: Builds :class:`CandidateStats` from a list of searches
            (the caller fixes the catalog, the gate and the variant rule).
        params: How features and labels are split.

    Returns:
        ``(features, labels, group sizes)``.
    """
    ordered = sorted(searches, key=lambda s: (s.time, s.actor, s.query))
    if params.label_split == "shoppers":
        folds = [[s for s in ordered if _shopper_fold(s.actor) == f] for f in (0, 1)]
        splits = [(folds[0], folds[1]), (folds[1], folds[0])]
    elif params.label_split == "time":
        cut = int(len(ordered) * params.feature_share)
        splits = [(ordered[:cut], ordered[cut:])]
    else:
        raise ValueError(f"unknown label split {params.label_split!r} (time or shoppers)")
    xs, ys, groups = [], [], []
    for feature_part, label_part in splits:
        if not feature_part or not label_part:
            continue
        stats = make_stats(feature_part)
        for s in label_part:
            for length in range(1, min(MAX_PREFIX, len(s.query)) + 1):
                prefix = s.query[:length]
                pool = stats.pool(prefix)
                if len(pool) < 2 or s.query not in pool:
                    continue
                xs.append(stats.features(prefix, pool))
                ys.append(np.fromiter((c == s.query for c in pool), dtype=np.int32, count=len(pool)))
                groups.append(len(pool))
    if len(groups) > params.max_groups:
        # Keep a seeded sample of whole groups (memory and time on small workers).
        rng = np.random.default_rng(params.seed)
        keep = np.sort(rng.choice(len(groups), params.max_groups, replace=False))
        xs, ys, groups = [xs[i] for i in keep], [ys[i] for i in keep], [groups[i] for i in keep]
    if not groups:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.int32), []
    return np.concatenate(xs), np.concatenate(ys), groups


class RankerModel:
    """A trained LightGBM ranker with its feature names and metadata."""

    BOOSTER_FILE = "ranker.txt"
    META_FILE = "meta.json"

    def __init__(self, booster: Any, meta: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self.meta = dict(meta or {})

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, groups: list[int], params: TrainParams) -> RankerModel:
        """Train a LambdaRank model on learning-to-rank groups."""
        if not groups:
            raise ValueError("no training groups: the window has no searches whose query was a candidate")
        booster = fit_lambdarank(x, y, groups, params, FEATURE_NAMES, top_k=TOP_K)
        return cls(booster, {"params": params.as_dict(), "groups": len(groups), "rows": int(len(y)),
                                    "features": list(FEATURE_NAMES)})

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Higher is better. A model trained before features were appended
        reads the columns it knows (the first ones)."""
        known = len(self.meta.get("features") or FEATURE_NAMES)
        return self.booster.predict(features[:, :known], num_threads=1)

    def rank(self, stats: CandidateStats, prefix: str) -> list[str]:
        """The pool of ``prefix`` in the model's order."""
        pool = stats.pool(prefix)
        if len(pool) < 2:
            return list(pool)
        order = np.argsort(-self.scores(stats.features(prefix, pool)), kind="stable")
        return [pool[i] for i in order]

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the booster and metadata; returns the folder."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / self.BOOSTER_FILE))
        (path / self.META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RankerModel:
        """Read a folder written by :meth:`save`."""
        import lightgbm

        path = Path(folder)
        booster = lightgbm.Booster(model_file=str(path / cls.BOOSTER_FILE))
        meta = json.loads((path / cls.META_FILE).read_text()) if (path / cls.META_FILE).exists() else {}
        names = meta.get("features")
        if names and tuple(names) != FEATURE_NAMES[:len(names)]:
            raise ValueError(f"{path}: trained with other features ({len(names)}); retrain it")
        return cls(booster, meta)


def popularity_rank(stats: CandidateStats, prefix: str) -> list[str]:
    """The incumbent without a model: the first-stage (popularity) order."""
    return list(stats.pool(prefix))


def evaluate(rank: Callable[[str], list[str]], heldout: Sequence[Search]) -> list[float]:
    """Mean reciprocal rank (at :data:`TOP_K`) over each held-out search's
    prefixes of 1..:data:`MAX_PREFIX` characters; one value per search."""
    cache: dict[str, list[str]] = {}
    out = []
    for s in heldout:
        total, n = 0.0, 0
        for length in range(1, min(MAX_PREFIX, len(s.query)) + 1):
            prefix = s.query[:length]
            ranked = cache.get(prefix)
            if ranked is None:
                ranked = cache[prefix] = rank(prefix)[:TOP_K]
            if s.query in ranked:
                total += 1.0 / (ranked.index(s.query) + 1)
            n += 1
        out.append(total / n if n else 0.0)
    return out


def ranking_table(model: RankerModel, stats: CandidateStats, *, keep: int = 20, batch: int = 2000
                  ) -> dict[str, list[str]]:
    """Every prefix that has at least two candidates → its top ``keep`` in the
    model's order (what the request path serves). Scored in batches of
    prefixes: one LightGBM call per batch, not per prefix."""
    prefixes = sorted(stats.prefixes())
    table: dict[str, list[str]] = {}
    for start in range(0, len(prefixes), batch):
        chunk = prefixes[start:start + batch]
        pools = [stats.pool(p) for p in chunk]
        scores = model.scores(np.concatenate([stats.features(p, pool) for p, pool in zip(chunk, pools, strict=True)]))
        offset = 0
        for prefix, pool in zip(chunk, pools, strict=True):
            part = scores[offset:offset + len(pool)]
            offset += len(pool)
            table[prefix] = [pool[i] for i in np.argsort(-part, kind="stable")[:keep]]
    return table
