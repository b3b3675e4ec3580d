"""Synonyms: mined from co-clicks, approved by merchandisers, applied to searches.

Contracts:
* **Mining** (:func:`mine_synonyms`, on the worker). A query takes part only
  when it passes the k-anonymity gate of mining (at least
  ``SUGGESTIONS_MIN_DISTINCT_USERS`` distinct identified shoppers searched it,
  and :func:`~suggestions.mining.history_text_allowed`) and at least
  ``SUGGESTIONS_SYNONYM_MIN_CLICKERS`` distinct shoppers clicked a product
  after it. Two such queries are proposed as a pair when the sets of products
  clicked after them overlap by a Jaccard index of at least
  ``SUGGESTIONS_SYNONYM_MIN_JACCARD``, once their shared words are set aside
  ("laptop bag" / "notebook bag" → laptop ↔ notebook); pairs that are
  spellings of each other (at most two edits: plurals, typos) or where one side
  is empty are left out. Pairs land as ``pending`` with their evidence; a
  mining run never changes a decision (approved or rejected pairs keep their
  status, only their evidence is refreshed); pending pairs it no longer finds
  are dropped.
* **Embeddings.** Pairs proposed from query embeddings (``mined_embedding``)
  would come from the dense-recall embedder on the worker and go through
  :func:`store_pairs` the same way; that miner is not written yet.
* **Privacy.** A pair holds only gated query text, so it holds no shopper's
  own words and is kept when a shopper's history is erased.
* **Serving.** :func:`approved_synonyms` is the approved pairs as a symmetric
  term → alternatives map, kept per process for
  ``SUGGESTIONS_SYNONYM_CACHE_TIMEOUT`` seconds and re-read at once when the
  shared cache's version key changes (approving or rejecting bumps it).
  :func:`synonyms_for` picks the entries whose term occurs in a query, for the
  recall backends' ``synonyms`` argument (see
  :func:`suggestions.recall.base.query_variants`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

from django.core.cache import caches
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from .conf import app_settings
from .models import ProductClick, Synonym, SynonymSource, SynonymStatus
from .text import normalize_query

logger = logging.getLogger(__name__)

VERSION_KEY = "suggestions:synonyms:version"
#: Most words on either side of a mined pair.
MAX_TERM_WORDS = 2


# -- mining -----------------------------------------------------------------------------


def _clicked_products(queries: set[str]) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Products clicked after each query, and how many distinct shoppers clicked."""
    products: dict[str, set[str]] = defaultdict(set)
    rows = (ProductClick.objects.filter(query__in=sorted(queries)).exclude(actor_hash="")
            .values_list("query", "content_type_id", "object_id").distinct())
    for query, ct, object_id in rows.iterator():
        products[query].add(f"{ct}:{object_id}")
    clickers = dict(ProductClick.objects.filter(query__in=sorted(queries)).exclude(actor_hash="")
                    .values("query").annotate(n=Count("actor_hash", distinct=True)).values_list("query", "n"))
    return dict(products), clickers


def _word_key(word: str) -> str:
    # Singular and plural share a word ("bag" in "laptop bags" and "notebook bag").
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def split_pair(a: str, b: str) -> tuple[str, str] | None:
    """The differing words of two queries once their shared words (in the same
    order) are set aside, or None when that leaves no usable pair."""
    wa, wb = a.split(), b.split()
    shared = {_word_key(w) for w in wa} & {_word_key(w) for w in wb}
    rest_a = [w for w in wa if _word_key(w) not in shared]
    rest_b = [w for w in wb if _word_key(w) not in shared]
    if not rest_a or not rest_b or len(rest_a) > MAX_TERM_WORDS or len(rest_b) > MAX_TERM_WORDS:
        return None
    if [_word_key(w) for w in wa if _word_key(w) in shared] != [_word_key(w) for w in wb if _word_key(w) in shared]:
        return None
    from rapidfuzz.distance import Levenshtein

    ta, tb = " ".join(rest_a), " ".join(rest_b)
    if Levenshtein.distance(ta, tb, score_cutoff=2) <= 2:
        return None  # a plural or a typo: spelling's business, not a synonym
    return tuple(sorted((ta, tb)))  # type: ignore[return-value]


def mine_coclick_pairs(*, progress: Callable[[int], None] | None = None) -> dict[tuple[str, str], dict]:
    """Candidate pairs from co-clicks (see the module contract), with evidence.

    Returns:
        (term, synonym) → evidence, the best-supported query pair per term pair.
    """
    from .mining import history_text_allowed, query_stats

    k = app_settings.MIN_DISTINCT_USERS
    gated = {q for q, row in query_stats().items() if row["users"] >= k and history_text_allowed(q)}
    products, clickers = _clicked_products(gated)
    min_clickers = app_settings.SYNONYM_MIN_CLICKERS
    eligible = {q: p for q, p in products.items() if clickers.get(q, 0) >= min_clickers}
    by_product: dict[str, list[str]] = defaultdict(list)
    for query, items in eligible.items():
        for item in items:
            by_product[item].append(query)
    shared: dict[tuple[str, str], int] = defaultdict(int)
    for queries in by_product.values():
        queries.sort()
        for i, a in enumerate(queries):
            for b in queries[i + 1:]:
                shared[(a, b)] += 1
        if progress:
            progress(1)
    threshold = app_settings.SYNONYM_MIN_JACCARD
    pairs: dict[tuple[str, str], dict] = {}
    for (a, b), n in shared.items():
        jaccard = n / len(eligible[a] | eligible[b])
        if jaccard < threshold:
            continue
        terms = split_pair(a, b)
        if terms is None:
            continue
        evidence = {"rule": "coclick", "queries": [a, b], "jaccard": round(jaccard, 4), "shared_products": n,
                    "clicked_products": {a: len(eligible[a]), b: len(eligible[b])},
                    "clicking_shoppers": {a: clickers[a], b: clickers[b]}}
        if terms not in pairs or jaccard > pairs[terms]["jaccard"]:
            pairs[terms] = evidence
    return pairs


def store_pairs(pairs: dict[tuple[str, str], dict], source: str = SynonymSource.MINED_COCLICK) -> tuple[int, int]:
    """Upsert mined pairs: new ones pending, existing ones keep their status
    (and a merchandiser's own pairs their source). Pending pairs of ``source``
    that this run no longer finds (their queries fell below the gate, e.g.
    after an erasure) are dropped. Returns ``(created, updated)``."""
    existing = {(s.term, s.synonym): s for s in Synonym.objects.filter(term__in={t for t, _ in pairs})}
    created = updated = 0
    with transaction.atomic():
        stale = [pk for pk, term, synonym in Synonym.objects.filter(
            source=source, status=SynonymStatus.PENDING).values_list("pk", "term", "synonym")
            if (term, synonym) not in pairs]
        Synonym.objects.filter(pk__in=stale).delete()
        for (term, synonym), evidence in sorted(pairs.items()):
            row = existing.get((term, synonym))
            score = float(evidence.get("jaccard", 0.0))
            if row is None:
                Synonym.objects.create(term=term, synonym=synonym, source=source, evidence=evidence, score=score,
                                       status=SynonymStatus.PENDING)
                created += 1
            elif row.source != SynonymSource.MANUAL:
                Synonym.objects.filter(pk=row.pk).update(evidence=evidence, score=score, updated_at=timezone.now())
                updated += 1
    return created, updated


def mine_synonyms(*, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Mine co-click pairs and store them as pending synonyms.

    Returns:
        ``{"pairs": found, "created": new pending rows, "updated": refreshed rows}``.
    """
    pairs = mine_coclick_pairs(progress=progress)
    created, updated = store_pairs(pairs)
    return {"pairs": len(pairs), "created": created, "updated": updated}


# -- moderation -------------------------------------------------------------------------


def set_synonym_status(queryset, status: str) -> int:
    """Approve or reject synonyms in bulk (one update); searches use the change at once."""
    if status not in (SynonymStatus.APPROVED, SynonymStatus.REJECTED, SynonymStatus.PENDING):
        raise ValueError(f"Unknown synonym status {status!r}.")
    changed = queryset.update(status=status, decided_at=timezone.now(), updated_at=timezone.now())
    invalidate()
    return changed


def add_synonym(term: str, synonym: str, *, approved: bool = True) -> Synonym:
    """A merchandiser's pair (approved unless told otherwise)."""
    a, b = sorted((normalize_query(term), normalize_query(synonym)))
    if not a or not b or a == b:
        raise ValueError("A synonym needs two different, non-empty terms.")
    status = SynonymStatus.APPROVED if approved else SynonymStatus.PENDING
    obj, _ = Synonym.objects.update_or_create(
        term=a, synonym=b, defaults={"source": SynonymSource.MANUAL, "status": status, "decided_at": timezone.now()})
    invalidate()
    return obj


def save_synonym(obj: Synonym) -> Synonym:
    """Save a pair edited in the admin (a new one counts as a merchandiser's)."""
    if obj.pk is None:
        obj.source = SynonymSource.MANUAL
    a, b = normalize_query(obj.term), normalize_query(obj.synonym)
    if not a or not b or a == b:
        raise ValueError("A synonym needs two different, non-empty terms.")
    if obj.status != SynonymStatus.PENDING:
        obj.decided_at = timezone.now()
    obj.save()
    invalidate()
    return obj


def delete_synonyms(queryset) -> int:
    """Delete pairs (a mining run may propose them again; rejecting keeps them out)."""
    deleted = queryset.delete()[0]
    invalidate()
    return deleted


# -- serving ----------------------------------------------------------------------------

# (version, loaded_at, map)
_local: tuple[str | None, float, dict[str, tuple[str, ...]]] | None = None
_lock = threading.Lock()
#: When this process last read the shared version (time.monotonic()).
_version_checked_at = 0.0


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def invalidate() -> None:
    """Make every process re-read the approved synonyms on its next search."""
    global _local
    _local = None
    try:
        _cache().set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001 - other processes catch up within the timeout
        logger.warning("suggestions: cache unavailable, synonyms refresh within the cache timeout")


def _shared_version() -> str | None:
    try:
        cache = _cache()
        version = cache.get(VERSION_KEY)
        if version is None:
            cache.add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
            version = cache.get(VERSION_KEY)
        return version
    except Exception:  # noqa: BLE001 - a cache outage must not fail a search
        return None


def _load() -> dict[str, tuple[str, ...]]:
    mapping: dict[str, set[str]] = defaultdict(set)
    for term, synonym in Synonym.objects.filter(status=SynonymStatus.APPROVED).values_list("term", "synonym"):
        mapping[term].add(synonym)
        mapping[synonym].add(term)
    return {term: tuple(sorted(alts)) for term, alts in mapping.items()}


def approved_synonyms() -> dict[str, tuple[str, ...]]:
    """Approved pairs as term → alternatives, both ways (see the module contract)."""
    global _local, _version_checked_at
    now = time.monotonic()
    current = _local
    # The shared version is re-read at most every SUGGESTIONS_LOCAL_CACHE_SECONDS, as the
    # suggest path's: an approval elsewhere shows within that delay, one here at once.
    if (current is not None and now - _version_checked_at < app_settings.LOCAL_CACHE_SECONDS
            and now - current[1] < app_settings.SYNONYM_CACHE_TIMEOUT):
        return current[2]
    version = _shared_version()
    _version_checked_at = now
    if (current is not None and now - current[1] < app_settings.SYNONYM_CACHE_TIMEOUT
            and (version is None or version == current[0])):
        return current[2]
    with _lock:
        mapping = _load()
        _local = (version, now, mapping)
    return mapping


def synonyms_for(text: str, mapping: dict[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, ...]]:
    """The entries of ``mapping`` (default: :func:`approved_synonyms`) whose
    term occurs in ``text`` as whole words."""
    mapping = approved_synonyms() if mapping is None else mapping
    if not mapping or not text:
        return {}
    padded = f" {normalize_query(text)} "
    return {term: alts for term, alts in mapping.items() if f" {term} " in padded}


def reset() -> None:
    """Forget the per-process copy (tests)."""
    global _local
    _local = None

