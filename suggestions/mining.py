"""Building suggestion candidates from search history and from the catalog.

Contracts:
* A history query becomes a candidate only when at least
  ``SUGGESTIONS_MIN_DISTINCT_USERS`` distinct *identified* shoppers searched it,
  it holds nothing private (e-mail, phone, card number:
  :func:`~suggestions.text.looks_private`) and it is readable text (no
  unassigned, private-use or surrogate code points, at least
  ``SUGGESTIONS_MIN_SUGGESTION_CHARS`` letters and digits:
  :func:`~suggestions.text.is_suggestible`); see :func:`mine_history`.
  :func:`history_text_allowed` is that text filter, for every caller.
  Identified (``SearchEvent.identified``): signed-in users, returning anonymous
  shoppers, imported user ids; cookie-less requests count no one, so a script
  cannot vote a query public (:mod:`suggestions.history`).
  :func:`identified_shoppers` applies the same count to trending.
* Weights of history candidates are time-decayed search counts (half-life
  ``SUGGESTIONS_DECAY_HALF_LIFE_DAYS``) measured from the newest search in
  history, so an old log keeps its internal order without underflowing.
* A query that fails the gate may still be served when it is a *variant* of
  public text (:func:`variant_queries`): one edit away from a query that passed
  the gate or from a catalog phrase (typos of public text), the same words in
  another order, or its leading words. Its text then reveals nothing that is
  not already public; it still passes the privacy filter.
* Catalog candidates (product types of every product, brands, brand + type,
  type + attribute, model families: :mod:`suggestions.catalog_phrases`) give
  a shop with no history useful completions, each returning at least
  ``SUGGESTIONS_CATALOG_PHRASE_MIN_PRODUCTS`` products; their weights are
  small, so real searches outrank them once they exist.
* A build never changes a moderation decision: rejected and blocked rows stay
  so, manual and generated rows are left alone, and pinned rows are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from django.db import transaction
from django.db.models import Count, Max
from django.db.models.functions import TruncDate
from django.utils import timezone

from .adapter import ProductDocument
from .conf import app_settings
from .models import SearchEvent, Suggestion, SuggestionSource, SuggestionStatus
from .text import is_suggestible, looks_private

#: Scale of catalog weights: log(1 + products) * rule factor * scale. A type covering 1,000
#: products weighs about 0.7, below a query searched once this month.
CATALOG_WEIGHT_SCALE = 0.1
MAX_TEXT = 100


@dataclass
class Candidate:
    text: str
    source: str
    weight: float
    searches: int = 0
    distinct_users: int = 0
    provenance: dict = field(default_factory=dict)


def _decayed_counts(events, texts: Iterable[str], half_life: float) -> dict[str, float]:
    """Searches of each text, each weighted 0.5 ** (age / half-life), ages in
    days from the newest search of ``events``."""
    newest = events.aggregate(newest=Max("created_at"))["newest"]
    reference = timezone.localdate(newest)
    decayed: dict[str, float] = defaultdict(float)
    per_day = (events.filter(normalized_query__in=list(texts)).annotate(day=TruncDate("created_at"))
               .values("normalized_query", "day").annotate(n=Count("id")))
    for row in per_day:
        decayed[row["normalized_query"]] += row["n"] * 0.5 ** (max((reference - row["day"]).days, 0) / half_life)
    return decayed


def _counted_events():
    """The searches the k-gate counts: identified shoppers' only."""
    return SearchEvent.objects.filter(identified=True).exclude(normalized_query="").exclude(actor_hash="")


def query_stats() -> dict[str, dict]:
    """Distinct identified shoppers and their searches of every query they
    searched (one aggregate), shared by :func:`mine_history` and
    :func:`mine_variants` in a build."""
    rows = (_counted_events().values("normalized_query")
            .annotate(users=Count("actor_hash", distinct=True), searches=Count("id")))
    return {row["normalized_query"]: row for row in rows}


def identified_shoppers(texts: Iterable[str], *, since: date | None = None, batch: int = 500) -> dict[str, int]:
    """Distinct identified shoppers who searched each of ``texts`` (on or after
    the day ``since``, when given): the k-gate's count for a few queries.

    Returns:
        Text → count, for the texts searched by at least one.
    """
    events = _counted_events()
    if since is not None:
        events = events.filter(created_at__date__gte=since)
    wanted = sorted(set(texts))
    counts: dict[str, int] = {}
    for start in range(0, len(wanted), batch):
        rows = (events.filter(normalized_query__in=wanted[start:start + batch]).values("normalized_query")
                .annotate(users=Count("actor_hash", distinct=True)))
        counts.update({row["normalized_query"]: row["users"] for row in rows})
    return counts


def history_text_allowed(text: str) -> bool:
    """Whether a searched query's text may become a suggestion (the gate on its
    popularity aside): at most ``MAX_TEXT`` characters, readable
    (:func:`~suggestions.text.is_suggestible`) and nothing private
    (:func:`~suggestions.text.looks_private`)."""
    return (len(text) <= MAX_TEXT and is_suggestible(text, min_chars=app_settings.MIN_SUGGESTION_CHARS)
            and not looks_private(text))


def _history_candidates(rows: dict[str, dict], rule: str, half_life: float) -> dict[str, Candidate]:
    """Candidates of the given queries (filtered by :func:`history_text_allowed`),
    weighted by their time-decayed searches."""
    rows = {text: row for text, row in rows.items() if history_text_allowed(text)}
    if not rows:
        return {}
    decayed = _decayed_counts(SearchEvent.objects.exclude(normalized_query=""), rows, half_life)
    return {text: Candidate(text=text, source=SuggestionSource.HISTORY, weight=round(decayed[text], 6),
                            searches=row["searches"], distinct_users=row["users"],
                            provenance={"rule": rule, "distinct_users": row["users"], "searches": row["searches"]})
            for text, row in rows.items()}


def mine_history(*, min_users: int | None = None, half_life_days: float | None = None,
                 stats: dict[str, dict] | None = None) -> dict[str, Candidate]:
    """Candidates from search history that pass the k-anonymity and privacy gates.

    Args:
        min_users: The gate (default ``SUGGESTIONS_MIN_DISTINCT_USERS``).
        half_life_days: Decay (default ``SUGGESTIONS_DECAY_HALF_LIFE_DAYS``).
        stats: :func:`query_stats`, when the caller already has it.
    """
    k = app_settings.MIN_DISTINCT_USERS if min_users is None else min_users
    half_life = app_settings.DECAY_HALF_LIFE_DAYS if half_life_days is None else half_life_days
    stats = query_stats() if stats is None else stats
    return _history_candidates({q: r for q, r in stats.items() if r["users"] >= k}, "history", half_life)


def variant_queries(public: Iterable[str], searched: Iterable[str], *, min_edit_length: int = 5) -> set[str]:
    """Searched queries that are variants of public text (see the module contract).

    Args:
        public: Texts that may be shown to anyone (gated queries, catalog phrases).
        searched: Other searched queries.
        min_edit_length: Shorter queries must match without an edit ("xbo"
            one edit from "xbox" says little).

    Returns:
        The searched queries that are one edit from a public text, a word-order
        permutation of one, or a leading-words phrase of one.
    """
    from rapidfuzz.distance import Levenshtein

    public = set(public)
    by_head: dict[str, list[str]] = defaultdict(list)
    for text in public:
        by_head[text[:1]].append(text)
    orders = {" ".join(sorted(text.split())) for text in public}
    heads = {" ".join(words[:n]) for words in (t.split() for t in public) for n in range(1, len(words))}
    out = set()
    for query in searched:
        if query in public:
            continue
        if query in heads or " ".join(sorted(query.split())) in orders:
            out.add(query)
            continue
        if len(query) < min_edit_length:
            continue
        # Typos keep the first letter far more often than not; comparing within
        # the same first letter keeps this linear in practice.
        for text in by_head[query[:1]]:
            if abs(len(text) - len(query)) <= 1 and Levenshtein.distance(text, query, score_cutoff=1) <= 1:
                out.add(query)
                break
    return out


def mine_variants(public: dict[str, Candidate], *, stats: dict[str, dict] | None = None
                  ) -> dict[str, Candidate]:
    """History queries that failed the k-gate but are variants of ``public``
    candidates (gated history and catalog), weighted like history.

    Args:
        public: The build's gated and catalog candidates.
        stats: :func:`query_stats`, when the caller already has it.
    """
    stats = query_stats() if stats is None else stats
    others = [q for q in stats if q not in public]
    variants = variant_queries(public, others)
    return _history_candidates({q: stats[q] for q in variants}, "variant", app_settings.DECAY_HALF_LIFE_DAYS)


def mine_catalog(documents: Iterable[ProductDocument], *, min_products: int | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, Candidate]:
    """Cold-start candidates describing the catalog: product types of every
    product (derived where a product has none), brands, brand + type, type +
    attribute, model families (:func:`~suggestions.catalog_phrases.mine_phrases`).

    Each describes at least ``min_products`` products (default
    ``SUGGESTIONS_CATALOG_PHRASE_MIN_PRODUCTS``) and its words occur together
    in at least that many documents, so searching it returns products.
    """
    from .catalog_phrases import mine_phrases

    threshold = app_settings.CATALOG_PHRASE_MIN_PRODUCTS if min_products is None else min_products
    candidates: dict[str, Candidate] = {}
    for text, phrase in mine_phrases(documents, min_products=threshold, progress=progress,
                                     product_names=app_settings.CATALOG_PRODUCT_NAMES).items():
        if len(text) > MAX_TEXT:
            continue
        weight = round(phrase.score * CATALOG_WEIGHT_SCALE, 6)
        candidates[text] = Candidate(text=text, source=SuggestionSource.CATALOG, weight=weight,
                                     provenance={"rule": phrase.rule, "products": phrase.products,
                                                 "matching": phrase.matching, "score": round(float(phrase.score), 6)})
    return candidates


@dataclass(frozen=True)
class BuildReport:
    history: int
    catalog: int
    created: int
    updated: int
    removed: int
    gazetteer_phrases: int = 0
    spelling_words: int = 0


def merge_candidates(history: dict[str, Candidate], catalog: dict[str, Candidate]) -> dict[str, Candidate]:
    """History wins on overlap; its weight adds the catalog's."""
    merged = dict(catalog)
    for text, cand in history.items():
        if text in merged:
            cand.weight = round(cand.weight + merged[text].weight, 6)
            cand.provenance = {**cand.provenance, "catalog": merged[text].provenance}
        merged[text] = cand
    return merged


def store_candidates(candidates: dict[str, Candidate], *, batch_size: int = 1000) -> tuple[int, int, int]:
    """Upsert candidates into :class:`Suggestion` and drop stale mined rows.

    Returns ``(created, updated, removed)``.
    """
    untouchable = set(Suggestion.objects.filter(source__in=[SuggestionSource.MANUAL, SuggestionSource.GENERATED])
                      .values_list("text", flat=True))
    existing = set(Suggestion.objects.values_list("text", flat=True))
    rows = [
        Suggestion(text=c.text, source=c.source, weight=c.weight, searches=c.searches,
                   distinct_users=c.distinct_users, provenance=c.provenance,
                   status=SuggestionStatus.APPROVED)
        for c in candidates.values() if c.text not in untouchable
    ]
    now = timezone.now()
    for row in rows:
        row.updated_at = now
    with transaction.atomic():
        for start in range(0, len(rows), batch_size):
            Suggestion.objects.bulk_create(
                rows[start:start + batch_size], update_conflicts=True, unique_fields=["text"],
                # status is deliberately absent: a build never overrides moderation.
                update_fields=["source", "weight", "searches", "distinct_users", "provenance", "updated_at"],
            )
        keep = {r.text for r in rows}
        stale_ids = [pk for pk, text in Suggestion.objects.filter(
            source__in=[SuggestionSource.HISTORY, SuggestionSource.CATALOG],
            status=SuggestionStatus.APPROVED, pinned_prefix="").values_list("pk", "text")
            if text not in keep]
        removed = 0
        for start in range(0, len(stale_ids), batch_size):
            removed += Suggestion.objects.filter(pk__in=stale_ids[start:start + batch_size]).delete()[0]
    created = sum(1 for r in rows if r.text not in existing)
    return created, len(rows) - created, removed
