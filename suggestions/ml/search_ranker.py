"""The search ranker: learning to rank the recall candidates of a search from product clicks.

Django-free (numpy, LightGBM, rapidfuzz): the learning loop
(:mod:`suggestions.search_ranking`) reads the database and hands plain values
in. Unlike the rest of :mod:`suggestions.ml` this module is also imported by
web processes (it never imports torch): re-ranking ~50 candidates is one
LightGBM call on a small matrix.

Contracts:

* **Position bias** (:func:`position_bias`): a click at position ``k``
  (0-based) counts ``1 / propensity(k)``, with ``propensity(k) = (k + 1) ** -eta``
  fitted to the log's clicks per position (a power law, the shape eye-tracking
  and click models find). The weight is clipped at :data:`MAX_IPS_WEIGHT` so
  that one click deep down the list cannot dominate a product's counts.
* **Click statistics** (:class:`ClickStats`) of one window of clicks and
  searches: product popularity (position-corrected, all time and decayed) for
  every click; a query-product table only for queries at least ``min_users``
  distinct identified shoppers searched (the k-anonymity gate: a rarer query's
  clicks count only towards its product's popularity); per-word product
  shares from the gated queries' words. Rates are smoothed towards the
  product's overall rate (``(clicks + m * prior) / (searches + m)``), so a
  query searched twice cannot give a product a rate of 1.
* **No leakage**: a training group's features come from an older part of the
  training window than its label click (:func:`training_groups`); the held-out
  clicks are scored with statistics of the training window only.
* **Fusion features**: with dense recall fused in, each candidate carries its
  BM25 rank, its kNN rank and its cosine similarity to the query
  (:class:`Candidate`), so the ranker learns how much each list is worth;
  without dense recall the BM25 rank is the recall rank, the kNN rank
  :data:`DEPTH` and the similarity missing (NaN, which LightGBM treats as missing).
* **Feature sets**: a version scores with the features it was trained with
  (``meta["features"]``, any subset of :data:`FEATURE_NAMES`), so appending a
  feature does not break a saved version; one naming a feature this code
  does not compute fails to load.
* :func:`evaluate` returns one reciprocal rank (at :data:`TOP_K`) per held-out
  click: the unit the evaluation gate resamples.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .ltr import fit_lambdarank, shuffled_labels  # noqa: F401  (shuffled_labels: re-exported)

#: Candidates the ranker reorders (the recall's top, plus clicked products of the query).
DEPTH = 50
#: Products a known query adds from its clicks when recall missed them.
CLICK_RECALL = 10
#: Ranks counted by the metric.
TOP_K = 10
#: Largest inverse-propensity weight of one click.
MAX_IPS_WEIGHT = 10.0
#: Smoothing strength (in searches) of the query-product click rates.
SMOOTHING = 5.0
#: Half-life (days) of the recent-popularity (freshness) features.
RECENT_HALF_LIFE = 7.0
#: Similar gated queries (rapidfuzz WRatio at least this) lend their clicks to a query.
NEIGHBOUR_SCORE = 80.0
#: At most this many similar queries, from at most :data:`NEIGHBOUR_POOL` sharing a word or a 3-letter start.
NEIGHBOURS = 5
NEIGHBOUR_POOL = 2000

FEATURE_NAMES = (
    "recall_score", "recall_rank", "score_vs_top", "from_click_recall",
    "title_word_coverage", "title_token_set", "title_partial", "query_in_title",
    "brand_match", "type_match", "price_in_range",
    "product_popularity", "product_recent", "product_trend", "days_since_click",
    "query_known", "query_searches", "qp_rate", "qp_share", "qp_recent_share", "qp_rank",
    "word_share_mean", "word_share_max", "neighbour_share", "neighbour_similarity",
    "qp_share_raw", "product_popularity_raw",
    # Hybrid fusion, learnt instead of reciprocal rank fusion's fixed weight
    # (appended: a version trained before them still loads and reads its own columns).
    "lexical_rank", "dense_rank", "dense_similarity",
)


@dataclass(frozen=True)
class Click:
    """One product click: normalised query, product id, 0-based position
    (``None`` when not known: clicks imported from a log), hashed shopper, time."""

    query: str
    product: str
    position: int | None
    actor: str
    time: datetime


@dataclass(frozen=True)
class SearchCount:
    """One search of the window (for per-query counts and the k-gate)."""

    query: str
    actor: str
    time: datetime


@dataclass(frozen=True)
class Candidate:
    """A recall candidate: product id, recall score and the fields features read."""

    id: str
    score: float
    title: str = ""
    brand: str = ""
    product_type: str = ""
    price: float | None = None
    #: With dense recall fused in: 0-based BM25 rank and kNN rank (None: not in
    #: that list) and cosine similarity to the query (None: not among the nearest).
    lexical_rank: int | None = None
    dense_rank: int | None = None
    dense_similarity: float | None = None
    #: Whether dense recall was fused into the list this candidate came from.
    fused: bool = False


@dataclass(frozen=True)
class QueryContext:
    """What understanding read in the query (empty when it read nothing)."""

    query: str
    brands: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None


_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Lower-cased words (runs of letters and digits) of ``text``."""
    return _WORD.findall(text.lower())


# -- position bias ------------------------------------------------------------------------


def position_bias(positions: Iterable[int], *, max_position: int = DEPTH) -> float:
    """The exponent ``eta`` of ``propensity(k) = (k + 1) ** -eta`` fitted to click positions.

    A least-squares line through ``log(clicks at k)`` against ``log(k + 1)``
    over the positions that have clicks, weighted by their counts; clipped to
    ``[0, 2]``. Fewer than two positions with clicks give 0 (no correction).
    The clicks' own relevance also falls with position, so this overstates the
    bias somewhat; the clip keeps the weights bounded.
    """
    counts = Counter(min(int(p), max_position) for p in positions if p is not None and p >= 0)
    if len(counts) < 2:
        return 0.0
    ks = np.asarray(sorted(counts), dtype=np.float64)
    c = np.asarray([counts[int(k)] for k in ks], dtype=np.float64)
    x, y, w = np.log(ks + 1.0), np.log(c), c
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    var = np.average((x - xm) ** 2, weights=w)
    if var <= 0:
        return 0.0
    slope = np.average((x - xm) * (y - ym), weights=w) / var
    return float(min(max(-slope, 0.0), 2.0))


def ips_weight(position: int | None, eta: float) -> float:
    """Inverse-propensity weight of a click at ``position`` (clipped); 1 (no
    correction) when the position is not known."""
    if position is None:
        return 1.0
    return min((max(int(position), 0) + 1.0) ** eta, MAX_IPS_WEIGHT)


# -- click statistics ---------------------------------------------------------------------


@dataclass
class ClickStats:
    """Position-corrected, smoothed click statistics of one window.

    Attributes:
        clicks: The window's product clicks.
        searches: The window's searches (for per-query counts and the gate).
        min_users: The k-anonymity gate (distinct identified shoppers of a query).
        eta: Position-bias exponent; fitted to ``clicks`` when None.
    """

    clicks: Sequence[Click] = ()
    searches: Sequence[SearchCount] = ()
    min_users: int = 3
    eta: float | None = None
    # Filled in by __post_init__ (or by from_dict).
    reference: datetime | None = None
    product: dict[str, float] = field(default_factory=dict)
    product_recent: dict[str, float] = field(default_factory=dict)
    product_last: dict[str, float] = field(default_factory=dict)
    query_searches: dict[str, int] = field(default_factory=dict)
    query_products: dict[str, dict[str, float]] = field(default_factory=dict)
    query_recent: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Clicks as counted, without the position correction (the model weighs both).
    query_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    product_counts: dict[str, int] = field(default_factory=dict)
    word_products: dict[str, dict[str, float]] = field(default_factory=dict)
    total_weight: float = 0.0
    total_recent: float = 0.0
    total_searches: int = 0

    def __post_init__(self) -> None:
        if not self.clicks and not self.searches:
            return
        if self.eta is None:
            self.eta = position_bias(c.position for c in self.clicks)
        times = [c.time for c in self.clicks] + [s.time for s in self.searches]
        self.reference = max(times)
        shoppers: dict[str, set[str]] = defaultdict(set)
        searched: Counter[str] = Counter()
        for s in self.searches:
            searched[s.query] += 1
            if s.actor:
                shoppers[s.query].add(s.actor)
        gated = {q for q, a in shoppers.items() if len(a) >= self.min_users}
        self.total_searches = max(sum(searched.values()), 1)
        self.query_searches = {q: searched[q] for q in gated}
        product: dict[str, float] = defaultdict(float)
        recent: dict[str, float] = defaultdict(float)
        last: dict[str, float] = {}
        qp: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        qr: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        qc: dict[str, Counter[str]] = defaultdict(Counter)
        pc: Counter[str] = Counter()
        for c in self.clicks:
            pc[c.product] += 1
            w = ips_weight(c.position, self.eta)
            age = max((self.reference - c.time).total_seconds() / 86400.0, 0.0)
            decay = 0.5 ** (age / RECENT_HALF_LIFE)
            product[c.product] += w
            recent[c.product] += w * decay
            last[c.product] = min(last.get(c.product, age), age)
            if c.query in gated:
                qp[c.query][c.product] += w
                qr[c.query][c.product] += w * decay
                qc[c.query][c.product] += 1
        wp: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for q, products in qp.items():
            for word in set(words(q)):
                for p, w in products.items():
                    wp[word][p] += w
        self.product, self.product_recent, self.product_last = dict(product), dict(recent), last
        self.query_products = {q: dict(v) for q, v in qp.items()}
        self.query_recent = {q: dict(v) for q, v in qr.items()}
        self.query_counts = {q: dict(v) for q, v in qc.items()}
        self.product_counts = dict(pc)
        self.word_products = {w: dict(v) for w, v in wp.items()}
        self.total_weight = max(sum(product.values()), 1e-9)
        self.total_recent = max(sum(recent.values()), 1e-9)

    # -- serialisation (the serving copy of a version) --
    _FIELDS = ("eta", "min_users", "product", "product_recent", "product_last", "query_searches",
               "query_products", "query_recent", "query_counts", "product_counts", "word_products", "total_weight", "total_recent", "total_searches")

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self._FIELDS}
        out["reference"] = self.reference.isoformat() if self.reference else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClickStats:
        stats = cls()
        for name in cls._FIELDS:
            if name in data:
                setattr(stats, name, data[name])
        ref = data.get("reference")
        stats.reference = datetime.fromisoformat(ref) if ref else None
        return stats

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, separators=(",", ":"))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClickStats:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    # -- features --
    def product_prior(self, product: str) -> float:
        """The product's position-corrected clicks per search of the window."""
        return (self.product.get(product, 0.0) + 0.1) / (self.total_searches + 1.0)

    def clicked_for(self, query: str, limit: int = CLICK_RECALL) -> list[str]:
        """The gated query's most clicked products (position-corrected), best
        first; for a query not in the table, its similar queries' (:meth:`neighbours`)."""
        table = self.query_products.get(query)
        if table is None:
            table, _similarity = self.neighbours(query)
        return [p for p, _w in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]

    def knows(self, query: str) -> bool:
        """Whether the clicks say anything about ``query``: it is a gated query,
        a similar one is, or one of its words is a gated query's word. A query
        they know nothing about keeps recall's order (the ranker's text
        features alone do not beat recall's field-weighted BM25)."""
        if query in self.query_products or any(w in self.word_products for w in words(query)):
            return True
        return bool(self.neighbours(query)[0])

    def _neighbour_index(self) -> dict[str, list[str]]:
        index = getattr(self, "_index", None)
        if index is None:
            index = defaultdict(list)
            for q in sorted(self.query_products):
                for key in {*words(q), "^" + q[:3]}:
                    index[key].append(q)
            self._index = index
        return index

    def neighbours(self, query: str) -> tuple[dict[str, float], float]:
        """Product shares lent by the gated queries most like ``query`` (typos,
        plurals, word order: "cal of duty" → "call of duty"), each weighted by
        its similarity, and the best similarity (0..1). ``query`` itself is not
        its own neighbour. Cached per query."""
        cache = self.__dict__.setdefault("_neighbours", {})
        if query in cache:
            return cache[query]
        from rapidfuzz import fuzz, process

        index = self._neighbour_index()
        pool: list[str] = []
        seen = {query}
        for key in ["^" + query[:3], *words(query)]:
            for q in index.get(key, ()):
                if q not in seen:
                    seen.add(q)
                    pool.append(q)
            if len(pool) >= NEIGHBOUR_POOL:
                break
        shares: dict[str, float] = defaultdict(float)
        best = 0.0
        for other, score, _i in process.extract(query, pool[:NEIGHBOUR_POOL], scorer=fuzz.WRatio,
                                                limit=NEIGHBOURS, score_cutoff=NEIGHBOUR_SCORE):
            table = self.query_counts.get(other) or self.query_products[other]
            total = sum(table.values()) or 1.0
            best = max(best, score / 100.0)
            for p, w in table.items():
                shares[p] += score / 100.0 * w / total
        result = (dict(shares), best)
        if len(cache) > 10_000:
            cache.clear()
        cache[query] = result
        return result


def _brand_or_type_match(values: Sequence[str], field_value: str, query_words: set[str]) -> float:
    value = (field_value or "").strip().lower()
    if not value:
        return 0.0
    if values:
        return 1.0 if any(v.strip().lower() == value for v in values) else -1.0
    # Nothing understood: does the query spell it?
    return 0.5 if set(words(value)) <= query_words else 0.0


def features(stats: ClickStats, context: QueryContext, candidates: Sequence[Candidate],
             recalled: int | None = None) -> np.ndarray:
    """One row of :data:`FEATURE_NAMES` per candidate, in the given order.

    Args:
        stats: Click statistics (of the training window, or the serving copy).
        context: The query and what understanding read in it.
        candidates: Recall's candidates in its order, then the click-recalled ones.
        recalled: How many of ``candidates`` came from recall (the rest from clicks).
    """
    from rapidfuzz import fuzz

    query = context.query
    qwords = words(query)
    qset = set(qwords)
    n_recalled = len(candidates) if recalled is None else recalled
    top = max((c.score for c in candidates[:n_recalled]), default=0.0) or 1.0
    table = stats.query_products.get(query)
    recent_table = stats.query_recent.get(query) or {}
    known = table is not None
    table = table or {}
    q_searches = stats.query_searches.get(query, 0)
    q_weight = sum(table.values())
    q_recent = sum(recent_table.values())
    ranked = {p: i for i, p in enumerate(stats.clicked_for(query, limit=len(table)))} if known else {}
    raw = stats.query_counts.get(query) or {}
    raw_total = sum(raw.values())
    raw_prior_total = sum(stats.product_counts.values())
    near, near_similarity = stats.neighbours(query)
    near_total = sum(near.values())
    word_tables = [(stats.word_products.get(w) or {}) for w in qset]
    word_totals = [sum(t.values()) for t in word_tables]
    rows = []
    for rank, cand in enumerate(candidates):
        title = (cand.title or "").lower()
        twords = set(words(title))
        prior = stats.product_prior(cand.id)
        pop = stats.product.get(cand.id, 0.0)
        rec = stats.product_recent.get(cand.id, 0.0)
        w_qp = table.get(cand.id, 0.0)
        # Smoothed towards the product's overall rate (SMOOTHING searches' worth).
        rate = (w_qp + SMOOTHING * prior) / (q_searches + SMOOTHING)
        share_prior = (pop + 0.1) / (stats.total_weight + 1.0)
        share = (w_qp + SMOOTHING * share_prior) / (q_weight + SMOOTHING)
        recent_share = (recent_table.get(cand.id, 0.0) + SMOOTHING * share_prior) / (q_recent + SMOOTHING)
        wshares = [(t.get(cand.id, 0.0) + share_prior) / (tot + 1.0) for t, tot in zip(word_tables, word_totals,
                                                                                       strict=True)]
        price = cand.price
        if price is None or (context.min_price is None and context.max_price is None):
            in_range = 0.0
        else:
            ok = ((context.min_price is None or price >= context.min_price)
                  and (context.max_price is None or price <= context.max_price))
            in_range = 1.0 if ok else -1.0
        from_clicks = rank >= n_recalled
        if cand.fused:
            lexical_rank = DEPTH if cand.lexical_rank is None else min(cand.lexical_rank, DEPTH)
            dense_rank = DEPTH if cand.dense_rank is None else min(cand.dense_rank, DEPTH)
        else:
            lexical_rank, dense_rank = (DEPTH if from_clicks else min(rank, DEPTH)), DEPTH
        similarity = math.nan if cand.dense_similarity is None else cand.dense_similarity
        rows.append((
            cand.score if not from_clicks else 0.0,
            min(rank, n_recalled) if not from_clicks else DEPTH,
            (cand.score / top) if not from_clicks else 0.0,
            1.0 if from_clicks else 0.0,
            (len(qset & twords) / len(qset)) if qset else 0.0,
            fuzz.token_set_ratio(query, title) / 100.0,
            fuzz.partial_ratio(query, title) / 100.0,
            1.0 if query and query in title else 0.0,
            _brand_or_type_match(context.brands, cand.brand, qset),
            _brand_or_type_match(context.product_types, cand.product_type, qset),
            in_range,
            math.log(share_prior),
            math.log((rec + 0.01) / (stats.total_recent + 1.0)),
            math.log((rec + 0.01) / (stats.total_recent + 1.0)) - math.log(share_prior),
            min(stats.product_last.get(cand.id, 365.0), 365.0),
            1.0 if known else 0.0,
            math.log1p(q_searches),
            math.log(rate),
            math.log(share),
            math.log(recent_share),
            ranked.get(cand.id, CLICK_RECALL * 5) if known else CLICK_RECALL * 5,
            (sum(math.log(w) for w in wshares) / len(wshares)) if wshares else 0.0,
            math.log(max(wshares)) if wshares else 0.0,
            math.log((near.get(cand.id, 0.0) + 0.01 * share_prior) / (near_total + 0.01)),
            near_similarity,
            math.log((raw.get(cand.id, 0) + SMOOTHING * (stats.product_counts.get(cand.id, 0) + 0.1)
                      / (raw_prior_total + 1.0)) / (raw_total + SMOOTHING)),
            math.log((stats.product_counts.get(cand.id, 0) + 0.1) / (raw_prior_total + 1.0)),
            lexical_rank,
            dense_rank,
            similarity,
        ))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


def with_click_recall(stats: ClickStats, query: str, recalled: Sequence[Candidate],
                      documents: Callable[[list[str]], dict[str, Candidate]] | None) -> list[Candidate]:
    """``recalled`` followed by the gated query's clicked products that recall missed
    (looked up through ``documents``; none when it is None)."""
    if documents is None:
        return list(recalled)
    have = {c.id for c in recalled}
    missing = [p for p in stats.clicked_for(query) if p not in have]
    if not missing:
        return list(recalled)
    found = documents(missing)
    return list(recalled) + [found[p] for p in missing if p in found]


# -- training -----------------------------------------------------------------------------


@dataclass
class TrainParams:
    """Hyper-parameters of the LightGBM ranker (stored with the version)."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 20
    seed: int = 13
    #: Cuts of the training window (shares of its clicks by time): each cut's
    #: older clicks give the features of the label clicks up to the next cut.
    feature_shares: tuple[float, ...] = (0.5, 0.75)
    max_groups: int = 100_000

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Recall = Callable[[str], tuple[QueryContext, list[Candidate]]]


def candidate_lists(stats: ClickStats, queries: Iterable[str], recall: Recall,
                    documents: Callable[[list[str]], dict[str, Candidate]] | None
                    ) -> dict[str, tuple[QueryContext, list[Candidate], int]]:
    """Per distinct query: its context, candidates (recall + click recall) and how many came from recall."""
    out = {}
    for q in sorted(set(queries)):
        context, recalled = recall(q)
        out[q] = (context, with_click_recall(stats, q, recalled, documents), len(recalled))
    return out


def training_groups(clicks: Sequence[Click], searches: Sequence[SearchCount], recall: Recall,
                    documents: Callable[[list[str]], dict[str, Candidate]] | None, params: TrainParams, *,
                    min_users: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Learning-to-rank groups: each label click's candidates, the clicked product the positive.

    For each cut of ``params.feature_shares`` (shares of the clicks by time),
    features come from the clicks and searches before the cut and labels from
    the clicks between it and the next cut (or the window's end): a label
    click is never in its own features.
    """
    ordered = sorted(clicks, key=lambda c: (c.time, c.actor, c.query, c.product))
    cuts = sorted({int(len(ordered) * share) for share in params.feature_shares} - {0, len(ordered)})
    xs, ys, groups = [], [], []
    for n, cut in enumerate(cuts):
        end = cuts[n + 1] if n + 1 < len(cuts) else len(ordered)
        cut_time = ordered[cut].time
        stats = ClickStats(ordered[:cut], [s for s in searches if s.time < cut_time], min_users)
        labels = [c for c in ordered[cut:end] if c.query]
        lists = candidate_lists(stats, (c.query for c in labels), recall, documents)
        cache: dict[str, np.ndarray] = {}
        for c in labels:
            context, cands, recalled = lists[c.query]
            ids = [x.id for x in cands]
            if len(ids) < 2 or c.product not in ids:
                continue
            if c.query not in cache:
                cache[c.query] = features(stats, context, cands, recalled)
            xs.append(cache[c.query])
            ys.append(np.fromiter((i == c.product for i in ids), dtype=np.int32, count=len(ids)))
            groups.append(len(ids))
    if len(groups) > params.max_groups:
        rng = np.random.default_rng(params.seed)
        keep = np.sort(rng.choice(len(groups), params.max_groups, replace=False))
        xs, ys, groups = [xs[i] for i in keep], [ys[i] for i in keep], [groups[i] for i in keep]
    if not groups:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.int32), []
    return np.concatenate(xs), np.concatenate(ys), groups


class SearchRankerModel:
    """A trained LightGBM ranker with its click statistics and metadata."""

    BOOSTER_FILE = "ranker.txt"
    META_FILE = "meta.json"
    STATS_FILE = "clicks.json.gz"

    def __init__(self, booster: Any, stats: ClickStats | None = None, meta: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self.stats = stats or ClickStats()
        self.meta = dict(meta or {})
        names = self.meta.get("features") or FEATURE_NAMES
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"trained with features this version does not compute: {unknown}; retrain it")
        #: Columns of :func:`features`' rows this version was trained on, in its order.
        self.columns = None if tuple(names) == FEATURE_NAMES else [FEATURE_NAMES.index(n) for n in names]

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, groups: list[int], params: TrainParams,
            stats: ClickStats) -> SearchRankerModel:
        """Train LambdaRank on the groups; ``stats`` (the whole training window) go with the model."""
        if not groups:
            raise ValueError("no training groups: no clicked product was among its search's candidates")
        booster = fit_lambdarank(x, y, groups, params, FEATURE_NAMES, top_k=TOP_K)
        return cls(booster, stats, {"params": params.as_dict(), "groups": len(groups), "rows": int(len(y)),
                                           "features": list(FEATURE_NAMES), "eta": stats.eta})

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Scores of :func:`features` rows (all of :data:`FEATURE_NAMES`)."""
        if self.columns is not None:
            x = x[:, self.columns]
        return self.booster.predict(x, num_threads=1)

    def order(self, context: QueryContext, candidates: Sequence[Candidate], recalled: int | None = None,
              stats: ClickStats | None = None) -> list[int]:
        """Indices of ``candidates`` best first."""
        if len(candidates) < 2:
            return list(range(len(candidates)))
        x = features(stats or self.stats, context, candidates, recalled)
        return [int(i) for i in np.argsort(-self.scores(x), kind="stable")]

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / self.BOOSTER_FILE))
        self.stats.save(path / self.STATS_FILE)
        (path / self.META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> SearchRankerModel:
        import lightgbm

        path = Path(folder)
        booster = lightgbm.Booster(model_file=str(path / cls.BOOSTER_FILE))
        meta = json.loads((path / cls.META_FILE).read_text()) if (path / cls.META_FILE).exists() else {}
        names = meta.get("features") or []
        if names and booster.num_feature() != len(names):
            raise ValueError(f"{path}: the model reads {booster.num_feature()} features, its meta names {len(names)}")
        if not names and booster.num_feature() != len(FEATURE_NAMES):
            raise ValueError(f"{path}: trained with other features ({booster.num_feature()}); retrain it")
        stats = ClickStats.load(path / cls.STATS_FILE) if (path / cls.STATS_FILE).exists() else ClickStats()
        try:
            return cls(booster, stats, meta)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def reciprocal_rank(ranked: Sequence[str], product: str, k: int = TOP_K) -> float:
    top = list(ranked[:k])
    return 1.0 / (top.index(product) + 1) if product in top else 0.0


def evaluate(rank: Callable[[str], list[str]], heldout: Sequence[Click]) -> list[float]:
    """Reciprocal rank at :data:`TOP_K` of each held-out click's product (answers cached per query)."""
    cache: dict[str, list[str]] = {}
    out = []
    for c in heldout:
        if c.query not in cache:
            cache[c.query] = rank(c.query)[:TOP_K]
        out.append(reciprocal_rank(cache[c.query], c.product))
    return out
