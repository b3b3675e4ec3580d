"""The search ranker: its kind in the learning loop, and re-ranking at request time.

Model code is :mod:`suggestions.ml.search_ranker` (numpy, LightGBM, rapidfuzz;
never torch). This module reads the database and the recall backend for it.

Contracts:

* **Kind** ``search_ranker`` (:class:`SearchRankerKind`, registered in
  :mod:`suggestions.learning`): trained, gated, promoted and rolled back by
  the one loop (:func:`suggestions.learning.retrain`) like every kind.

  - Snapshot: every product click with a query and every search in history;
    the clicks of the newest ``SUGGESTIONS_HELDOUT_DAYS`` are held out (the
    newest fifth when those days hold more than half of them). Training
    features come from the older part of the training window, labels from
    the newer part; held-out clicks are scored with statistics of the whole
    training window only.
  - Metric: MRR@10 of the clicked product among the search's candidates (one
    unit per held-out click); the no-model baseline is recall's own order
    (search as it is without the ranker).
  - Options: ``max_groups``, ``shuffle_labels`` (a deliberately broken
    challenger, to check the gate).

* **Understanding as features**: the queries the ranker reorders
  (:func:`reranks`) are recalled without the understood brands' and types'
  fixed boosts, in training, in the gate and in search; the ranker's
  ``brand_match`` and ``type_match`` features weigh them instead. Price
  ranges stay filters. Other queries keep the boosts.
* **Serving** (:func:`rerank`): with ``SUGGESTIONS_SEARCH_RANKER`` on and an
  active version, the first ``SUGGESTIONS_SEARCH_RANKER_DEPTH`` results of a
  search are reordered; without one nothing is loaded and search is unchanged.
  The active version is looked up at most every
  ``SUGGESTIONS_MODEL_CHECK_SECONDS`` per process and loaded once.
* **Click statistics** served with a version are refreshed from the whole
  history on promotion and rollback (task ``suggestions.ml.refresh_search_clicks``,
  :func:`refresh_click_stats`); until then the version's own (training
  window) statistics serve. They hold aggregates only: per product, per word
  of gated queries, and per (query, product) for queries that at least
  ``SUGGESTIONS_MIN_DISTINCT_USERS`` identified shoppers searched; nothing
  per shopper. An erasure reaches them at the next refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .learning import ModelKind, Snapshot, Trained, newest_days_held_out, register_kind
from .models import ModelVersion, ModelVersionStatus

if TYPE_CHECKING:  # pragma: no cover
    from .ml.search_ranker import Candidate, ClickStats, QueryContext, SearchRankerModel
    from .nlp.types import Understanding
    from .recall import SearchFilters, SearchResult

logger = logging.getLogger(__name__)

KIND = "search_ranker"


# -- reading history ------------------------------------------------------------------------


def history_clicks(*, before=None):
    """Product clicks with a query, oldest first, as :class:`~suggestions.ml.search_ranker.Click`."""
    from django.contrib.contenttypes.models import ContentType

    from .adapter import get_adapter
    from .ml.search_ranker import Click
    from .models import ProductClick

    if not app_settings.ADAPTER:
        return []
    rows = ProductClick.objects.filter(
        content_type=ContentType.objects.get_for_model(get_adapter().get_model())).exclude(query="")
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [Click(q, p, pos, a, t) for q, p, pos, a, t in
            rows.order_by("created_at", "pk").values_list("query", "object_id", "position", "actor_hash",
                                                           "created_at").iterator(chunk_size=5000)]


def history_searches(*, before=None):
    """Searches, oldest first; unidentified ones carry no shopper (they count for no one in the gate)."""
    from .ml.search_ranker import SearchCount
    from .models import SearchEvent

    rows = SearchEvent.objects.exclude(normalized_query="")
    if before is not None:
        rows = rows.filter(created_at__lt=before)
    return [SearchCount(q, a if known else "", t) for q, a, known, t in
            rows.order_by("created_at").values_list("normalized_query", "actor_hash", "identified",
                                                    "created_at").iterator(chunk_size=5000)]


def click_stats(clicks, searches) -> ClickStats:
    from .ml.search_ranker import ClickStats

    return ClickStats(clicks, searches, app_settings.MIN_DISTINCT_USERS)


# -- candidates -----------------------------------------------------------------------------


def candidate(document, score: float, fusion: tuple[int | None, int | None, float | None] | None = None,
              *, fused: bool = False) -> Candidate:
    """A recall hit as the ranker's candidate; ``fusion`` is the hit's entry of
    :attr:`SearchResult.fusion` (``fused``: dense recall was fused into its list)."""
    from .ml.search_ranker import Candidate

    lexical_rank, dense_rank, similarity = fusion or (None, None, None)
    return Candidate(document.id, float(score), document.title, document.brand, document.product_type,
                     float(document.price) if document.price is not None else None,
                     lexical_rank, dense_rank, similarity, fused)


def candidates(result: SearchResult) -> list[Candidate]:
    """The hits of ``result`` as candidates, with their fusion ranks when dense recall was fused in."""
    fusion = result.fusion
    if fusion is None:
        return [candidate(h.document, h.score) for h in result.hits]
    return [candidate(h.document, h.score, fusion.get(h.id), fused=True) for h in result.hits]


def context_of(query: str, understood: Understanding | None, filters: SearchFilters | None) -> QueryContext:
    """What the ranker's understanding features read: the understood brands and
    types, and the price range of the search's filters."""
    from .ml.search_ranker import QueryContext

    brands = tuple(e.value or e.text for e in understood.entities_of("brand")) if understood else ()
    types = tuple(e.value or e.text for e in understood.entities_of("product_type")) if understood else ()
    return QueryContext(query, brands, types, getattr(filters, "min_price", None), getattr(filters, "max_price", None))


def recall(query: str, *, backend_alias: str = "default", depth: int | None = None, boosted: bool = True
           ) -> tuple[QueryContext, list[Candidate]]:
    """The candidates :func:`suggestions.services.search` would rerank for ``query``
    (normalised): understanding, synonyms and the backend, first ``depth`` hits,
    fused with the nearest products when dense recall is ready (as search fuses them).

    ``boosted=False``: without the understood brands' and types' boosts, as
    search recalls the queries the ranker reorders (:func:`reranks`); the
    ranker weighs the understanding itself (features ``brand_match``, ``type_match``)."""
    from . import services
    from .dense import ready as dense_ready
    from .recall import SearchBoosts, SearchFilters, get_backend

    understood, text, filters, boosts = None, query, SearchFilters(), SearchBoosts()
    if app_settings.SEARCH_USES_UNDERSTANDING:
        try:
            understood = services.understand(query, schedule=False)
            text, filters, boosts = services.apply_understanding(understood, SearchFilters())
        except Exception:  # noqa: BLE001 - as search: understanding is an enhancement
            understood = None
    if not boosted:
        boosts = SearchBoosts()
    backend = get_backend(backend_alias)
    dense_depth = app_settings.DENSE_DEPTH if dense_ready(backend, backend_alias) else 0
    result = backend.search_products(
        text, filters, offset=0, limit=max(depth or app_settings.SEARCH_RANKER_DEPTH, dense_depth), boosts=boosts,
        **services._synonym_argument(text))
    if dense_depth:
        result = services._fuse_dense(backend, text, filters, result, dense_depth, [])
    return context_of(query, understood, filters), candidates(result)


def documents(ids: list[str]) -> dict[str, Candidate]:
    """Candidates (score 0) for product ids, through the adapter (missing ids left out)."""
    from .adapter import get_adapter

    return {d.id: candidate(d, 0.0) for d in get_adapter().get_documents(list(ids))}


# -- the kind -------------------------------------------------------------------------------


class SearchRankerKind(ModelKind):
    """Learning to rank search results from product clicks (see the module docstring)."""

    name = KIND
    metric = "mrr@10"
    metric_label = _("how high the product shoppers then clicked was in the results (MRR@10: 1 = always first)")
    description = _("Orders search results by what shoppers clicked after the same and similar searches, "
                    "corrected for the position they clicked at.")

    def snapshot(self, *, log: Callable[[str], None], options: Mapping[str, Any]) -> Snapshot:
        clicks = history_clicks()
        if not clicks:
            raise ValueError("no product clicks to learn from yet")
        searches = history_searches()
        train, heldout = newest_days_held_out(clicks, log=log, what="clicks")
        cut = heldout[0].time
        train_searches = [s for s in searches if s.time < cut]
        return Snapshot(
            train={"clicks": train, "searches": train_searches}, heldout=heldout,
            window=(train[0].time if train else None, train[-1].time if train else None),
            heldout_window=(heldout[0].time, heldout[-1].time),
            counts={"train_clicks": len(train), "heldout_clicks": len(heldout), "train_searches": len(train_searches)},
            options=dict(options))

    def _stats(self, snapshot: Snapshot) -> ClickStats:
        if "stats" not in snapshot.cache:
            snapshot.cache["stats"] = click_stats(snapshot.train["clicks"], snapshot.train["searches"])
        return snapshot.cache["stats"]

    def _heldout_lists(self, snapshot: Snapshot, *, boosted: bool = True):
        """The held-out queries' candidates: with understanding's boosts as search
        recalls without the ranker, or without them as it recalls for the ranker."""
        key = "lists" if boosted else "lists_unboosted"
        if key not in snapshot.cache:
            from functools import partial

            from .ml.search_ranker import candidate_lists

            snapshot.cache[key] = candidate_lists(
                self._stats(snapshot), (c.query for c in snapshot.heldout), partial(recall, boosted=boosted),
                documents if app_settings.SEARCH_RANKER_CLICK_RECALL else None)
        return snapshot.cache[key]

    def train(self, snapshot: Snapshot, folder: Path, *, log: Callable[[str], None]) -> Trained:
        from .ml.search_ranker import (
            SearchRankerModel,
            TrainParams,
            shuffled_labels,
            training_groups,
        )

        opts = snapshot.options
        params = TrainParams(**({"max_groups": int(opts["max_groups"])} if opts.get("max_groups") else {}))
        started = time.perf_counter()
        from functools import partial

        x, y, groups = training_groups(
            snapshot.train["clicks"], snapshot.train["searches"], partial(recall, boosted=False),
            documents if app_settings.SEARCH_RANKER_CLICK_RECALL else None, params,
            min_users=app_settings.MIN_DISTINCT_USERS)
        log(f"{len(groups):,} training groups ({len(y):,} candidates)")
        if opts.get("shuffle_labels"):
            y = shuffled_labels(y, groups, seed=params.seed)
            log("labels shuffled within each group (a deliberately broken challenger)")
        stats = self._stats(snapshot)
        model = SearchRankerModel.fit(x, y, groups, params, stats)
        model.save(folder)
        seconds = round(time.perf_counter() - started, 1)
        log(f"trained LightGBM lambdarank in {seconds} s (position bias eta {stats.eta:.3f})")
        return Trained(folder, {"groups": len(groups), "rows": int(len(y)), "seconds": seconds,
                                "position_bias_eta": round(float(stats.eta or 0.0), 4)},
                       notes={"params": params.as_dict(), "model": "lightgbm lambdarank",
                              "shuffled_labels": bool(opts.get("shuffle_labels"))})

    def _ranking(self, artefact: str | None, snapshot: Snapshot) -> Callable[[str], list[str]]:
        lists = self._heldout_lists(snapshot)
        if artefact is None:
            return lambda q: [c.id for c in lists[q][1][:lists[q][2]]]
        from .ml.search_ranker import SearchRankerModel

        model = SearchRankerModel.load(artefact)
        stats = self._stats(snapshot)
        unboosted = self._heldout_lists(snapshot, boosted=False)

        def rank(q: str) -> list[str]:
            if not stats.knows(q):  # as served: recall's order
                context, cands, recalled = lists[q]
                return [c.id for c in cands[:recalled]]
            context, cands, recalled = unboosted[q]
            return [cands[i].id for i in model.order(context, cands, recalled, stats=stats)]
        return rank

    def evaluation_units(self, artefact: str | None, snapshot: Snapshot):
        import numpy as np

        from .ml.search_ranker import evaluate

        return np.asarray(evaluate(self._ranking(artefact, snapshot), snapshot.heldout),
                          dtype=np.float64).reshape(-1, 1)

    def unit_windows(self, snapshot: Snapshot, windows: int):
        if windows <= 1 or not snapshot.heldout:
            return None
        import numpy as np

        first, last = snapshot.heldout[0].time, snapshot.heldout[-1].time
        span = max((last - first).total_seconds(), 1e-9)
        return np.asarray([min(int((c.time - first).total_seconds() / span * windows), windows - 1)
                           for c in snapshot.heldout])

    def changed_examples(self, snapshot: Snapshot, artefact: str, incumbent: str | None,
                         limit: int = 5) -> list[dict[str, Any]]:
        # Only queries that pass the k-gate are kept with the version.
        stats = self._stats(snapshot)
        new, old = self._ranking(artefact, snapshot), self._ranking(incumbent, snapshot)
        lists = self._heldout_lists(snapshot)
        titles = {c.id: c.title for _ctx, cands, _n in lists.values() for c in cands}
        out = []
        for query, _n in Counter(c.query for c in snapshot.heldout).most_common(200):
            if query not in stats.query_searches:
                continue
            before, after = [titles.get(i, i) for i in old(query)[:3]], [titles.get(i, i) for i in new(query)[:3]]
            if before != after:
                out.append({"input": query, "before": before, "after": after})
                if len(out) == limit:
                    break
        return out


register_kind(SearchRankerKind())


# -- serving --------------------------------------------------------------------------------

_lock = threading.Lock()
_active: dict[str, Any] = {"checked_at": float("-inf"), "key": None, "model": None}


def serving_stats_path(version: str) -> Path:
    """Where the whole-history click statistics of an active version are kept."""
    return Path(app_settings.MODEL_DIR) / KIND / "serving" / f"{version}.json.gz"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def active_ranker(*, force_check: bool = False) -> SearchRankerModel | None:
    """The loaded active version (with its serving click statistics), or None."""
    now = time.monotonic()
    with _lock:
        if not force_check and now - _active["checked_at"] < app_settings.MODEL_CHECK_SECONDS:
            return _active["model"]
        row = (ModelVersion.objects.filter(kind=KIND, status=ModelVersionStatus.ACTIVE)
               .values_list("pk", "version", "artefact_uri").first())
        _active["checked_at"] = now
        served = serving_stats_path(row[1]) if row else None
        key = (row[0], row[2], _mtime(served)) if row else None
        if key == _active["key"]:
            return _active["model"]
        model = None
        if row is not None:
            from .ml.search_ranker import ClickStats, SearchRankerModel

            try:
                model = SearchRankerModel.load(row[2].removeprefix("file://"))
                if key[2] is not None:
                    model.stats = ClickStats.load(served)
                model.meta["version"] = row[1]
            except Exception:  # noqa: BLE001 - a broken artefact must not break search
                logger.exception("suggestions: cannot load search ranker %s (%s)", row[1], row[2])
                model = None
        _active.update(key=key, model=model)
        return model


def reset() -> None:
    """Forget the loaded ranker and the last check (tests; after a refresh in this process)."""
    with _lock:
        _active.update(checked_at=float("-inf"), key=None, model=None)


def serving_depth(offset: int) -> int | None:
    """How many results to fetch for re-ranking a page at ``offset`` (None: no re-ranking)."""
    if not app_settings.SEARCH_RANKER or offset >= app_settings.SEARCH_RANKER_DEPTH:
        return None
    return app_settings.SEARCH_RANKER_DEPTH if active_ranker() is not None else None


def reranks(query: str) -> bool:
    """Whether the active ranker reorders ``query`` (normalised): one is active
    and the clicks know the query. Search then recalls without understanding's
    fixed boosts and lets the ranker weigh the understood brand and type."""
    model = active_ranker()
    return model is not None and bool(query) and model.stats.knows(query)


def rerank(query: str, understood: Understanding | None, filters: SearchFilters, result: SearchResult, *,
           offset: int, limit: int, corrected: str = "") -> SearchResult:
    """``result`` (recall's first hits, from offset 0) reordered by the active
    ranker, sliced to the page at ``offset``. Without filters, products most
    clicked after ``query`` that recall missed join the candidates. When the
    results are for a spelling correction, the clicks of the query as typed
    count if shoppers searched it often enough (they clicked what they meant),
    else the correction's."""
    from dataclasses import replace

    from .recall import SearchHit

    model = active_ranker()
    hits = list(result.hits)
    if model is None or not query:
        return replace(result, hits=hits[offset:offset + limit])
    if corrected and query not in model.stats.query_products:
        query = corrected
    if not model.stats.knows(query):
        return replace(result, hits=hits[offset:offset + limit])
    from .ml.search_ranker import with_click_recall

    recalled = candidates(result)
    docs = {h.id: h.document for h in hits}
    lookup = None
    if app_settings.SEARCH_RANKER_CLICK_RECALL and not filters:
        from .adapter import get_adapter

        def lookup(ids: list[str]) -> dict[str, Candidate]:
            found = get_adapter().get_documents(ids)
            docs.update({d.id: d for d in found})
            return {d.id: candidate(d, 0.0) for d in found}
    try:
        cands = with_click_recall(model.stats, query, recalled, lookup)
        order = model.order(context_of(query, understood, filters), cands, len(recalled))
    except Exception:  # noqa: BLE001 - the ranker is an enhancement, never a failure
        logger.warning("suggestions: search ranker failed; recall's order is served", exc_info=True)
        return replace(result, hits=hits[offset:offset + limit])
    scores = {h.id: h.score for h in hits}
    ranked = [SearchHit(cands[i].id, scores.get(cands[i].id, 0.0), docs[cands[i].id]) for i in order]
    return replace(result, hits=ranked[offset:offset + limit], total=result.total + len(cands) - len(recalled))


def refresh_click_stats(version: ModelVersion | None = None) -> int:
    """Write the active version's click statistics from the whole history
    (after a promotion or rollback, and nightly); returns the gated queries kept.
    Without an active version, the stored statistics are removed."""
    folder = Path(app_settings.MODEL_DIR) / KIND / "serving"
    if version is None:
        version = ModelVersion.objects.filter(kind=KIND, status=ModelVersionStatus.ACTIVE).first()
    keep = {serving_stats_path(version.version).name} if version else set()
    if folder.is_dir():
        for old in folder.iterdir():
            if old.name not in keep:
                old.unlink(missing_ok=True)
    if version is None:
        reset()
        return 0
    stats = click_stats(history_clicks(), history_searches())
    stats.save(serving_stats_path(version.version))
    reset()
    return len(stats.query_searches)
