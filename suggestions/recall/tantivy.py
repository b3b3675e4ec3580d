"""Embedded recall backend on tantivy (the default engine).

Contracts (on top of :class:`~suggestions.recall.base.BaseRecallBackend`):

* **Layout.** Everything lives under ``OPTIONS["PATH"]`` or, by default,
  ``<SUGGESTIONS_DATA_DIR>/tantivy/<alias>`` (read at call time). Each kind of
  index (``products``, ``suggestions``) is a set of version directories
  ``<kind>-v<timestamp>`` plus a pointer file ``<kind>.current`` naming the live
  one. The pointer is replaced atomically (temp file + ``os.replace``), so a
  rebuild builds a new directory, swaps the pointer and only then removes older
  versions; readers keep answering from the old version until they notice the
  swap.
* **Processes.** Several processes (web workers, Celery workers) may share the
  directory. tantivy allows one writer per index at a time, so every write takes
  the writer for one operation, commits, waits for merges and releases it,
  retrying for ``LOCK_TIMEOUT`` seconds while another process holds it.
  Rebuilds and first-time index creation are serialised by an advisory file lock.
  Every read compares the pointer file and the live index's ``meta.json``
  (two ``stat`` calls) with what it saw last and reopens or reloads on a change,
  so a commit from another process is visible on the next call.
* **Queries.** User text is never handed to tantivy's query parser: it is run
  through the index's own analyzer and the query is built from the tokens, so no
  input can cause a syntax error. Every word is looked up in title (x3), brand,
  product type, model number (x2) and description (x1); documents matching all
  words get an extra boosted clause so they rank first.
* **Facets.** ``brand_counts`` counts every match by lower-cased brand and
  reports each brand under its most frequent original spelling.
* **Suggestions.** Keys are :func:`suggestions.text.normalize_query` of the
  entry text, indexed untokenised. Exact-prefix matches come first, then (with
  ``fuzzy=True``) keys whose prefix is one edit away; each tier is ordered by
  weight, highest first. An empty prefix returns no suggestions.
  Suggestions with Chinese characters also get their full-pinyin and initials
  keys (multi-valued raw fields ``pinyin``, ``initials``); Latin input is
  completed on them as well (term and prefix queries), in the order of
  :func:`~suggestions.recall.base.pinyin_order`, before one-edit matches.

Every tantivy or file-system failure surfaces as :class:`RecallUnavailable`.

OPTIONS: ``PATH`` (directory), ``WRITER_HEAP_SIZE`` (bytes, default 50 MB),
``WRITER_THREADS`` (default 1: one segment per commit keeps searches fast),
``LOCK_TIMEOUT`` (seconds to wait for another process's writer, default 10),
``FACET_SIZE`` (most brands counted, default 1000).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tantivy
from tantivy import Occur, Query

from ..adapter import ProductDocument
from ..conf import app_settings
from ..nlp.pinyin import index_keys, pinyin_enabled, typed_key
from ..text import facet_key as _key
from ..text import normalize_prefix, normalize_query
from .base import (
    BaseRecallBackend,
    ProgressCallback,
    RecallUnavailable,
    SearchBoosts,
    SearchFilters,
    SearchHit,
    SearchResult,
    SuggestionEntry,
    SuggestionHit,
    pinyin_order,
    query_variants,
    vector_slug,
)

try:  # POSIX advisory locks serialise rebuilds across processes.
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process locking only
    fcntl = None  # type: ignore[assignment]

PRODUCTS = "products"
SUGGESTIONS = "suggestions"

TEXT_ANALYZER = "sg_text"
STEM_ANALYZER = "sg_stem"
#: (field, boost) pairs every query word is looked up in.
SEARCH_FIELDS: tuple[tuple[str, float], ...] = (
    ("title", 3.0),
    ("brand", 2.0),
    ("product_type", 2.0),
    ("model_number", 2.0),
    ("description", 1.0),
)
#: (stemmed field, source field, boost): English stems of the title and product
#: type, looked up with the stem of each query word. Weighted below the exact
#: fields, so "books" finds "book" while "controller" still prefers
#: "controller" over "control".
STEM_FIELDS: tuple[tuple[str, str, float], ...] = (
    ("title_stem", "title", 2.0),
    ("product_type_stem", "product_type", 1.5),
)
#: Extra weight of the "every word matches" clause.
ALL_WORDS_BOOST = 2.0
#: tie_breaker of the per-word disjunction over fields: the best field counts
#: fully, the others a little (a word in both title and brand beats title only).
FIELD_TIE_BREAKER = 0.1

_VERSION_RE = re.compile(r"^(products|suggestions)-v\d+$")


def _text_analyzer() -> tantivy.TextAnalyzer:
    # Same chain as the Elasticsearch backend's analyzer, as far as tantivy
    # allows: split on non-alphanumerics, lower-case, fold accents.
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def _stem_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


_ANALYZER = _text_analyzer()
_STEMMER = _stem_analyzer()


def _products_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    for name, _boost in SEARCH_FIELDS:
        # No phrase queries are run, so term frequencies suffice (smaller index).
        sb.add_text_field(name, tokenizer_name=TEXT_ANALYZER, index_option="freq")
    for name, _source, _boost in STEM_FIELDS:
        sb.add_text_field(name, tokenizer_name=STEM_ANALYZER, index_option="freq")
    sb.add_text_field("brand_key", tokenizer_name="raw", fast=True, index_option="basic")
    sb.add_text_field("brand_display", tokenizer_name="raw", fast=True, index_option="basic")
    sb.add_text_field("product_type_key", tokenizer_name="raw", fast=True, index_option="basic")
    sb.add_float_field("price", indexed=True, fast=True)
    # The whole document, so hits come back as ProductDocuments without a
    # database round trip; stored only, never indexed.
    sb.add_bytes_field("doc", stored=True)
    return sb.build()


def _suggestions_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("key", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("text", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("source", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_float_field("weight", stored=True, fast=True)
    # Pinyin keys of suggestions with Chinese characters (several values per
    # document); last, so older indexes keep their field ids.
    sb.add_text_field("pinyin", tokenizer_name="raw", index_option="basic")
    sb.add_text_field("initials", tokenizer_name="raw", index_option="basic")
    return sb.build()


_SCHEMAS: dict[str, tantivy.Schema] = {
    PRODUCTS: _products_schema(),
    SUGGESTIONS: _suggestions_schema(),
}


def _query_tokens(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for token in _ANALYZER.analyze(text):
        seen.setdefault(token, None)
    return list(seen)


def _new_version(base: str, kind: str) -> str:
    stamp = time.time_ns()
    while True:
        name = f"{kind}-v{stamp}"
        if not os.path.exists(os.path.join(base, name)):
            return name
        stamp += 1


def _write_atomic(path: str, content: str) -> None:
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    # A replaced file gets a new inode even within one mtime tick.
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass
class _Live:
    """What one process currently reads for one kind of index."""

    version: str
    index: tantivy.Index
    searcher: tantivy.Searcher
    pointer_key: tuple[int, int, int] | None
    meta_key: tuple[int, int, int] | None


class _IndexSet:
    """The versioned indexes of one kind under one base directory."""

    def __init__(self, base: str, kind: str, backend: TantivyRecallBackend):
        self.base = base
        self.kind = kind
        self.schema = _SCHEMAS[kind]
        self.backend = backend
        self.pointer = os.path.join(base, f"{kind}.current")
        self._state_lock = threading.Lock()
        # Serialises writers inside this process so threads queue here instead
        # of spinning on tantivy's cross-process lock file; also held while a
        # rebuild swaps versions so no in-process write lands in a removed one.
        # Re-entrant: creating a missing index from write() swaps too.
        self._write_lock = threading.RLock()
        self._live: _Live | None = None

    # -- reading ------------------------------------------------------------
    def _open(self, version: str, *, create: bool = False) -> tantivy.Index:
        path = os.path.join(self.base, version)
        if create:
            os.makedirs(path, exist_ok=False)
            index = tantivy.Index(self.schema, path=path, reuse=False)
        else:
            index = tantivy.Index.open(path)
        index.register_tokenizer(TEXT_ANALYZER, _ANALYZER)
        index.register_tokenizer(STEM_ANALYZER, _STEMMER)
        # Reloads are driven by the stat checks in live(); no watcher thread.
        index.config_reader(reload_policy="Manual")
        return index

    def live(self) -> _Live | None:
        """The live index, reopened or reloaded when another writer changed it;
        ``None`` when none was built yet."""
        with self._state_lock:
            for attempt in range(3):
                try:
                    return self._refresh()
                except (ValueError, OSError) as exc:
                    # The version named by the pointer may have been removed by
                    # a concurrent rebuild between reading and opening: retry.
                    self._live = None
                    if attempt == 2:
                        raise RecallUnavailable(
                            f"tantivy {self.kind} index cannot be opened: {exc}"
                        ) from exc
                    time.sleep(0.01)
        return None  # pragma: no cover - loop always returns or raises

    def _refresh(self) -> _Live | None:
        pointer_key = _stat_key(self.pointer)
        if pointer_key is None:
            self._live = None
            return None
        live = self._live
        if live is None or live.pointer_key != pointer_key:
            with open(self.pointer, encoding="utf-8") as fh:
                version = fh.read().strip()
            if not _VERSION_RE.match(version):
                raise ValueError(f"bad pointer {self.pointer!r}: {version!r}")
            if live is not None and live.version == version:
                live.pointer_key = pointer_key
            else:
                meta_key = _stat_key(os.path.join(self.base, version, "meta.json"))
                index = self._open(version)
                live = self._live = _Live(version, index, index.searcher(), pointer_key, meta_key)
                return live
        meta_key = _stat_key(os.path.join(self.base, live.version, "meta.json"))
        if meta_key != live.meta_key:
            live.index.reload()
            live.searcher = live.index.searcher()
            live.meta_key = meta_key
        return live

    def invalidate(self) -> None:
        with self._state_lock:
            self._live = None

    # -- writing ------------------------------------------------------------
    def _writer(self, index: tantivy.Index) -> tantivy.IndexWriter:
        deadline = time.monotonic() + self.backend.lock_timeout
        delay = 0.01
        while True:
            try:
                return index.writer(self.backend.writer_heap_size, self.backend.writer_threads)
            except ValueError as exc:
                # Another process (or an abandoned writer) holds the index lock.
                if "LockBusy" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def write(
        self, operation: Callable[[tantivy.IndexWriter], None], *, create_missing: bool
    ) -> None:
        """Run ``operation`` with the live index's writer, commit and make the
        result visible to this process."""
        try:
            if create_missing and self.live() is None:
                # Outside the write lock: lock order is structure, then write.
                self._create_empty_live()
            with self._write_lock:
                live = self.live()
                if live is None:
                    if create_missing:  # pragma: no cover - removed by hand meanwhile
                        raise RecallUnavailable(f"tantivy {self.kind} index vanished")
                    return
                writer = self._writer(live.index)
                try:
                    operation(writer)
                    writer.commit()
                except BaseException:
                    with contextlib.suppress(Exception):
                        writer.rollback()
                    raise
                finally:
                    # Consumes the writer and releases the lock file.
                    writer.wait_merging_threads()
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy {self.kind} write failed: {exc}") from exc
        with contextlib.suppress(RecallUnavailable):
            self.live()

    def _create_empty_live(self) -> None:
        with self.backend._structure_lock(self.base, self.kind):
            if _stat_key(self.pointer) is not None:
                return  # another process created it meanwhile
            self.replace(lambda writer: None)

    def replace(self, fill: Callable[[tantivy.IndexWriter], None]) -> str:
        """Build a new version with ``fill``, point the alias at it and remove
        the older versions. The caller holds the structure lock."""
        version = _new_version(self.base, self.kind)
        path = os.path.join(self.base, version)
        try:
            index = self._open(version, create=True)
            writer = self._writer(index)
            try:
                fill(writer)
                writer.commit()
            finally:
                writer.wait_merging_threads()
            del index
        except BaseException:
            # Never published: readers cannot have seen it.
            shutil.rmtree(path, ignore_errors=True)
            raise
        with self._write_lock:
            try:
                _write_atomic(self.pointer, version + "\n")
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
            self.invalidate()
            self._remove_old_versions(keep=version)
        return version

    def _remove_old_versions(self, keep: str) -> None:
        try:
            names = os.listdir(self.base)
        except OSError:
            return
        for name in names:
            if name != keep and name.startswith(f"{self.kind}-v") and _VERSION_RE.match(name):
                # Readers in other processes keep their open files (POSIX);
                # on failure (Windows) the next rebuild retries.
                shutil.rmtree(os.path.join(self.base, name), ignore_errors=True)


class _VectorStore:
    """Products' vectors of one encoder: ``<base>/vectors/<slug>.npz`` (ids and a
    float32 matrix of unit rows), replaced atomically (written aside, renamed)
    under the structure lock, re-read when another process replaced it.

    Search is exact: one matrix-vector product over every stored vector
    (bench/search_quality measures it: about 1 ms for 19,406 products of 384
    dimensions); past a few hundred thousand products use the Elasticsearch
    backend, whose kNN is approximate (HNSW).
    """

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._ids: list[str] = []
        self._matrix = np.zeros((0, 0), np.float32)
        self._row: dict[str, int] = {}

    def load(self) -> tuple[list[str], np.ndarray, dict[str, int]]:
        key = _stat_key(self.path)
        with self._lock:
            if key != self._key:
                if key is None:
                    self._ids, self._matrix, self._row = [], np.zeros((0, 0), np.float32), {}
                else:
                    with np.load(self.path, allow_pickle=False) as data:
                        self._ids = [str(i) for i in data["ids"].tolist()]
                        self._matrix = np.ascontiguousarray(data["vectors"], dtype=np.float32)
                    self._row = {doc_id: n for n, doc_id in enumerate(self._ids)}
                self._key = key
            return self._ids, self._matrix, self._row

    def save(self, ids: list[str], matrix: np.ndarray) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), vectors=np.asarray(matrix, dtype=np.float32))
        os.replace(tmp, self.path)


class TantivyRecallBackend(BaseRecallBackend):
    """Recall on embedded tantivy indexes in a local directory.

    Suited to one machine (any number of processes sharing the directory).
    Fast enough for the request path: a search is a few stat calls plus one
    in-process query and aggregation.
    """

    supports_fuzzy = True
    supports_vectors = True
    is_remote = False
    supports_pinyin = True

    def __init__(self, alias: str, options: dict[str, Any]):
        super().__init__(alias, options)
        self.writer_heap_size = int(self.options.get("WRITER_HEAP_SIZE", 50_000_000))
        self.writer_threads = int(self.options.get("WRITER_THREADS", 1))
        self.lock_timeout = float(self.options.get("LOCK_TIMEOUT", 10.0))
        self.facet_size = int(self.options.get("FACET_SIZE", 1000))
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, str], _IndexSet] = {}
        self._vector_stores: dict[str, _VectorStore] = {}

    # -- plumbing -----------------------------------------------------------
    @property
    def path(self) -> str:
        """The backend's directory (settings are read on every call)."""
        return str(
            self.options.get("PATH") or os.path.join(app_settings.DATA_DIR, "tantivy", self.alias)
        )

    def _set(self, kind: str) -> _IndexSet:
        base = self.path
        index_set = self._sets.get((base, kind))
        if index_set is None:
            with self._lock:
                index_set = self._sets.get((base, kind))
                if index_set is None:
                    index_set = self._sets[(base, kind)] = _IndexSet(base, kind, self)
        return index_set

    @contextlib.contextmanager
    def _structure_lock(self, base: str, kind: str) -> Iterator[None]:
        """Exclusive right to create or swap versions of ``kind``, across
        threads and (on POSIX) processes."""
        try:
            os.makedirs(base, exist_ok=True)
        except OSError as exc:
            raise RecallUnavailable(f"tantivy directory {base!r} is not usable: {exc}") from exc
        with _thread_lock_for(base, kind):
            with open(os.path.join(base, f".{kind}.lock"), "a+") as fh:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    if fcntl is not None:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- products -----------------------------------------------------------
    def rebuild_products(
        self, documents: Iterable[ProductDocument], progress: ProgressCallback | None = None
    ) -> str:
        batch_size = max(1, app_settings.INDEX_BATCH_SIZE)
        index_set = self._set(PRODUCTS)

        def fill(writer: tantivy.IndexWriter) -> None:
            seen: set[str] = set()
            pending = 0
            for doc in documents:
                if doc.id in seen:
                    writer.delete_documents_by_term("id", str(doc.id))
                seen.add(doc.id)
                writer.add_document(_product_to_tantivy(doc))
                pending += 1
                if pending >= batch_size:
                    if progress is not None:
                        progress(pending)
                    pending = 0
            if pending and progress is not None:
                progress(pending)

        try:
            with self._structure_lock(index_set.base, PRODUCTS):
                return index_set.replace(fill)
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy products rebuild failed: {exc}") from exc

    def index_products(self, documents: Iterable[ProductDocument]) -> None:
        docs = list(documents)
        if not docs:
            return

        def operation(writer: tantivy.IndexWriter) -> None:
            for doc in docs:
                # Delete-then-add within one commit: the delete only applies
                # to documents added before it, so this is an upsert.
                writer.delete_documents_by_term("id", str(doc.id))
                writer.add_document(_product_to_tantivy(doc))

        self._set(PRODUCTS).write(operation, create_missing=True)

    def delete_products(self, ids: Iterable[str]) -> None:
        id_list = [str(i) for i in ids]
        if not id_list:
            return

        def operation(writer: tantivy.IndexWriter) -> None:
            for doc_id in id_list:
                writer.delete_documents_by_term("id", doc_id)

        self._set(PRODUCTS).write(operation, create_missing=False)
        self._drop_vectors(set(id_list))

    def search_products(
        self,
        query: str,
        filters: SearchFilters | None = None,
        offset: int = 0,
        limit: int = 20,
        boosts: SearchBoosts | None = None,
        synonyms: Mapping[str, Sequence[str]] | None = None,
    ) -> SearchResult:
        live = self._set(PRODUCTS).live()
        if live is None:
            return SearchResult(hits=[], total=0, brand_counts={})
        schema = _SCHEMAS[PRODUCTS]
        tantivy_query = _build_product_query(
            schema, query, filters or SearchFilters(), boosts or SearchBoosts(), synonyms
        )
        searcher = live.searcher
        try:
            # tantivy rejects a zero limit; a count-only call still needs one.
            page = max(1, int(limit))
            result = searcher.search(tantivy_query, page, count=True, offset=max(0, int(offset)))
            hits = []
            for score, address in result.hits[: max(0, int(limit))]:
                stored = searcher.doc(address)
                data = json.loads(stored.get_first("doc"))
                document = ProductDocument.from_dict(data)
                hits.append(SearchHit(id=document.id, score=float(score), document=document))
            brand_counts = self._brand_counts(searcher, tantivy_query) if result.count else {}
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy search failed: {exc}") from exc
        return SearchResult(hits=hits, total=int(result.count), brand_counts=brand_counts)

    def _brand_counts(self, searcher: tantivy.Searcher, query: tantivy.Query) -> dict[str, int]:
        agg = searcher.aggregate(
            query,
            {
                "brands": {
                    "terms": {"field": "brand_key", "size": self.facet_size},
                    # The most frequent original spelling names the bucket.
                    "aggs": {"display": {"terms": {"field": "brand_display", "size": 1}}},
                }
            },
        )
        counts: dict[str, int] = {}
        for bucket in agg.get("brands", {}).get("buckets", []):
            if not bucket["key"]:
                continue
            display = bucket.get("display", {}).get("buckets") or [{"key": bucket["key"]}]
            counts[str(display[0]["key"])] = int(bucket["doc_count"])
        return counts

    # -- vectors -------------------------------------------------------------
    def _vectors(self, model: str) -> _VectorStore:
        path = os.path.join(self.path, "vectors", f"{vector_slug(model)}.npz")
        store = self._vector_stores.get(path)
        if store is None:
            with self._lock:
                store = self._vector_stores.setdefault(path, _VectorStore(path))
        return store

    def _vector_models(self) -> list[str]:
        folder = os.path.join(self.path, "vectors")
        try:
            return [name[: -len(".npz")] for name in os.listdir(folder) if name.endswith(".npz")]
        except OSError:
            return []

    def _drop_vectors(self, ids: set[str]) -> None:
        for slug in self._vector_models():
            store = self._vectors(slug)
            with self._structure_lock(self.path, "vectors"):
                old_ids, matrix, _row = store.load()
                keep = [n for n, doc_id in enumerate(old_ids) if doc_id not in ids]
                if len(keep) != len(old_ids):
                    store.save([old_ids[n] for n in keep], matrix[keep])

    def store_vectors(self, model: str, ids: Sequence[str], vectors: Any, *, replace: bool = False) -> int:
        matrix = np.asarray(vectors, dtype=np.float32)
        ids = [str(i) for i in ids]
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids need a matrix of {len(ids)} rows, got shape {matrix.shape}")
        live = self._set(PRODUCTS).live()
        if live is None:
            return 0
        known = self._live_ids(live, ids)
        rows = {doc_id: n for n, doc_id in enumerate(ids) if doc_id in known}
        store = self._vectors(model)
        try:
            with self._structure_lock(self.path, "vectors"):
                old_ids, old_matrix, _row = store.load() if not replace else ([], np.zeros((0, 0), np.float32), {})
                if old_ids and old_matrix.shape[1] != matrix.shape[1]:
                    raise ValueError(f"vectors of {model!r} have {old_matrix.shape[1]} dimensions, "
                                     f"not {matrix.shape[1]}: store them with replace=True")
                keep = [n for n, doc_id in enumerate(old_ids) if doc_id not in rows]
                new_ids = [old_ids[n] for n in keep] + list(rows)
                parts = [old_matrix[keep]] if keep else []
                parts.append(matrix[list(rows.values())] if rows else np.zeros((0, matrix.shape[1]), np.float32))
                store.save(new_ids, np.vstack(parts))
        except OSError as exc:
            raise RecallUnavailable(f"tantivy vectors could not be stored: {exc}") from exc
        return len(rows)

    @staticmethod
    def _live_ids(live: _Live, ids: Sequence[str]) -> set[str]:
        schema = _SCHEMAS[PRODUCTS]
        found: set[str] = set()
        for start in range(0, len(ids), 1024):
            chunk = list(ids[start:start + 1024])
            result = live.searcher.search(Query.term_set_query(schema, "id", chunk), len(chunk))
            found.update(live.searcher.doc(address).get_first("id") for _score, address in result.hits)
        return found

    def search_vectors(self, model: str, vector: Any, filters: SearchFilters | None = None,
                       limit: int = 50) -> SearchResult:
        live = self._set(PRODUCTS).live()
        if live is None or limit <= 0:
            return SearchResult(hits=[], total=0, brand_counts={})
        ids, matrix, _row = self._vectors(model).load()
        if not ids:
            return SearchResult(hits=[], total=0, brand_counts={})
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != matrix.shape[1]:
            raise ValueError(f"a {query.shape[0]}-dimensional query for {matrix.shape[1]}-dimensional vectors")
        similarities = matrix @ query
        filters = filters or SearchFilters()
        schema = _SCHEMAS[PRODUCTS]
        searcher = live.searcher
        hits: list[SearchHit] = []
        # Nearest first; products outside the filters (or gone from the index)
        # are skipped, so widen the window until ``limit`` are found. Only the
        # window's similarities are sorted (argpartition), not all of them.
        window, start = (limit * 4 if filters else limit), 0
        order = np.zeros(0, dtype=np.int64)
        restrict = _build_product_query(schema, "", filters, SearchBoosts()) if filters else None
        try:
            while len(hits) < limit and start < len(similarities):
                if start + window > len(order):
                    wanted = min(len(similarities), max(start + window, 2 * len(order)))
                    part = (np.argpartition(-similarities, wanted - 1)[:wanted] if wanted < len(similarities)
                            else np.arange(len(similarities)))
                    order = part[np.argsort(-similarities[part], kind="stable")]
                chosen = [ids[n] for n in order[start:start + window]]
                clauses = [(Occur.Must, Query.term_set_query(schema, "id", chosen))]
                if restrict is not None:
                    clauses.append((Occur.Must, restrict))
                result = searcher.search(Query.boolean_query(clauses), len(chosen))
                found = {}
                for _score, address in result.hits:
                    stored = searcher.doc(address)
                    found[stored.get_first("id")] = stored
                for n in order[start:start + window]:
                    stored = found.get(ids[n])
                    if stored is not None and len(hits) < limit:
                        document = ProductDocument.from_dict(json.loads(stored.get_first("doc")))
                        hits.append(SearchHit(id=document.id, score=float(similarities[n]), document=document))
                start += window
                window *= 4
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy vector search failed: {exc}") from exc
        return SearchResult(hits=hits, total=len(hits), brand_counts={})

    def count_vectors(self, model: str) -> int:
        return len(self._vectors(model).load()[0])

    def vector_ids(self, model: str) -> set[str]:
        return set(self._vectors(model).load()[0])

    def count_products(self) -> int:
        live = self._set(PRODUCTS).live()
        return 0 if live is None else int(live.searcher.num_docs)

    # -- suggestions --------------------------------------------------------
    def replace_suggestions(self, entries: Iterable[SuggestionEntry]) -> None:
        best: dict[str, SuggestionEntry] = {}
        for entry in entries:
            key = normalize_query(entry.text)
            if key and (key not in best or entry.weight > best[key].weight):
                best[key] = entry
        with_pinyin = pinyin_enabled(self)

        def fill(writer: tantivy.IndexWriter) -> None:
            for key, entry in best.items():
                doc = tantivy.Document()
                doc.add_text("key", key)
                doc.add_text("text", entry.text)
                doc.add_text("source", entry.source or "")
                doc.add_float("weight", float(entry.weight))
                if with_pinyin:
                    keys = index_keys(key)
                    for value in keys.full:
                        doc.add_text("pinyin", value)
                    for value in keys.initials:
                        doc.add_text("initials", value)
                writer.add_document(doc)

        index_set = self._set(SUGGESTIONS)
        try:
            with self._structure_lock(index_set.base, SUGGESTIONS):
                index_set.replace(fill)
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy suggestions replace failed: {exc}") from exc

    def suggest(self, prefix: str, limit: int = 10, fuzzy: bool = False) -> list[SuggestionHit]:
        key = normalize_prefix(prefix)
        if not key or limit <= 0:
            return []
        live = self._set(SUGGESTIONS).live()
        if live is None:
            return []
        schema = _SCHEMAS[SUGGESTIONS]
        searcher = live.searcher
        try:
            exact = Query.fuzzy_term_query(schema, "key", key, distance=0, prefix=True)
            hits = self._suggest_tier(searcher, exact, limit, fuzzy=False)
            typed = typed_key(key) if pinyin_enabled(self) else ""
            if typed:
                # The index's own schema: one built before the pinyin fields
                # existed must fail to build the query (ValueError), not be
                # asked for a field id it lacks (a panic inside tantivy).
                hits = self._with_pinyin(searcher, live.index.schema, typed, hits, limit)
            if fuzzy and len(hits) < limit:
                near = Query.fuzzy_term_query(
                    schema, "key", key, distance=1, transposition_cost_one=True, prefix=True
                )
                only_near = Query.boolean_query([(Occur.Must, near), (Occur.MustNot, exact)])
                seen = {hit.text for hit in hits}
                hits += [hit for hit in self._suggest_tier(searcher, only_near, limit, fuzzy=True)
                         if hit.text not in seen][: limit - len(hits)]
        except (ValueError, OSError) as exc:
            raise RecallUnavailable(f"tantivy suggest failed: {exc}") from exc
        return hits

    def _with_pinyin(self, searcher: tantivy.Searcher, schema: tantivy.Schema, typed: str,
                     text_hits: list[SuggestionHit], limit: int) -> list[SuggestionHit]:
        tiers = []
        for field in ("pinyin", "initials"):
            try:
                equal = Query.term_query(schema, field, typed)
                prefix = Query.fuzzy_term_query(schema, field, typed, distance=0, prefix=True)
            except ValueError:
                # An index built before pinyin keys existed: none to match.
                return text_hits
            tiers.append(self._suggest_tier(searcher, equal, limit, fuzzy=False))
            tiers.append(self._suggest_tier(searcher, prefix, limit, fuzzy=False))
        return pinyin_order(limit, text_hits, *tiers)

    @staticmethod
    def _suggest_tier(
        searcher: tantivy.Searcher, query: tantivy.Query, limit: int, *, fuzzy: bool
    ) -> list[SuggestionHit]:
        result = searcher.search(query, limit, count=False, order_by_field="weight")
        hits = []
        for weight, address in result.hits:
            stored = searcher.doc(address)
            hits.append(
                SuggestionHit(
                    text=stored.get_first("text"),
                    weight=float(weight),
                    source=stored.get_first("source") or "",
                    fuzzy=fuzzy,
                )
            )
        # Equal weights: alphabetical, so answers are stable across segments.
        hits.sort(key=lambda hit: (-hit.weight, hit.text))
        return hits

    # -- health -------------------------------------------------------------
    def ping(self) -> bool:
        base = self.path
        try:
            os.makedirs(base, exist_ok=True)
            if not os.access(base, os.W_OK | os.X_OK):
                return False
            self._set(PRODUCTS).live()
            self._set(SUGGESTIONS).live()
        except (OSError, RecallUnavailable):
            return False
        return True

    def close(self) -> None:
        with self._lock:
            for index_set in self._sets.values():
                index_set.invalidate()
            self._sets.clear()


_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock_for(base: str, kind: str) -> threading.Lock:
    # flock is per open file description, so threads of one process need their
    # own lock too; shared by every backend instance pointing at ``base``.
    with _thread_locks_guard:
        lock = _thread_locks.get((base, kind))
        if lock is None:
            lock = _thread_locks[(base, kind)] = threading.Lock()
        return lock


def _product_to_tantivy(doc: ProductDocument) -> tantivy.Document:
    out = tantivy.Document()
    out.add_text("id", str(doc.id))
    for name, _boost in SEARCH_FIELDS:
        value = getattr(doc, name) or ""
        if value:
            out.add_text(name, str(value))
    for name, source, _boost in STEM_FIELDS:
        value = getattr(doc, source) or ""
        if value:
            out.add_text(name, str(value))
    brand = " ".join((doc.brand or "").split())
    out.add_text("brand_key", _key(brand))
    out.add_text("brand_display", brand)
    out.add_text("product_type_key", _key(doc.product_type))
    if doc.price is not None:
        out.add_float("price", float(doc.price))
    out.add_bytes("doc", json.dumps(doc.as_dict(), default=str, ensure_ascii=False).encode("utf-8"))
    return out


def _word_query(schema: tantivy.Schema, token: str) -> tantivy.Query:
    return Query.disjunction_max_query(
        [
            Query.boost_query(Query.term_query(schema, field, token, index_option="freq"), boost)
            for field, boost in SEARCH_FIELDS
        ]
        + [
            Query.boost_query(Query.term_query(schema, field, stem, index_option="freq"), boost)
            for field, _source, boost in STEM_FIELDS
            for stem in _STEMMER.analyze(token)[:1]
        ],
        tie_breaker=FIELD_TIE_BREAKER,
    )


def _build_product_query(
    schema: tantivy.Schema,
    text: str,
    filters: SearchFilters,
    boosts: SearchBoosts,
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> tantivy.Query:
    clauses: list[tuple[Occur, tantivy.Query]] = []
    for field, values in (("brand_key", boosts.brands), ("product_type_key", boosts.product_types)):
        keys = sorted({_key(v) for v in values if _key(v)})
        if keys:
            boost = Query.term_set_query(schema, field, keys)
            clauses.append((Occur.Should, Query.const_score_query(boost, float(boosts.weight))))
    tokens = _query_tokens(text) if text.strip() else []
    if text.strip() and not tokens and not filters:
        # Only punctuation: nothing can match (as Elasticsearch's
        # zero_terms_query "none"); with filters it is a filter-only search.
        return Query.empty_query()
    if tokens and synonyms:
        # Synonyms: the union of the query's variants; each variant's
        # every-word clause counts as the query's own.
        variants = [v for v in (_query_tokens(t) for t in query_variants(text, synonyms)) if v]
        any_word = Query.boolean_query(
            [(Occur.Should, _word_query(schema, t)) for t in dict.fromkeys(t for v in variants for t in v)]
        )
        clauses.append((Occur.Must, any_word))
        every = [
            Query.boolean_query([(Occur.Must, _word_query(schema, t)) for t in v])
            for v in variants
            if len(v) > 1
        ]
        if every:
            clauses.append(
                (
                    Occur.Should,
                    Query.boost_query(Query.disjunction_max_query(every), ALL_WORDS_BOOST),
                )
            )
    elif tokens:
        per_word = [_word_query(schema, token) for token in tokens]
        if len(per_word) == 1:
            clauses.append((Occur.Must, per_word[0]))
        else:
            any_word = Query.boolean_query([(Occur.Should, q) for q in per_word])
            all_words = Query.boolean_query([(Occur.Must, q) for q in per_word])
            clauses.append((Occur.Must, any_word))
            clauses.append((Occur.Should, Query.boost_query(all_words, ALL_WORDS_BOOST)))
    for field, values in (
        ("brand_key", filters.brands),
        ("product_type_key", filters.product_types),
    ):
        keys = sorted({_key(v) for v in values if _key(v)})
        if keys:
            # Filters must not change scores.
            clauses.append(
                (
                    Occur.Must,
                    Query.const_score_query(Query.term_set_query(schema, field, keys), 0.0),
                )
            )
    if filters.min_price is not None or filters.max_price is not None:
        price = Query.range_query(
            schema,
            "price",
            tantivy.FieldType.Float,
            None if filters.min_price is None else float(filters.min_price),
            None if filters.max_price is None else float(filters.max_price),
        )
        clauses.append((Occur.Must, Query.const_score_query(price, 0.0)))
    if not any(occur is Occur.Must for occur, _ in clauses):
        # Boosts alone must not turn "everything" into "only the boosted ones".
        clauses.append((Occur.Must, Query.all_query()))
    if len(clauses) == 1:
        return clauses[0][1]
    return Query.boolean_query(clauses)


backend_class = TantivyRecallBackend
