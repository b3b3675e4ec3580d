"""The app's entry points. Views, tasks, admin actions and management commands
call these functions and nothing below them (most are re-exported from the
module that implements them).

Contracts:
* Importing this module imports no model code (torch, :mod:`suggestions.ml`).
  Nothing here waits on a GPU or a model, except the worker entry points that
  say so (:func:`retrain`, :func:`refresh_rankings`, :func:`understand_pending`,
  :func:`reunderstand`), which load model code when they run.
* Request-path functions (:func:`suggest`, :func:`search`) never raise because
  the recall backend or the cache is down: they answer from what they can and
  set ``degraded=True``.
* History is written by receivers of the signals announced here
  (:mod:`suggestions.signals`, :mod:`suggestions.receivers`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from . import broker, metrics, personal, recent, signals
from .adapter import ProductDocument, get_adapter
from .conf import app_settings
from .dense import ready as dense_ready

# Online experiments of model versions (see suggestions/experiments.py; preparing one loads the rankers).
from .experiments import (  # noqa: F401
    EXPERIMENT_KINDS,
    ExperimentResults,
    experiment_results,
    prepare_experiment,
    start_experiment,
    stop_experiment,
)

# Search history: listing, erasure, import, retention (see suggestions/history.py).
from .history import (  # noqa: F401
    HistoryEntry,
    ImportedSearch,
    ImportReport,
    batched_writes,
    erase_history,
    garbage_collect,
    list_history,
    request_actor,
)
from .history import import_searches as import_search_history  # noqa: F401

# Indexing of the host's products (see suggestions/indexing.py).
from .indexing import (  # noqa: F401
    EmbedReport,
    embed_products,
    enqueue_product_change,
    index_products,
    rebuild_index,
    remove_products,
)

# The learning loop: training, registering, promoting, retiring and rolling back model
# versions (see suggestions/learning.py; training imports torch only when it runs).
from .learning import (  # noqa: F401
    KINDS,
    RetrainBusy,
    RetrainReport,
    promote,
    refresh_rankings,
    request_retrain,
    retire,
    retrain,
    rollback,
)
from .mining import (
    BuildReport,
    identified_shoppers,
    merge_candidates,
    mine_catalog,
    mine_history,
    mine_variants,
    query_stats,
    store_candidates,
)
from .models import QueryDailyStat, SearchOrigin, Suggestion, SuggestionSource, SuggestionStatus

# Moderation of suggestions and blocked terms (see suggestions/moderation.py).
from .moderation import (  # noqa: F401
    block_suggestions,
    notify_suggestions_changed,
    pin_suggestions,
    save_suggestion,
    set_suggestion_status,
    unpin_suggestions,
)
from .nlp.types import Entity, Understanding  # noqa: F401  (pure dataclasses)
from .personal import Profile, rebuild_profiles  # noqa: F401
from .process import prepare_web_process  # noqa: F401
from .recall import RecallUnavailable, SearchBoosts, SearchFilters, get_backend
from .recall.base import SearchResult

# Serving suggestions (see suggestions/serving.py).
from .serving import (  # noqa: F401
    SuggestionItem,
    SuggestResult,
    invalidate_cache,
    publish_suggestions,
    suggest,
)
from .text import new_request_id, normalize_query

# Query understanding (see suggestions/understanding.py): understand() never loads a model;
# the workers' understand_pending() and reunderstand() run the active one.
from .understanding import reunderstand, save_label, understand, understand_pending  # noqa: F401

# The shopper's recent searches in a signed cookie (see suggestions/recent.py): the
# views read and write it, so the suggest path reads no history per keystroke.
recent_from_cookie = recent.read
recent_from_history = recent.load
write_recent_cookie = recent.write
remember_recent = recent.remember
forget_recent_cookie = recent.forget
# The shopper's brand and type affinities in a signed cookie (suggestions/personal.py):
# search answers set it, the suggest path reads it (no database per keystroke).
profile_from_cookie = personal.read_cookie
write_profile_cookie = personal.write_cookie
forget_profile_cookie = personal.forget_cookie
shopper_profile = personal.load

# Prometheus metrics (see suggestions/metrics.py): the views time themselves
# with ``observed`` and report degraded answers; ``metrics_page`` is the scrape.
observed = metrics.observed
count_degraded = metrics.count_degraded
metrics_page = metrics.exposition

logger = logging.getLogger(__name__)


# -- search -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductResult:
    document: ProductDocument
    score: float
    position: int


@dataclass(frozen=True)
class SearchPage:
    query: str
    request_id: str
    total: int
    page: int
    page_size: int
    results: list[ProductResult]
    brand_counts: dict[str, int]
    degraded: bool
    understanding: Understanding | None = None
    #: Why ``degraded`` is set: ``"recall"`` (the search engine was down: results
    #: from the database fallback) and/or ``"task_queue"`` (the broker was
    #: down: the query's understanding is caught up later, see suggestions/broker.py)
    #: and/or ``"dense"`` (embedding the query or the kNN search failed: BM25 alone).
    degraded_reasons: tuple[str, ...] = ()
    #: The spelling correction the results are for ("printer" for "prnter"),
    #: empty when they are for ``query`` itself (see suggestions/spelling.py).
    corrected_query: str = ""
    #: Refinements of the query (with results) or rewrites of it (without),
    #: best first (:class:`suggestions.refinements.Refinement`).
    refinements: tuple = ()
    #: The shopper profile the results were re-ranked for (None: none applied;
    #: :mod:`suggestions.personal`); the view hands it on in the profile cookie.
    profile: Profile | None = None


_PRICE_RE = re.compile(r"^(?:(<=|>=)\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?))$")


def _price_bounds(value: str) -> tuple[float | None, float | None] | None:
    """``"<=100"`` → (None, 100); ``">=500"`` → (500, None); ``"100-200"`` → (100, 200)."""
    match = _PRICE_RE.match(value.strip())
    if not match:
        return None
    op, number, low, high = match.groups()
    if op == "<=":
        return None, float(number)
    if op == ">=":
        return float(number), None
    return float(low), float(high)


def boosted_entities(understood: Understanding, label: str) -> list[Entity]:
    """The entities of ``label`` that search boosts: all of a model's or a
    label's, the rules fallback's scored at least ``SUGGESTIONS_FALLBACK_MIN_SCORE``."""
    found = understood.entities_of(label)
    if understood.source != "rules":
        return found
    return [e for e in found if e.score >= app_settings.FALLBACK_MIN_SCORE]


def apply_understanding(understood: Understanding, filters: SearchFilters) -> tuple[str, SearchFilters, SearchBoosts]:
    """Turn an understanding into search text, filters and boosts.

    * A price range becomes a price filter (unless the request set one) and its
      words leave the text: "laptop under 500" searches "laptop" up to 500.
    * Brands and product types become soft boosts, never filters: a wrong guess
      reorders results but hides none. Of the rules fallback's tags (a query
      no worker has understood yet) only those scored at least
      ``SUGGESTIONS_FALLBACK_MIN_SCORE`` boost: the score is the precision
      measured for tags of that shape (:mod:`suggestions.nlp.rules`), and a
      wrong type boosts the wrong products ("camera" in "camera bag").
    """
    text = understood.query
    min_price, max_price = filters.min_price, filters.max_price
    for ent in sorted(understood.entities_of("price_range"), key=lambda e: -e.start):
        bounds = _price_bounds(ent.value)
        if bounds is None:
            continue
        if filters.min_price is None and filters.max_price is None:
            min_price, max_price = bounds
        text = (text[:ent.start] + " " + text[ent.end:])
    boosts = SearchBoosts(
        brands=tuple(e.value or e.text for e in boosted_entities(understood, "brand")),
        product_types=tuple(e.value or e.text for e in boosted_entities(understood, "product_type")),
        weight=app_settings.ENTITY_BOOST,
    )
    new_filters = SearchFilters(brands=filters.brands, product_types=filters.product_types,
                                min_price=min_price, max_price=max_price)
    return normalize_query(text), new_filters, boosts


def _fuse_dense(backend, text: str, filters: SearchFilters, lexical, depth: int, reasons: list[str]):
    """BM25's first results fused with the nearest products (:mod:`suggestions.dense`);
    BM25 alone, with reason ``dense``, when embedding or kNN fails."""
    from . import dense

    alone = dense.dense_only_allowed(text)
    if not lexical.hits and not alone:
        return lexical  # nothing dense recall may add: no query to embed
    try:
        vector = dense.query_vector(text)
        nearest = backend.search_vectors(app_settings.DENSE_ENCODER, vector, filters, limit=depth)
    except Exception:  # noqa: BLE001 - dense recall is an enhancement, never a failure
        logger.warning("suggestions: dense recall failed, searching with BM25 alone", exc_info=True)
        reasons.append("dense")
        return lexical
    return dense.fuse(lexical, nearest, alone=alone)


def dense_status(alias: str = "default") -> dict:
    """Dense recall's settings and how many products have a vector (admin, commands)."""
    from . import dense

    backend = get_backend(alias)
    status = dense.describe()
    status["supported"] = backend.supports_vectors
    status["vectors"] = backend.count_vectors(app_settings.DENSE_ENCODER) if backend.supports_vectors else 0
    status["products"] = backend.count_products()
    return status


def search(query: str, *, filters: SearchFilters | None = None, page: int = 1, page_size: int = 20,
           origin: str = SearchOrigin.TYPED, user=None, session_key: str | None = None,
           backend_alias: str = "default", exact: bool = False, profile: Profile | None = None) -> SearchPage:
    """Search the catalog and record the search in history.

    When the recall backend is down, falls back to the adapter's database search
    (first page only, no facets) and sets ``degraded``; so it does when the task
    broker is down (the search is recorded, its understanding waits).

    A query that normalises to nothing (``"!!!"``) goes to the backend as typed,
    so that, per the backend contract, it matches nothing (or, with filters, is
    a filter-only search) instead of listing the whole catalog.

    Approved synonyms widen the query (``SUGGESTIONS_SYNONYMS``). A query that
    finds at most ``SUGGESTIONS_DIDYOUMEAN_MAX_RESULTS`` products is
    spell-corrected from the shop's vocabulary unless ``exact`` (so are words
    of a query that match no product at all); the corrected
    search's results are shown, with ``corrected_query`` set, only when it
    finds more. History records the query as typed, with its own count.

    ``refinements`` are the chips to offer with the results, or the rewrites
    of a query that finds nothing (:mod:`suggestions.refinements`).

    With ``SUGGESTIONS_PERSONALIZATION``, the first results are re-ranked for
    the shopper's profile (:mod:`suggestions.personal`): ``profile`` when
    given, else the stored profile of ``user``/``session_key`` (one indexed
    read; none for a shopper without an identity). Without a profile the
    order is exactly as without personalization.
    """
    filters = filters or SearchFilters()
    normalized = normalize_query(query)
    request_id = new_request_id()
    offset = (page - 1) * page_size
    reasons: list[str] = []
    understood = None
    text, effective_filters, boosts = normalized or query.strip(), filters, SearchBoosts()
    if normalized and app_settings.SEARCH_USES_UNDERSTANDING:
        try:
            # The query_submitted receiver schedules the workers; don't twice.
            understood = understand(normalized, schedule=False)
        except Exception:  # noqa: BLE001 - understanding is an enhancement, never a failure
            logger.warning("suggestions: understanding failed for a search", exc_info=True)
        if understood is not None:
            text, effective_filters, boosts = apply_understanding(understood, filters)
    corrected = ""
    try:
        from . import search_ranking  # serving; loads LightGBM only with an active version

        backend = get_backend(backend_alias)
        # The search ranker reorders recall's first results (None: off or no active version).
        depth = search_ranking.serving_depth(offset) if normalized else None
        if depth and boosts and search_ranking.reranks(normalized):
            # The ranker weighs the understood brand and type itself (as it was trained).
            boosts = SearchBoosts()
        # Personal re-ranking reorders the first results too (None: no profile, or past them).
        if normalized and app_settings.PERSONALIZATION and offset < app_settings.PERSONALIZATION_DEPTH:
            profile = profile if profile is not None else personal.profile_for(user, session_key)
        else:
            profile = None
        # Dense recall fuses BM25's and the kNN list's first DENSE_DEPTH results.
        dense_depth = app_settings.DENSE_DEPTH if normalized and dense_ready(backend, backend_alias) else 0
        window = max(depth or 0, app_settings.PERSONALIZATION_DEPTH if profile else 0, dense_depth)
        fetch_offset, fetch_limit = (0, max(window, offset + page_size)) if window else (offset, page_size)
        result = backend.search_products(text, effective_filters, offset=fetch_offset, limit=fetch_limit,
                                         boosts=boosts, **_synonym_argument(text))
        recorded_total = result.total
        if normalized and not exact and app_settings.DIDYOUMEAN:
            better, corrected = _spelling_fallback(backend, text, normalized, result, effective_filters,
                                                   fetch_offset, fetch_limit, boosts)
            result = better or result
        if dense_depth:
            result = _fuse_dense(backend, corrected or text, effective_filters, result, dense_depth, reasons)
            if not depth and not profile:
                result = SearchResult(hits=result.hits[offset:offset + page_size], total=result.total,
                                      brand_counts=result.brand_counts)
        if depth:
            # With a profile the ranker orders the whole window; personal re-ranking then pages it.
            result = search_ranking.rerank(normalized, understood, effective_filters, result,
                                           offset=0 if profile else offset,
                                           limit=len(result.hits) + window if profile else page_size,
                                           corrected=corrected)
        if profile:
            from dataclasses import replace

            result = replace(result, hits=personal.rerank_hits(list(result.hits), profile)[offset:offset + page_size])
        results = [ProductResult(h.document, h.score, offset + i) for i, h in enumerate(result.hits)]
        total, brand_counts = result.total, result.brand_counts
    except RecallUnavailable:
        logger.warning("suggestions: recall backend %r unavailable, searching the database", backend_alias)
        reasons.append("recall")
        profile = None  # the database fallback has no scores to re-rank
        docs = get_adapter().fallback_search(query.strip(), page_size) if page == 1 and normalized else []
        results = [ProductResult(d, 0.0, i) for i, d in enumerate(docs)]
        total, brand_counts = len(docs), {}
        recorded_total = total
    if normalized:
        # One transaction for what the receivers write (the search, its daily count, the
        # shopper's profile): one commit per search, and all of it or none.
        with transaction.atomic():
            signals.query_submitted.send(
                sender=search, query=query.strip(), normalized_query=normalized, results_count=recorded_total,
                origin=origin, request_id=request_id, user=user, session_key=session_key, understanding=understood,
                filters={k: v for k, v in {
                    "brands": list(filters.brands), "product_types": list(filters.product_types),
                    "min_price": filters.min_price, "max_price": filters.max_price}.items() if v},
            )
        # The receivers enqueued understanding (or the breaker skipped it).
        if broker.unavailable():
            reasons.append(broker.REASON)
    refined = _refinements(corrected or normalized, total, backend_alias) if normalized else ()
    return SearchPage(normalized, request_id, total, page, page_size, results, brand_counts, bool(reasons),
                      understood, tuple(reasons), corrected, refined, profile or None)


# -- did-you-mean and synonyms (see suggestions/spelling.py, suggestions/synonyms.py) ----

from .synonyms import (  # noqa: E402, F401
    add_synonym,
    delete_synonyms,
    mine_synonyms,
    save_synonym,
    set_synonym_status,
)


def _synonym_argument(text: str) -> dict:
    """``{"synonyms": ...}`` for the backend when approved synonyms apply to
    ``text`` (nothing otherwise, so backends without the argument still work)."""
    if not app_settings.SYNONYMS:
        return {}
    from . import synonyms

    try:
        found = synonyms.synonyms_for(text)
    except Exception:  # noqa: BLE001 - synonyms are an enhancement, never a failure
        logger.warning("suggestions: synonyms unavailable for a search", exc_info=True)
        return {}
    return {"synonyms": found} if found else {}


def _spelling_fallback(backend, text: str, normalized: str, original, filters: SearchFilters, offset: int,
                       limit: int, boosts: SearchBoosts):
    """The corrected search and the corrected query, else ``(None, "")``.

    A query with at most ``DIDYOUMEAN_MAX_RESULTS`` results has its unknown
    words corrected; a query with more (``DIDYOUMEAN_UNMATCHED_WORDS``) only
    the words that match no product at all ("hp prnter" finds HP products
    through "hp", none through "prnter"): one count per such word, and only
    for words the spelling dictionary does not know. The correction is shown
    when the corrected search finds more products (for corrected words of a
    query with results: at least as many, ranked differently).
    """
    from . import spelling

    total = original.total
    few = total <= app_settings.DIDYOUMEAN_MAX_RESULTS
    if not few and not app_settings.DIDYOUMEAN_UNMATCHED_WORDS:
        return None, ""
    try:
        correction = spelling.correct(text)
    except Exception:  # noqa: BLE001 - correction is an enhancement, never a failure
        logger.warning("suggestions: spelling correction failed", exc_info=True)
        return None, ""
    if correction is None:
        return None, ""
    if not few:
        # A synonym's term is a word of the shop, whatever the catalog says.
        terms = {w for term in _synonym_argument(text).get("synonyms", {}) for w in term.split()}
        words = {w: fixed for w, fixed in correction.words.items()
                 if w not in terms and backend.search_products(w, limit=0).total == 0}
        if not words:
            return None, ""
        correction = spelling.Correction(spelling.replace_words(text, words), words)
    better = backend.search_products(correction.text, filters, offset=offset, limit=limit, boosts=boosts,
                                     **_synonym_argument(correction.text))
    if few and better.total <= total:
        return None, ""
    if not few and (better.total < total or [h.id for h in better.hits] == [h.id for h in original.hits]):
        return None, ""
    return better, normalize_query(spelling.replace_words(normalized, correction.words))


# -- events -----------------------------------------------------------------------------

_EVENT_SIGNALS = {
    "impression": signals.suggestions_shown,
    "suggestion_click": signals.suggestion_clicked,
    "product_click": signals.product_clicked,
    "refinement_impression": signals.refinements_shown,
    "refinement_click": signals.refinement_clicked,
}


def _known_product_ids(ids: set[str]) -> set[str]:
    # One query per batch, whatever its number of clicks.
    if not ids or not app_settings.ADAPTER:
        return set()
    queryset = get_adapter().get_queryset()
    pk_field = queryset.model._meta.pk
    candidates = {}
    for text_id in ids:
        try:
            value = pk_field.to_python(text_id)
            pk_field.run_validators(value)  # e.g. the database's integer range
        except ValidationError:
            continue  # cannot be a primary key of this model, so no product has it
        if str(value) == text_id:  # result ids are str(pk): "007" is no product's id
            candidates[value] = text_id
    if not candidates:
        return set()
    found = queryset.filter(pk__in=list(candidates)).values_list("pk", flat=True)
    return {candidates[pk] for pk in found if pk in candidates}


def record_events(events: list[dict], *, user=None, session_key: str | None = None) -> int:
    """Announce a validated batch of client events; returns how many were announced.

    The batch is recorded all or nothing: receivers run in one transaction.
    Product clicks whose ``product_id`` is not a product of the host's catalog
    (looked up through the adapter's queryset, one query per batch) are left
    out: a made-up id must not count as a click. Such a click may also be on a
    product deleted since the search, so it does not fail the batch.
    """
    clicked = {e["product_id"] for e in events if e["type"] == "product_click"}
    known = _known_product_ids(clicked)
    received = len(events)
    events = [e for e in events if e["type"] != "product_click" or e["product_id"] in known]
    # One transaction; the history's rows are written together at the end of it.
    with transaction.atomic(), batched_writes():
        for event in events:
            payload = {k: v for k, v in event.items() if k != "type"}
            _EVENT_SIGNALS[event["type"]].send(sender=record_events, user=user, session_key=session_key, **payload)
    metrics.count_events(len(events), received - len(events))
    return len(events)


# -- trending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendingItem:
    text: str
    searches: int


def trending(*, limit: int = 10) -> list[TrendingItem]:
    """Most searched approved suggestions of the last ``SUGGESTIONS_TRENDING_DAYS`` days.

    Only approved suggestions searched by at least ``SUGGESTIONS_MIN_DISTINCT_USERS``
    distinct identified shoppers within the window qualify: the k-anonymity
    gate of mining (:func:`~suggestions.mining.identified_shoppers`), applied to
    the window, and moderation.
    """
    since = timezone.localdate() - timedelta(days=app_settings.TRENDING_DAYS)
    rows = (QueryDailyStat.objects.filter(date__gte=since).values("normalized_query")
            .annotate(total=Sum("searches")).filter(total__gt=0).order_by("-total", "normalized_query")[: limit * 5])
    totals = {r["normalized_query"]: r["total"] for r in rows}
    approved = set(Suggestion.objects.filter(status=SuggestionStatus.APPROVED, text__in=list(totals))
                   .values_list("text", flat=True))
    from .serving import current_blocked_matcher

    blocked = current_blocked_matcher()
    shoppers = identified_shoppers(approved, since=since)
    items = [TrendingItem(t, n) for t, n in totals.items()
             if t in approved and shoppers.get(t, 0) >= app_settings.MIN_DISTINCT_USERS
             and not blocked.search(t)]
    return items[:limit]


# -- building suggestions ---------------------------------------------------------------


def build_suggestions(*, progress: Callable[[int], None] | None = None, include_catalog: bool = True,
                      publish: bool = True) -> BuildReport:
    """Mine history and catalog, store the candidates and publish the served set.

    ``progress(n)`` is called as catalog documents are read. When the recall
    backend is down the suggestions are stored and :class:`RecallUnavailable`
    propagates (the next publish serves them).
    """
    stats = query_stats()
    history = mine_history(stats=stats)
    catalog: dict = {}
    if include_catalog and app_settings.ADAPTER:
        catalog = mine_catalog(get_adapter().iter_documents(batch_size=app_settings.INDEX_BATCH_SIZE), progress=progress)
    merged = merge_candidates(history, catalog)
    # Queries below the k-gate that are variants of what is public (typos,
    # word order, leading words of gated queries and catalog phrases).
    variants = mine_variants(merged, stats=stats)
    merged.update(variants)
    created, updated, removed = store_candidates(merged)
    gazetteer_phrases = 0
    if include_catalog and app_settings.ADAPTER:
        # The understanding fallback tags queries with the catalog's words: keep
        # it in step with the catalog the suggestions were mined from.
        from .nlp.gazetteer import build_gazetteer

        gazetteer_phrases = len(build_gazetteer(save=True))
    spelling_words = 0
    if include_catalog and app_settings.ADAPTER:
        # Did-you-mean corrects from the catalog's and the gated history's words.
        from .spelling import build_dictionary

        spelling_words = len(build_dictionary(
            get_adapter().iter_documents(batch_size=app_settings.INDEX_BATCH_SIZE), stats))
    if publish:
        publish_suggestions()
    signals.suggestions_built.send(sender=build_suggestions)
    return BuildReport(history=len(history), catalog=len(catalog), created=created, updated=updated, removed=removed,
                       gazetteer_phrases=gazetteer_phrases, spelling_words=spelling_words)


def add_manual_suggestion(text: str, *, weight: float = 1.0, pinned_prefix: str = "") -> Suggestion:
    """Create or update a merchandiser's suggestion (approved)."""
    normalized = normalize_query(text)
    if not normalized:
        raise ValueError("A suggestion cannot be empty.")
    obj, _ = Suggestion.objects.update_or_create(
        text=normalized, defaults={"source": SuggestionSource.MANUAL, "weight": weight,
                                   "pinned_prefix": pinned_prefix, "status": SuggestionStatus.APPROVED})
    signals.suggestions_changed.send(sender=add_manual_suggestion)
    return obj


__all__ = [
    "BuildReport", "Entity", "count_degraded", "forget_recent_cookie", "metrics_page", "observed",
    "recent_from_cookie", "recent_from_history", "remember_recent", "write_recent_cookie", "HistoryEntry", "ImportReport", "ImportedSearch", "ProductResult",
    "RecallUnavailable", "SearchFilters", "SearchPage", "SuggestResult", "SuggestionItem", "TrendingItem",
    "Understanding", "add_manual_suggestion", "apply_understanding", "block_suggestions", "build_suggestions",
    "enqueue_product_change", "erase_history", "garbage_collect", "import_search_history", "index_products",
    "invalidate_cache", "list_history", "notify_suggestions_changed", "pin_suggestions", "promote",
    "publish_suggestions", "rebuild_index", "record_events", "remove_products", "request_actor", "retire", "reunderstand",
    "rollback", "save_label", "save_suggestion", "search", "set_suggestion_status", "suggest",
    "trending", "understand", "understand_pending", "unpin_suggestions",
    "add_synonym", "mine_synonyms", "set_synonym_status", "EmbedReport", "embed_products", "dense_status",
]


# -- search analytics (see suggestions/analytics.py) ---------------------------------------

from .analytics import OWN_WORDS as CHIP_SOURCE_OWN_WORDS  # noqa: E402,F401
from .analytics import AnalyticsReport, RollupReport  # noqa: E402,F401
from .analytics import report as analytics_report  # noqa: E402,F401
from .analytics import rollup as rollup_analytics  # noqa: E402,F401
from .moderation import block_text  # noqa: E402,F401

__all__ += ["AnalyticsReport", "CHIP_SOURCE_OWN_WORDS", "RollupReport", "analytics_report", "block_text",
            "rollup_analytics"]


# -- refinement chips (see suggestions/refinements.py) -----------------------------------

from .refinements import ChipStats, Refinement, chip_stats  # noqa: E402,F401


def _refinements(query: str, found: int, backend_alias: str) -> tuple:
    from .refinements import refinements_for

    return tuple(refinements_for(query, found=found, backend_alias=backend_alias))


__all__ += ["ChipStats", "Refinement", "chip_stats"]

# -- search ranker (see suggestions/search_ranking.py; its kind trains through retrain()) ---

from .search_ranking import refresh_click_stats as refresh_search_clicks  # noqa: E402,F401

__all__ += ["refresh_search_clicks"]

# -- generated refinements (see suggestions/generation.py; generating loads the model) ------

from .generation import (  # noqa: E402, F401
    GenerationReport,
    generate_refinements,
    generation_seeds,
    review_generated,
)

__all__ += ["GenerationReport", "generate_refinements", "generation_seeds", "review_generated"]
