"""Refinements of a submitted search: the chips above the results
("running shoes" → "running shoes men", "nike running shoes") and, for a
search that finds nothing, rewrites that find products ("No results for …;
try …").

Contracts:

* Only what a shopper may see is offered: approved suggestions (generated
  ones approved by a merchandiser, history that passed the k-anonymity gate,
  catalog phrases, manual ones), the spelling correction of the query (made of
  the catalog's and the gated history's words) and the shopper's own query
  less one word. Every text passes the blocked terms when it is served, and
  approval is read from the database (never from a possibly stale engine).
* A *refinement* (``kind="refinement"``, offered when the search found
  products) is an approved generated suggestion whose provenance names the
  query as its ``seed_query``, or an approved suggestion holding every word
  of the query plus at least one more. Best first: the generated ones made
  and reviewed for this query (by their generator score), then the others by
  weight (the popularity the typeahead orders by).
* A *rewrite* (``kind="rewrite"``, offered when the search found nothing):
  the approved generated suggestions for the query, its spelling correction,
  approved one-edit completions of it and of its correction, and the query
  less one word; each one is offered only if its own search finds at least
  one product.
* Answers are cached per cache version, like suggest answers
  (:mod:`suggestions.serving`): in process memory and in the shared cache, so
  a moderation change (which gives the cache a new version) shows in the next
  answer, and a repeated search costs no query. Rewrites made of the
  shopper's own words (the query less a word, its spelling correction) are
  kept in process memory only, never in the shared cache. Candidates come from one
  database query (the generated ones for the query) and an index by word of
  every approved suggestion, built once per process and cache version after
  its first few answers (which scan the texts instead; see
  :func:`_candidates`); a rewrite costs one count per candidate, only for
  searches with no result, once per version.
* A chip chosen by a shopper starts a search with ``origin="refinement"``.
  That search is what the suggestion ranker learns from (the searched text is
  the positive of its prefixes, :mod:`suggestions.ml.suggestion_ranker`), so
  chip click-through trains the ranker like typeahead choices do. Chip
  impressions and clicks are reported through ``events/`` as
  ``refinement_impression`` and ``refinement_click`` and stored as suggestion
  impressions and clicks with ``surface="refinements"`` (the typeahead's
  analytics count only ``surface="typeahead"``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .conf import app_settings
from .models import (
    EventSurface,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
    SuggestionSource,
    SuggestionStatus,
)
from .recall import RecallUnavailable, get_backend
from .text import normalize_query

logger = logging.getLogger(__name__)

#: ``kind`` of a narrower search offered with results.
REFINEMENT = "refinement"
#: ``kind`` of another search offered when the query found nothing.
REWRITE = "rewrite"
#: ``source`` of the spelling correction offered as a rewrite.
SOURCE_SPELLING = "spelling"
#: ``source`` of the query less one word offered as a rewrite.
SOURCE_QUERY = "query"

#: Candidates read from the database per query: enough for the limit after
#: the word check and the blocked terms.
CANDIDATES_PER_SLOT = 6


@dataclass(frozen=True)
class Refinement:
    """One refinement or rewrite of a search.

    Attributes:
        text: The normalised text to search.
        source: The suggestion's source (``generated``, ``history``,
            ``catalog``, ``manual``), ``spelling`` or ``query``.
        kind: ``refinement`` or ``rewrite``.
    """

    text: str
    source: str
    kind: str


def refinements_for(query: str, *, found: int, limit: int | None = None,
                    backend_alias: str = "default") -> list[Refinement]:
    """Refinements of a search (when ``found`` > 0), else rewrites. See the module contract.

    Args:
        query: The normalised query the results are for (the spelling
            correction when did-you-mean replaced the query).
        found: How many products the search found.
        limit: At most this many (default ``SUGGESTIONS_REFINEMENTS_LIMIT``).
        backend_alias: Recall backend that counts the rewrites' products.

    Returns:
        Best first; empty when refinements are off or nothing qualifies.
        Never raises because the cache, the backend or the database is down.
    """
    from . import serving

    normalized = normalize_query(query)
    limit = app_settings.REFINEMENTS_LIMIT if limit is None else limit
    if not normalized or limit <= 0 or not app_settings.REFINEMENTS:
        return []
    zero = found == 0
    key = version = None
    try:
        version = serving._current_version()
        digest = hashlib.blake2b(normalized.encode(), digest_size=16).hexdigest()
        key = f"shop_suggestions:{version}:refinements:{backend_alias}:{limit}:{int(zero)}:{digest}"
        rows = serving._local.get_answer(key)
        if rows is None:
            rows = serving._cache().get(key)
            if rows is not None:
                serving._local.put_answer(key, rows)
    except Exception:  # noqa: BLE001 - a cache outage must not fail the search
        logger.warning("suggestions: cache unavailable for refinements", exc_info=True)
        rows, key = None, None
    if rows is None:
        try:
            rows, complete = _compute(normalized, limit, zero, backend_alias, version)
        except Exception:  # noqa: BLE001 - refinements are an enhancement, never a failure
            logger.warning("suggestions: refinements failed for a search", exc_info=True)
            return []
        if key is not None and complete:
            serving._local.put_answer(key, rows)
            # Rewrites made of the shopper's own words (the query less a word, its
            # spelling correction) stay in this process's memo, out of the shared cache.
            if not any(row[1] in (SOURCE_QUERY, SOURCE_SPELLING) for row in rows):
                try:
                    serving._cache().set(key, rows, app_settings.CACHE_TIMEOUT)
                except Exception:  # noqa: BLE001
                    pass
    blocked = serving.blocked_matcher(version)
    return [Refinement(*row) for row in rows if not blocked.search(row[0])][:limit]


def _words(text: str) -> list[str]:
    return text.split()


#: Chinese (and other Han) text is written without spaces between words.
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def _refines(text: str, words: list[str]) -> bool:
    """Whether ``text`` holds every word of the query and at least one more.
    A word in Han characters may be part of a longer one ("跑鞋" in "跑鞋男")."""
    own = _words(text)
    if not all(w in own or (_HAN.search(w) and w in text) for w in words):
        return False
    return len(own) > len(words) or (bool(_HAN.search(text)) and len(text) > len(" ".join(words)))


@dataclass(frozen=True)
class _WordIndex:
    """Every approved suggestion, best first (weight, then text), and for each
    word the positions of the suggestions holding it."""

    rows: list[tuple[str, str]]  # (text, source)
    words: list[frozenset[str]]
    lengths: list[int]
    postings: dict[str, list[int]]


_index_lock = threading.Lock()
_index: dict = {"version": None, "index": None, "scanned_version": None, "scans": 0}
#: Answers of a cache version computed by scanning before its word index is
#: built. Building costs about ten to fifteen scans (bench/refinements), so a
#: version that needs few answers (one soon replaced by the next moderation
#: change) never pays for it, and a busy one pays about twice the least it could.
SCANS_BEFORE_INDEX = 10


def _word_index(version: str | None, *, build: bool = False) -> _WordIndex | None:
    """The word index of the approved suggestions for cache ``version`` (every
    moderation change and publish gives a new one), built once the version has
    computed :data:`SCANS_BEFORE_INDEX` answers by scanning (at once with
    ``build``); None until then, and without a version (the cache is down)."""
    if version is None:
        return None
    with _index_lock:
        if _index["version"] == version:
            return _index["index"]
        if _index["scanned_version"] != version:
            _index.update(scanned_version=version, scans=0)
        _index["scans"] += 1
        if not build and _index["scans"] <= SCANS_BEFORE_INDEX:
            return None
        rows: list[tuple[str, str]] = []
        words: list[frozenset[str]] = []
        lengths: list[int] = []
        postings: dict[str, list[int]] = {}
        approved = (Suggestion.objects.filter(status=SuggestionStatus.APPROVED).order_by("-weight", "text")
                    .values_list("text", "source").iterator(chunk_size=5000))
        for position, (text, source) in enumerate(approved):
            own = _words(text)
            rows.append((text, source))
            words.append(frozenset(own))
            lengths.append(len(own))
            for word in set(own):
                postings.setdefault(word, []).append(position)
        index = _WordIndex(rows, words, lengths, postings)
        _index.update(version=version, index=index)
        return index


def reset_word_index() -> None:
    """Forget the word index (tests; the next answer builds it again)."""
    with _index_lock:
        _index.update(version=None, index=None, scanned_version=None, scans=0)


def _candidates(normalized: str, want: int, *, mined: bool = True,
                version: str | None = None) -> list[tuple[str, str, bool]]:
    """Approved suggestions generated for the query (by the generator's score),
    then approved suggestions holding all its words and more (by weight):
    ``(text, source, generated for the query)``. The generated ones are one
    query through the index on ``source``; the others come from the word index
    of ``version`` (:func:`_word_index`), walking the rarest word's list, or,
    without a version or for text in Han characters (words without spaces),
    from one scan of the texts (``LIKE`` per word)."""
    # Filtered on the source alone (its index), the status checked here: given
    # both, planners without statistics scan every approved row instead.
    seeded = (Suggestion.objects.filter(source=SuggestionSource.GENERATED, provenance__seed_query=normalized)
              .exclude(text=normalized).order_by().values_list("text", "source", "status", "provenance"))
    out = [(text, source, True, (prov or {}).get("score")) for text, source, status, prov in seeded
           if status == SuggestionStatus.APPROVED]
    out.sort(key=lambda r: -(float(r[3]) if isinstance(r[3], int | float) else 0.0))
    generated = [(t, s, True) for t, s, _seeded, _score in out[:want]]
    if not mined:
        return generated
    query_words = _words(normalized)
    index = None if _HAN.search(normalized) else _word_index(version)
    if index is not None:
        wanted = frozenset(query_words)
        rarest = min((index.postings.get(w, []) for w in wanted), key=len)
        found: list[tuple[str, str, bool]] = []
        for position in rarest:
            if index.lengths[position] > len(query_words) and wanted <= index.words[position]:
                text, source = index.rows[position]
                found.append((text, source, False))
                if len(found) == want:
                    break
        return generated + found
    every_word = Q()
    for word in dict.fromkeys(query_words):
        every_word &= Q(text__contains=word)
    # The status is checked here too: through its index (nearly every row is
    # approved) the scan costs three times a plain one.
    rows = (Suggestion.objects.filter(every_word).exclude(text=normalized)
            .order_by("-weight", "text").values_list("text", "source", "status")[: want * 2])
    return generated + [(t, s, False) for t, s, status in rows if status == SuggestionStatus.APPROVED][:want]


def _compute(normalized: str, limit: int, zero: bool, backend_alias: str,
             version: str | None = None) -> tuple[list[tuple[str, str, str]], bool]:
    """``([(text, source, kind)], complete)``; not complete (so not cached)
    when the backend was down for a rewrite's count."""
    words = _words(normalized)
    # A query that finds nothing gets rewrites, never texts holding all its words.
    candidates = _candidates(normalized, limit * CANDIDATES_PER_SLOT, mined=not zero, version=version)
    if not zero:
        rows = [(text, source, REFINEMENT) for text, source, for_query in candidates
                if for_query or _refines(text, words)]
        return _unique(rows)[: limit * 2], True
    return _rewrites(normalized, words, candidates, limit, backend_alias)


def _rewrites(normalized: str, words: list[str], candidates, limit: int,
              backend_alias: str) -> tuple[list[tuple[str, str, str]], bool]:
    from . import spelling

    proposed: list[tuple[str, str]] = [(text, source) for text, source, for_query in candidates if for_query]
    correction = None
    try:
        correction = spelling.correct(normalized)
    except Exception:  # noqa: BLE001 - correction is an enhancement
        logger.warning("suggestions: spelling correction failed for a rewrite", exc_info=True)
    corrected = normalize_query(correction.text) if correction is not None else ""
    if corrected and corrected != normalized:
        proposed.append((corrected, SOURCE_SPELLING))
    try:
        backend = get_backend(backend_alias)
        close = []
        for text in dict.fromkeys(t for t in (normalized, corrected) if t):
            close += [h.text for h in backend.suggest(text, limit=limit, fuzzy=True)]
        # The engine may lag behind moderation: approval is read now.
        approved = dict(Suggestion.objects.filter(status=SuggestionStatus.APPROVED, text__in=set(close))
                        .values_list("text", "source"))
        proposed += [(t, approved[t]) for t in close if t in approved]
        if len(words) > 1:
            proposed += [(" ".join(words[:i] + words[i + 1:]), SOURCE_QUERY) for i in range(len(words))]
        rows: list[tuple[str, str, str]] = []
        for text, source in dict.fromkeys((t, s) for t, s in proposed if t != normalized):
            if any(r[0] == text for r in rows):
                continue
            if backend.search_products(text, limit=0).total > 0:
                rows.append((text, source, REWRITE))
                if len(rows) == limit * 2:
                    break
    except RecallUnavailable:
        logger.warning("suggestions: recall backend %r unavailable, no rewrites", backend_alias)
        return [], False
    return rows, True


def _unique(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


# -- events (receivers of refinements_shown / refinement_clicked) -------------------------


def record_impression(*, request_id: str, query: str, refinements: list[str], user=None,
                      session_key: str | None = None, **_: object) -> None:
    """Store the chips shown with a search answer as a suggestion impression
    (``surface="refinements"``, ``prefix``: the searched query)."""
    from .history import _user_or_none, actor_hash, store_event

    store_event(SuggestionImpression(
        request_id=request_id, prefix=normalize_query(query)[:255],
        suggestions=[normalize_query(s)[:255] for s in refinements],
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user), surface=EventSurface.REFINEMENTS,
    ))


def record_click(*, request_id: str, query: str, refinement: str, position: int, user=None,
                 session_key: str | None = None, **_: object) -> None:
    """Store a chosen chip as a suggestion click (``surface="refinements"``)
    and count it as the text's choice from suggestions of the day."""
    from .history import _user_or_none, actor_hash, count_daily, store_event

    text = normalize_query(refinement)[:255]
    store_event(SuggestionClick(
        request_id=request_id, prefix=normalize_query(query)[:255], suggestion=text, position=position,
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user), surface=EventSurface.REFINEMENTS,
    ))
    count_daily(timezone.localdate(), text, suggestion_clicks=1)


@dataclass(frozen=True)
class ChipStats:
    """Chip impressions and clicks of one text over a window."""

    text: str
    shown: int
    clicked: int

    @property
    def click_through(self) -> float | None:
        return self.clicked / self.shown if self.shown else None


def chip_stats(*, days: int = 30, texts: list[str] | None = None) -> dict[str, ChipStats]:
    """Times each text was shown as a chip and chosen, over the last ``days`` days."""
    since = timezone.now() - timedelta(days=days)
    shown: dict[str, int] = {}
    for listed in (SuggestionImpression.objects.filter(surface=EventSurface.REFINEMENTS, created_at__gte=since)
                   .values_list("suggestions", flat=True).iterator()):
        for text in set(listed):
            shown[text] = shown.get(text, 0) + 1
    clicked: dict[str, int] = {}
    for text in (SuggestionClick.objects.filter(surface=EventSurface.REFINEMENTS, created_at__gte=since)
                 .values_list("suggestion", flat=True).iterator()):
        clicked[text] = clicked.get(text, 0) + 1
    wanted = set(shown) | set(clicked) if texts is None else set(texts)
    return {t: ChipStats(t, shown.get(t, 0), clicked.get(t, 0)) for t in sorted(wanted)}
