"""The contract every recall backend fulfils.

A backend serves two things:

* **products**: full-text search with filters over :class:`ProductDocument` s,
  kept in a versioned index behind an alias so that a rebuild never leaves
  readers with a half-built index;
* **suggestions**: prefix completion over the served suggestion texts with
  their weights, with typo tolerance;
* **vectors** (backends with ``supports_vectors``): products' embeddings by
  encoder name, and nearest-neighbour search over them with the same filters
  (dense recall, :mod:`suggestions.dense`).

Backends are configured like Django's ``CACHES`` (see
:mod:`suggestions.recall`) and built once per process. Every method may raise
:class:`RecallUnavailable` when the engine cannot be reached; callers degrade
instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adapter import ProductDocument


class RecallUnavailable(Exception):
    """The engine cannot be reached or refused the request."""


@dataclass(frozen=True)
class SearchFilters:
    """Filters of a product search; empty values mean "no filter"."""

    brands: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def __bool__(self) -> bool:
        return bool(self.brands or self.product_types or self.min_price is not None
                    or self.max_price is not None)


def vector_slug(model: str) -> str:
    """A file- and field-name-safe form of an encoder name (``e5-small-q4`` → ``e5_small_q4``)."""
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")
    return slug or "default"


def has_searchable_text(query: str) -> bool:
    """True when ``query`` has at least one letter or digit: text made only of
    punctuation, symbols and spaces gives no token to any analyzer."""
    return any(ch.isalnum() for ch in query)


@dataclass(frozen=True)
class SearchBoosts:
    """Soft preferences from query understanding: matching documents get
    ``weight`` added to their score; nothing is filtered out."""

    brands: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    weight: float = 2.0

    def __bool__(self) -> bool:
        return bool(self.brands or self.product_types)


#: Most alternative texts a query expands to through synonyms.
MAX_QUERY_VARIANTS = 8


def query_variants(query: str, synonyms: Mapping[str, Sequence[str]] | None,
                   limit: int = MAX_QUERY_VARIANTS) -> list[str]:
    """``query`` followed by its rewrites through ``synonyms`` (term →
    alternatives; terms and alternatives are normalised words or phrases):
    every occurrence of a term, as whole words, replaced by each alternative,
    terms combined, at most ``limit`` texts in all. The backends search the
    union of the variants (see :meth:`BaseRecallBackend.search_products`)."""
    variants = [query]
    if not synonyms or not query.strip():
        return variants
    lowered = " ".join(query.lower().split())
    for term in sorted(synonyms, key=lambda t: (-len(t), t)):
        alternatives = [a for a in synonyms[term] if a and a != term]
        pattern = re.compile(r"(?<![^\W_])" + re.escape(term) + r"(?![^\W_])")
        if not alternatives or not pattern.search(lowered):
            continue
        for base in list(variants):
            for alternative in alternatives:
                rewritten = pattern.sub(alternative, " ".join(base.lower().split()))
                if rewritten not in variants and len(variants) < limit:
                    variants.append(rewritten)
    return variants


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    document: ProductDocument


@dataclass(frozen=True)
class SearchResult:
    """One page of results. ``brand_counts`` counts every match by brand (for facets)."""

    hits: list[SearchHit]
    total: int
    brand_counts: dict[str, int] = field(default_factory=dict)
    #: Set by hybrid fusion (:func:`suggestions.dense.fuse`), never by a backend:
    #: per hit id, its 0-based BM25 rank, kNN rank (None: not in that list) and
    #: query-product cosine similarity (None: not among the nearest), for the
    #: search ranker's fusion features.
    fusion: dict[str, tuple[int | None, int | None, float | None]] | None = None


@dataclass(frozen=True)
class SuggestionEntry:
    """A served suggestion as the backend stores it."""

    text: str
    weight: float
    source: str = ""


@dataclass(frozen=True)
class SuggestionHit:
    text: str
    weight: float
    source: str = ""
    fuzzy: bool = False


ProgressCallback = Callable[[int], None]


class BaseRecallBackend:
    """Base class. Subclasses implement every method that raises NotImplementedError.

    Capability flags tell callers what the engine can do.
    """

    #: The engine answers ``fuzzy=True`` suggest calls (one edit).
    supports_fuzzy: bool = True
    #: The engine stores dense vectors for kNN recall.
    supports_vectors: bool = False
    #: The engine is an external service (may be down; network timeouts apply).
    is_remote: bool = False
    #: The engine indexes pinyin keys of Chinese suggestions and completes
    #: Latin input on them (:mod:`suggestions.nlp.pinyin`, ``SUGGESTIONS_PINYIN``).
    supports_pinyin: bool = False

    def __init__(self, alias: str, options: dict[str, Any]):
        self.alias = alias
        self.options = dict(options)

    # -- products -----------------------------------------------------------
    def rebuild_products(self, documents: Iterable[ProductDocument], progress: ProgressCallback | None = None) -> str:
        """Index every document into a new index version, then point the alias at
        it and drop older versions. Readers see the old index until the swap.
        Calls ``progress(n)`` after each batch of ``n`` documents. Returns the
        new version's name."""
        raise NotImplementedError

    def index_products(self, documents: Iterable[ProductDocument]) -> None:
        """Add or replace documents (by id) in the live index; visible on return."""
        raise NotImplementedError

    def delete_products(self, ids: Iterable[str]) -> None:
        """Remove documents by id from the live index; missing ids are ignored."""
        raise NotImplementedError

    def search_products(self, query: str, filters: SearchFilters | None = None, offset: int = 0, limit: int = 20,
                        boosts: SearchBoosts | None = None,
                        synonyms: Mapping[str, Sequence[str]] | None = None) -> SearchResult:
        """BM25 search over title (boosted), brand, product type, model number and
        description; all query words should match for top results. An empty
        (or blank) query lists every product, with filters the filtered ones.
        A query with text but no searchable token (only punctuation or symbols,
        see :func:`has_searchable_text`) matches nothing without filters, and
        with filters is a filter-only search. ``boosts`` add a constant
        to the score of documents of the given brands / product types
        (case-insensitive) without filtering. ``synonyms`` (term →
        alternatives, from approved synonyms) widen the query to the union of
        its :func:`query_variants`: a document matching any variant matches,
        and one matching every word of a variant ranks as high as one
        matching every word of the query."""
        raise NotImplementedError

    def count_products(self) -> int:
        """Documents in the live index."""
        raise NotImplementedError

    # -- suggestions --------------------------------------------------------
    def replace_suggestions(self, entries: Iterable[SuggestionEntry]) -> None:
        """Atomically replace the whole set of served suggestions."""
        raise NotImplementedError

    def suggest(self, prefix: str, limit: int = 10, fuzzy: bool = False) -> list[SuggestionHit]:
        """Suggestions whose normalised text starts with ``prefix``, highest weight
        first. With ``fuzzy=True``, also those starting with a string one edit
        (insert, delete, substitute, transpose) away from ``prefix``, marked
        ``fuzzy=True`` and ranked after exact-prefix matches.

        Backends with ``supports_pinyin`` (while ``SUGGESTIONS_PINYIN`` is not
        ``"off"``) also complete the typed text converted by
        :func:`suggestions.nlp.pinyin.typed_key` on the suggestions' pinyin
        keys, in the order of :func:`pinyin_order`, before one-edit matches."""
        raise NotImplementedError

    # -- vectors (dense recall; only with ``supports_vectors``) ---------------
    def store_vectors(self, model: str, ids: Sequence[str], vectors: Any, *, replace: bool = False) -> int:
        """Store unit vectors (rows of ``vectors``, one per id) of the products
        ``ids`` under the encoder name ``model``; ids not in the live index are
        skipped. ``replace=True`` first drops every stored vector of ``model``.
        ``rebuild_products`` and ``index_products`` may drop the vectors of the
        documents they write (callers re-embed them); ``delete_products`` drops
        them. Returns how many were stored."""
        raise NotImplementedError

    def search_vectors(self, model: str, vector: Any, filters: SearchFilters | None = None,
                       limit: int = 50) -> SearchResult:
        """The ``limit`` products nearest to ``vector`` (cosine similarity as the
        hit's score), best first, among those matching ``filters``; ``total`` is
        the number of hits. Empty when nothing of ``model`` is stored."""
        raise NotImplementedError

    def count_vectors(self, model: str) -> int:
        """Products with a stored vector of ``model`` in the live index."""
        raise NotImplementedError

    def vector_ids(self, model: str) -> set[str]:
        """Ids of the products with a stored vector of ``model``."""
        raise NotImplementedError

    # -- health -------------------------------------------------------------
    def ping(self) -> bool:
        """True when the engine answers."""
        raise NotImplementedError

    def close(self) -> None:
        """Release clients and file handles."""


def pinyin_order(limit: int, text_prefix: list[SuggestionHit], full_equal: list[SuggestionHit],
                 full_prefix: list[SuggestionHit], initials_equal: list[SuggestionHit],
                 initials_prefix: list[SuggestionHit]) -> list[SuggestionHit]:
    """The order of exact-prefix and pinyin hits, shared by every backend:

    1. suggestions whose full pinyin is the typed key itself (the shopper
       spelled out the whole query: "paoxie" → 跑鞋 before 跑鞋男), by weight;
    2. text-prefix and full-pinyin-prefix matches together, by weight;
    3. suggestions whose initials are the typed key ("px" → 跑鞋), by weight;
    4. initials-prefix matches, by weight.

    Each tier is ordered highest weight first, equal weights alphabetically; a
    text appears once, in its first tier. Without pinyin hits this is
    ``text_prefix`` unchanged.
    """
    def by_weight(hits: list[SuggestionHit]) -> list[SuggestionHit]:
        return sorted(hits, key=lambda hit: (-hit.weight, hit.text))

    out: list[SuggestionHit] = []
    seen: set[str] = set()
    for tier in (by_weight(full_equal), by_weight(text_prefix + full_prefix), by_weight(initials_equal),
                 by_weight(initials_prefix)):
        for hit in tier:
            if hit.text not in seen:
                seen.add(hit.text)
                out.append(hit)
                if len(out) >= limit:
                    return out
    return out
