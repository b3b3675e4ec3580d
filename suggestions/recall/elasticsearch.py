"""Recall backend on Elasticsearch 8.x (official ``elasticsearch`` client).

Contracts (on top of :class:`~suggestions.recall.base.BaseRecallBackend`):

* **Indexes.** Products live in ``<prefix>-products-<timestamp>`` behind the
  alias ``<prefix>-products``; suggestions in ``<prefix>-suggestions-<timestamp>``
  behind ``<prefix>-suggestions``. A rebuild bulk-loads a new index, refreshes
  it, moves the alias in one ``update_aliases`` call (remove old + add new) and
  then deletes versions older than the new one, so readers never see a partial
  index. Incremental writes go through the alias (``require_alias``) and wait
  for a refresh, so they are visible when the call returns. The first
  incremental write on a fresh cluster creates an empty versioned index.
* **Analysis.** Text fields use standard tokenizer + lowercase + asciifolding
  (dots, colons and underscores split words first);
  ``brand`` and ``product_type`` have a lower-cased keyword subfield for filters
  and the ``brand_counts`` terms aggregation (reported under the most frequent
  original spelling, like the tantivy backend). The full document is kept,
  unindexed, in ``_source`` so hits come back as :class:`ProductDocument` s.
* **Ranking.** ``cross_fields`` ``multi_match`` over title^3, brand^2,
  product_type^2, model_number^2 and description; a second, boosted clause
  with ``operator: and`` puts documents matching every word first. The query
  text is analysed, never parsed, so no input causes a syntax error.
* **Suggestions.** Completion suggester on the normalised key (keyword
  tokenizer + lowercase). Completion weights must be integers, so the float
  weight is stored alongside and the completion weight is ``round(weight *
  1000)`` clamped to ``[0, 2**31 - 1]``. Exact-prefix hits come first, then
  (``fuzzy=True``) one-edit hits minus the exact ones; each tier is ordered by
  the float weight, highest first. An empty prefix returns nothing.
  Suggestions with Chinese characters also get their full-pinyin and initials
  keys, as completion inputs (``suggest_pinyin``, ``suggest_initials``) and as
  keywords (``pinyin``, ``initials``); Latin input runs two more completion
  suggesters and one term query for keys equal to it in the same request, in
  the order of :func:`~suggestions.recall.base.pinyin_order`. An index built
  before these fields existed is answered without them.
* **Failures.** Connection errors, timeouts and error responses raise
  :class:`RecallUnavailable` (a missing alias reads as an empty index).
  Retries are off by default on timeouts: this is the request path.

OPTIONS: ``HOSTS`` (list, default ``["http://localhost:9200"]``),
``INDEX_PREFIX`` (default ``"suggestions"``), ``TIMEOUT`` (seconds per read,
default 2), ``WRITE_TIMEOUT`` (seconds per bulk/admin request, default 30),
``MAX_RETRIES`` (default 1), ``API_KEY``, ``BASIC_AUTH`` (``(user, password)``),
``FACET_SIZE`` (most brands counted, default 1000), ``CLIENT_OPTIONS`` (extra
keyword arguments for ``Elasticsearch(...)``, e.g. ``ca_certs``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from django.core.exceptions import ImproperlyConfigured

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
    has_searchable_text,
    pinyin_order,
    query_variants,
    vector_slug,
)

PRODUCTS = "products"
SUGGESTIONS = "suggestions"

SEARCH_FIELDS = [
    "title^3", "brand^2", "product_type^2", "model_number^2", "description",
    # English stems, weighted below the exact fields (as the tantivy backend's STEM_FIELDS).
    "title.stem^2", "product_type.stem^1.5",
]
#: Extra weight of the "every word matches" clause (same as tantivy's).
ALL_WORDS_BOOST = 2.0
COMPLETION_WEIGHT_SCALE = 1000
MAX_COMPLETION_WEIGHT = 2**31 - 1
#: Longest suggestion key the completion field indexes in full.
MAX_KEY_LENGTH = 256

_ANALYSIS = {
    # The standard tokenizer keeps "startech.com", "3.5mm" and "brand:hp"
    # whole, so a shopper typing "startech" would miss; split on dots, colons
    # and underscores first (as the tantivy backend's tokenizer does).
    "char_filter": {
        "sg_word_joiners": {
            "type": "mapping",
            "mappings": [". => \\u0020", ": => \\u0020", "_ => \\u0020"],
        }
    },
    "analyzer": {
        "sg_text": {
            "type": "custom",
            "char_filter": ["sg_word_joiners"],
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding"],
        },
        "sg_stem": {
            "type": "custom",
            "char_filter": ["sg_word_joiners"],
            "tokenizer": "standard",
            # Snowball English (porter2), the stemmer the tantivy backend uses.
            "filter": ["lowercase", "asciifolding", "sg_english_stem"],
        },
        "sg_completion": {"type": "custom", "tokenizer": "keyword", "filter": ["lowercase"]},
    },
    "filter": {"sg_english_stem": {"type": "stemmer", "language": "porter2"}},
    # Lower-case only (no folding) so Python's str.lower() on filter values
    # yields the indexed term exactly.
    "normalizer": {"sg_lower": {"type": "custom", "filter": ["lowercase"]}},
}

_KEYWORD_SUBFIELDS = {
    "key": {"type": "keyword", "normalizer": "sg_lower"},
    "raw": {"type": "keyword"},
}

_STEM_SUBFIELD = {"type": "text", "analyzer": "sg_stem"}

PRODUCTS_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "sg_text", "fields": {"stem": _STEM_SUBFIELD}},
        "brand": {"type": "text", "analyzer": "sg_text", "fields": _KEYWORD_SUBFIELDS},
        "product_type": {
            "type": "text",
            "analyzer": "sg_text",
            "fields": {**_KEYWORD_SUBFIELDS, "stem": _STEM_SUBFIELD},
        },
        "model_number": {"type": "text", "analyzer": "sg_text"},
        "description": {"type": "text", "analyzer": "sg_text"},
        "price": {"type": "float"},
        # The whole ProductDocument, returned with hits; never indexed so
        # arbitrary attributes cannot explode the mapping.
        "doc": {"type": "object", "enabled": False},
    },
}

SUGGESTIONS_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "suggest": {
            "type": "completion",
            "analyzer": "sg_completion",
            "search_analyzer": "sg_completion",
            "preserve_separators": True,
            "preserve_position_increments": True,
            "max_input_length": MAX_KEY_LENGTH,
        },
        "key": {"type": "keyword"},
        "text": {"type": "keyword"},
        "source": {"type": "keyword"},
        "weight": {"type": "float"},
        # Pinyin keys of suggestions with Chinese characters (lists).
        "suggest_pinyin": {"type": "completion", "analyzer": "sg_completion",
                           "search_analyzer": "sg_completion", "max_input_length": MAX_KEY_LENGTH},
        "suggest_initials": {"type": "completion", "analyzer": "sg_completion",
                             "search_analyzer": "sg_completion", "max_input_length": MAX_KEY_LENGTH},
        "pinyin": {"type": "keyword"},
        "initials": {"type": "keyword"},
    },
}

_MAPPINGS = {PRODUCTS: PRODUCTS_MAPPING, SUGGESTIONS: SUGGESTIONS_MAPPING}

_INSTALL_HINT = 'pip install "django-shop-suggestions[elasticsearch]"'


def _completion_weight(weight: float) -> int:
    return max(0, min(MAX_COMPLETION_WEIGHT, int(round(float(weight) * COMPLETION_WEIGHT_SCALE))))


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class ElasticsearchRecallBackend(BaseRecallBackend):
    """Recall on an Elasticsearch 8.x cluster (or a compatible server).

    One client per backend instance (connection pooling is the client's); the
    loader builds one instance per process.
    """

    supports_fuzzy = True
    supports_vectors = True
    is_remote = True
    supports_pinyin = True

    def __init__(self, alias: str, options: dict[str, Any]):
        super().__init__(alias, options)
        try:
            import elasticsearch
            from elasticsearch import helpers
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"The Elasticsearch recall backend needs the elasticsearch client: {_INSTALL_HINT}"
            ) from exc
        self._es = elasticsearch
        self._helpers = helpers
        opts = self.options
        self.prefix = str(opts.get("INDEX_PREFIX", "suggestions")).lower()
        self.timeout = float(opts.get("TIMEOUT", 2))
        self.write_timeout = float(opts.get("WRITE_TIMEOUT", max(30.0, self.timeout)))
        self.facet_size = int(opts.get("FACET_SIZE", 1000))
        hosts = opts.get("HOSTS") or ["http://localhost:9200"]
        if isinstance(hosts, str):
            hosts = [hosts]
        kwargs: dict[str, Any] = {
            "request_timeout": self.timeout,
            "max_retries": int(opts.get("MAX_RETRIES", 1)),
            # A timed-out search is retried by the user, not by us: retrying
            # would multiply the latency of a request that already failed.
            "retry_on_timeout": False,
        }
        if opts.get("API_KEY"):
            kwargs["api_key"] = opts["API_KEY"]
        if opts.get("BASIC_AUTH"):
            kwargs["basic_auth"] = tuple(opts["BASIC_AUTH"])
        kwargs.update(opts.get("CLIENT_OPTIONS") or {})
        try:
            self._client = elasticsearch.Elasticsearch(list(hosts), **kwargs)
            self._vector_fields: dict[str, tuple[float, bool]] = {}
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"Invalid Elasticsearch OPTIONS for recall backend {alias!r}: {exc}"
            ) from exc
        self._version_re = {
            kind: re.compile(rf"^{re.escape(self.prefix)}-{kind}-(\d+)$")
            for kind in (PRODUCTS, SUGGESTIONS)
        }

    # -- plumbing -----------------------------------------------------------
    def alias_name(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    @property
    def _writer(self) -> Any:
        return self._client.options(request_timeout=self.write_timeout)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn every client-side failure into RecallUnavailable."""
        es = self._es
        try:
            yield
        except RecallUnavailable:
            raise
        except (es.TransportError, es.ApiError, self._helpers.BulkIndexError) as exc:
            raise RecallUnavailable(f"Elasticsearch {what} failed: {exc}") from exc

    def _versions(self, kind: str) -> list[tuple[int, str]]:
        try:
            found = self._writer.indices.get(
                index=f"{self.prefix}-{kind}-*", expand_wildcards="open,closed"
            )
        except self._es.NotFoundError:
            return []
        versions = []
        for name in found:
            match = self._version_re[kind].match(name)
            if match:
                versions.append((int(match.group(1)), name))
        return sorted(versions)

    def _alias_targets(self, kind: str) -> list[str]:
        try:
            return list(self._writer.indices.get_alias(name=self.alias_name(kind)))
        except self._es.NotFoundError:
            return []

    def _create_version(self, kind: str, *, bulk_loading: bool) -> str:
        stamp = time.time_ns() // 1000
        name = f"{self.prefix}-{kind}-{stamp}"
        settings: dict[str, Any] = {"number_of_shards": 1, "analysis": _ANALYSIS}
        if bulk_loading:
            # No periodic refreshes while bulk-loading; one refresh at the end.
            settings["refresh_interval"] = "-1"
        self._writer.indices.create(index=name, settings=settings, mappings=_MAPPINGS[kind])
        return name

    def _publish(self, kind: str, name: str) -> None:
        """Make ``name`` searchable, swap the alias onto it, drop older versions."""
        writer = self._writer
        writer.indices.put_settings(index=name, settings={"index": {"refresh_interval": None}})
        writer.indices.refresh(index=name)
        alias = self.alias_name(kind)
        actions: list[dict[str, Any]] = [
            {"remove": {"index": old, "alias": alias}}
            for old in self._alias_targets(kind)
            if old != name
        ]
        actions.append({"add": {"index": name, "alias": alias}})
        # One call: readers see either the old or the new index, never none.
        writer.indices.update_aliases(actions=actions)
        # Best effort: the swap is done; a leftover is removed by the next one.
        with contextlib.suppress(self._es.TransportError, self._es.ApiError):
            self._drop_older_versions(kind, name)

    def _drop_older_versions(self, kind: str, name: str) -> None:
        match = self._version_re[kind].match(name)
        if match is None:  # pragma: no cover - names come from _create_version
            return
        # Only older versions: a newer one may be another process's rebuild
        # still being loaded.
        old = [n for stamp, n in self._versions(kind) if stamp < int(match.group(1))]
        if old:
            self._writer.indices.delete(index=",".join(old), ignore_unavailable=True)

    def _replace(
        self, kind: str, actions: Iterable[dict[str, Any]], progress: ProgressCallback | None = None
    ) -> str:
        batch_size = max(1, app_settings.INDEX_BATCH_SIZE)
        with self._guard(f"{kind} rebuild"):
            name = self._create_version(kind, bulk_loading=True)
            try:
                for batch in _batches(actions, batch_size):
                    for action in batch:
                        action["_index"] = name
                    self._helpers.bulk(self._writer, batch, chunk_size=batch_size, refresh=False)
                    if progress is not None:
                        progress(len(batch))
                self._publish(kind, name)
            except BaseException:
                with contextlib.suppress(Exception):
                    # Unless the swap went through after all (e.g. a timeout
                    # on the answer), the half-built version is garbage.
                    if name not in self._alias_targets(kind):
                        self._writer.indices.delete(index=name, ignore_unavailable=True)
                raise
        return name

    def _ensure_alias(self, kind: str) -> None:
        if self._writer.indices.exists_alias(name=self.alias_name(kind)):
            return
        name = self._create_version(kind, bulk_loading=False)
        self._publish(kind, name)

    # -- products -----------------------------------------------------------
    @staticmethod
    def _product_source(doc: ProductDocument) -> dict[str, Any]:
        return {
            "id": str(doc.id),
            "title": doc.title or "",
            "brand": " ".join((doc.brand or "").split()),
            "product_type": " ".join((doc.product_type or "").split()),
            "model_number": doc.model_number or "",
            "description": doc.description or "",
            "price": None if doc.price is None else float(doc.price),
            "doc": _jsonable(doc.as_dict()),
        }

    def rebuild_products(
        self, documents: Iterable[ProductDocument], progress: ProgressCallback | None = None
    ) -> str:
        actions = ({"_id": str(doc.id), "_source": self._product_source(doc)} for doc in documents)
        return self._replace(PRODUCTS, actions, progress)

    def _write_through_alias(
        self, kind: str, actions: list[dict[str, Any]], *, ignore_missing: bool
    ) -> None:
        alias = self.alias_name(kind)
        for action in actions:
            action["_index"] = alias
        with self._guard(f"{kind} write"):
            for attempt in range(2):
                _ok, errors = self._helpers.bulk(
                    self._writer,
                    actions,
                    chunk_size=max(1, app_settings.INDEX_BATCH_SIZE),
                    refresh="wait_for",
                    # Never let a write auto-create a concrete index named
                    # like the alias (it would block the alias forever).
                    require_alias=True,
                    raise_on_error=False,
                )
                real = [
                    e
                    for e in errors
                    if not (ignore_missing and _item(e).get("result") == "not_found")
                ]
                missing_alias = [e for e in real if _error_type(e) == "index_not_found_exception"]
                if missing_alias and attempt == 0 and not ignore_missing:
                    self._ensure_alias(kind)
                    continue
                if missing_alias and ignore_missing:
                    return  # nothing was ever indexed, so nothing to delete
                if real:
                    raise RecallUnavailable(f"Elasticsearch {kind} write failed: {real[:3]}")
                return

    def index_products(self, documents: Iterable[ProductDocument]) -> None:
        actions = [{"_id": str(doc.id), "_source": self._product_source(doc)} for doc in documents]
        if actions:
            self._write_through_alias(PRODUCTS, actions, ignore_missing=False)

    def delete_products(self, ids: Iterable[str]) -> None:
        actions = [{"_op_type": "delete", "_id": str(i)} for i in ids]
        if actions:
            self._write_through_alias(PRODUCTS, actions, ignore_missing=True)

    def search_products(
        self,
        query: str,
        filters: SearchFilters | None = None,
        offset: int = 0,
        limit: int = 20,
        boosts: SearchBoosts | None = None,
        synonyms: Mapping[str, Sequence[str]] | None = None,
    ) -> SearchResult:
        filters = filters or SearchFilters()
        boosts = boosts or SearchBoosts()
        bool_query: dict[str, Any] = {}
        if query.strip() and not has_searchable_text(query):
            if not filters:
                # The contract: text without a token matches nothing (the
                # cluster would say so too, zero_terms_query "none"; no round trip).
                return SearchResult(hits=[], total=0, brand_counts={})
            query = ""  # with filters: a filter-only search
        if query.strip() and synonyms:
            # Synonyms: the union of the query's variants; each variant's
            # every-word clause counts as the query's own.
            variants = query_variants(query, synonyms)
            common = {"type": "cross_fields", "fields": SEARCH_FIELDS}
            bool_query["must"] = [{"bool": {"should": [
                {"multi_match": {**common, "query": v, "operator": "or"}} for v in variants],
                "minimum_should_match": 1}}]
            bool_query["should"] = [{"dis_max": {"queries": [
                {"multi_match": {**common, "query": v, "operator": "and"}} for v in variants],
                "boost": ALL_WORDS_BOOST}}]
        elif query.strip():
            common = {"query": query, "type": "cross_fields", "fields": SEARCH_FIELDS}
            bool_query["must"] = [{"multi_match": {**common, "operator": "or"}}]
            bool_query["should"] = [
                {"multi_match": {**common, "operator": "and", "boost": ALL_WORDS_BOOST}}
            ]
        else:
            bool_query["must"] = [{"match_all": {}}]
        for field, values in (
            ("brand.key", boosts.brands),
            ("product_type.key", boosts.product_types),
        ):
            keys = sorted({_key(v) for v in values if _key(v)})
            if keys:
                bool_query.setdefault("should", []).append(
                    {"constant_score": {"filter": {"terms": {field: keys}}, "boost": float(boosts.weight)}}
                )
        filter_clauses = _filter_clauses(filters)
        if filter_clauses:
            bool_query["filter"] = filter_clauses
        with self._guard("search"):
            try:
                response = self._client.search(
                    index=self.alias_name(PRODUCTS),
                    query={"bool": bool_query},
                    from_=max(0, int(offset)),
                    size=max(0, int(limit)),
                    track_total_hits=True,
                    source=["doc"],
                    aggs={
                        "brands": {
                            "terms": {"field": "brand.key", "size": self.facet_size},
                            "aggs": {"display": {"terms": {"field": "brand.raw", "size": 1}}},
                        }
                    },
                )
            except self._es.NotFoundError:
                return SearchResult(hits=[], total=0, brand_counts={})
        hits = []
        for hit in response["hits"]["hits"]:
            document = ProductDocument.from_dict(hit["_source"]["doc"])
            hits.append(
                SearchHit(id=document.id, score=float(hit.get("_score") or 0.0), document=document)
            )
        total = response["hits"]["total"]
        total = total["value"] if isinstance(total, dict) else int(total)
        brand_counts: dict[str, int] = {}
        for bucket in response.get("aggregations", {}).get("brands", {}).get("buckets", []):
            if not bucket["key"]:
                continue
            display = bucket.get("display", {}).get("buckets") or [{"key": bucket["key"]}]
            brand_counts[str(display[0]["key"])] = int(bucket["doc_count"])
        return SearchResult(hits=hits, total=int(total), brand_counts=brand_counts)

    # -- vectors -------------------------------------------------------------
    #: Seconds a process trusts what it learnt of the vector fields (searches
    #: would otherwise ask the cluster for the mapping every time).
    VECTOR_FIELD_TTL = 30.0

    def _has_vector_field(self, model: str, *, fresh: bool = False) -> bool:
        field = _vector_field(model)
        known = self._vector_fields.get(field)
        if known is not None and not fresh and time.monotonic() - known[0] < self.VECTOR_FIELD_TTL:
            return known[1]
        try:
            mapping = self._client.indices.get_mapping(index=self.alias_name(PRODUCTS))
            present = any(field in (body.get("mappings", {}).get("properties") or {}) for body in mapping.values())
        except self._es.NotFoundError:
            present = False
        self._vector_fields[field] = (time.monotonic(), present)
        return present

    def store_vectors(self, model: str, ids: Sequence[str], vectors: Any, *, replace: bool = False) -> int:
        rows = [[float(x) for x in row] for row in vectors]
        ids = [str(i) for i in ids]
        if len(rows) != len(ids):
            raise ValueError(f"{len(ids)} ids need {len(ids)} vectors, got {len(rows)}")
        field = _vector_field(model)
        with self._guard("vector write"):
            if not self._writer.indices.exists_alias(name=self.alias_name(PRODUCTS)):
                return 0
            if rows and not self._has_vector_field(model, fresh=True):
                # Dense vectors need their dimension up front; the field is added
                # to the live index (mappings only grow) and to later versions.
                self._writer.indices.put_mapping(index=self.alias_name(PRODUCTS), properties={
                    field: {"type": "dense_vector", "dims": len(rows[0]), "index": True, "similarity": "cosine"}})
                self._vector_fields[field] = (time.monotonic(), True)
            actions: list[dict[str, Any]] = [
                {"_op_type": "update", "_id": doc_id, "doc": {field: row}} for doc_id, row in zip(ids, rows, strict=True)]
            if replace:
                given = set(ids)
                actions += [{"_op_type": "update", "_id": doc_id, "doc": {field: None}}
                            for doc_id in self.vector_ids(model) - given]
            stored = 0
            for batch in _batches(actions, max(1, app_settings.INDEX_BATCH_SIZE)):
                for action in batch:
                    action["_index"] = self.alias_name(PRODUCTS)
                _ok, errors = self._helpers.bulk(self._writer, batch, refresh="wait_for", raise_on_error=False)
                failed = [e for e in errors if _item(e).get("status") != 404]
                if failed:
                    raise RecallUnavailable(f"Elasticsearch vector write failed: {failed[:3]}")
                missing = {_item(e).get("_id") for e in errors}
                stored += sum(1 for a in batch if a["doc"][field] is not None and a["_id"] not in missing)
        return stored

    def search_vectors(self, model: str, vector: Any, filters: SearchFilters | None = None,
                       limit: int = 50) -> SearchResult:
        if limit <= 0:
            return SearchResult(hits=[], total=0, brand_counts={})
        knn: dict[str, Any] = {"field": _vector_field(model), "query_vector": [float(x) for x in vector],
                               "k": int(limit), "num_candidates": max(100, int(limit) * 4)}
        clauses = _filter_clauses(filters or SearchFilters())
        if clauses:
            knn["filter"] = clauses
        with self._guard("vector search"):
            if not self._has_vector_field(model):
                return SearchResult(hits=[], total=0, brand_counts={})
            try:
                response = self._client.search(index=self.alias_name(PRODUCTS), knn=knn, size=int(limit),
                                               source=["doc"])
            except self._es.NotFoundError:
                return SearchResult(hits=[], total=0, brand_counts={})
        hits = []
        for hit in response["hits"]["hits"]:
            document = ProductDocument.from_dict(hit["_source"]["doc"])
            # Elasticsearch scores cosine kNN as (1 + cos) / 2: report the cosine.
            hits.append(SearchHit(id=document.id, score=2.0 * float(hit.get("_score") or 0.0) - 1.0,
                                  document=document))
        return SearchResult(hits=hits, total=len(hits), brand_counts={})

    def count_vectors(self, model: str) -> int:
        with self._guard("vector count"):
            if not self._has_vector_field(model, fresh=True):
                return 0
            response = self._client.count(index=self.alias_name(PRODUCTS),
                                          query={"exists": {"field": _vector_field(model)}})
        return int(response["count"])

    def vector_ids(self, model: str) -> set[str]:
        with self._guard("vector ids"):
            if not self._has_vector_field(model, fresh=True):
                return set()
            return {hit["_id"] for hit in self._helpers.scan(
                self._client, index=self.alias_name(PRODUCTS), query={"query": {"exists": {"field": _vector_field(model)}}},
                _source=False)}

    def count_products(self) -> int:
        with self._guard("count"):
            try:
                return int(self._client.count(index=self.alias_name(PRODUCTS))["count"])
            except self._es.NotFoundError:
                return 0

    # -- suggestions --------------------------------------------------------
    def replace_suggestions(self, entries: Iterable[SuggestionEntry]) -> None:
        best: dict[str, SuggestionEntry] = {}
        for entry in entries:
            key = normalize_query(entry.text)
            if key and (key not in best or entry.weight > best[key].weight):
                best[key] = entry
        with_pinyin = pinyin_enabled(self)

        def source(key: str, entry: SuggestionEntry) -> dict[str, Any]:
            doc = {
                "suggest": {"input": [key], "weight": _completion_weight(entry.weight)},
                "key": key,
                "text": entry.text,
                "source": entry.source or "",
                "weight": float(entry.weight),
            }
            keys = index_keys(key) if with_pinyin else None
            if keys:
                weight = _completion_weight(entry.weight)
                doc["suggest_pinyin"] = {"input": list(keys.full), "weight": weight}
                doc["suggest_initials"] = {"input": list(keys.initials), "weight": weight}
                doc["pinyin"], doc["initials"] = list(keys.full), list(keys.initials)
            return doc

        self._replace(SUGGESTIONS, ({"_source": source(key, entry)} for key, entry in best.items()))

    def suggest(self, prefix: str, limit: int = 10, fuzzy: bool = False) -> list[SuggestionHit]:
        key = normalize_prefix(prefix)
        if not key or limit <= 0:
            return []
        completion = {"field": "suggest", "size": limit, "skip_duplicates": True}
        suggesters: dict[str, Any] = {"exact": {"prefix": key, "completion": completion}}
        if fuzzy:
            # The fuzzy suggester also returns exact matches and ranks by its
            # own score, so ask for more and re-rank by weight here.
            suggesters["near"] = {
                "prefix": key,
                "completion": {
                    **completion,
                    "size": 2 * limit + max(4 * limit, 20),
                    "fuzzy": {
                        "fuzziness": 1,
                        "transpositions": True,
                        "prefix_length": 0,
                        "min_length": 1,
                        "unicode_aware": True,
                    },
                },
            }
        typed = typed_key(key) if pinyin_enabled(self) else ""
        pinyin_search: dict[str, Any] = {}
        if typed:
            # No skip_duplicates: homophones share a key but are distinct suggestions.
            for name, field in (("pinyin", "suggest_pinyin"), ("initials", "suggest_initials")):
                suggesters[name] = {"prefix": typed, "completion": {"field": field, "size": limit}}
            pinyin_search = {
                "query": {"bool": {"should": [{"term": {"pinyin": typed}}, {"term": {"initials": typed}}]}},
                "size": 2 * limit,
                "sort": [{"weight": "desc"}],
            }
        with self._guard("suggest"):
            try:
                response = self._suggest_request(suggesters, pinyin_search)
            except self._es.NotFoundError:
                return []
        exact = sorted(
            (_suggestion_hit(option, fuzzy=False) for option in _options(response, "exact")),
            key=_by_weight,
        )[:limit]
        exact_ids = {option["_id"] for option in _options(response, "exact")}
        if typed:
            exact = self._with_pinyin(response, typed, exact, limit)
            exact_ids |= {option["_id"] for name in ("pinyin", "initials") for option in _options(response, name)}
            exact_ids |= {hit["_id"] for hit in response.get("hits", {}).get("hits", [])}
        if not fuzzy or len(exact) >= limit:
            return exact
        shown = {hit.text for hit in exact}
        near = sorted(
            (
                _suggestion_hit(option, fuzzy=True)
                for option in _options(response, "near")
                # Minus tier 1: what the exact suggester returned, and any key
                # that starts with the prefix (cut off by its size).
                if option["_id"] not in exact_ids
                and not option.get("_source", {}).get("key", "").startswith(key)
                and option.get("_source", {}).get("text", option.get("text", "")) not in shown
            ),
            key=_by_weight,
        )
        return exact + near[: limit - len(exact)]

    def _suggest_request(self, suggesters: dict[str, Any], pinyin_search: dict[str, Any]) -> dict[str, Any]:
        index = self.alias_name(SUGGESTIONS)
        fields = ["key", "text", "source", "weight"]
        if not pinyin_search:
            return self._client.search(index=index, suggest=suggesters, size=0, source=fields)
        try:
            return self._client.search(index=index, suggest=suggesters, source=[*fields, "pinyin", "initials"],
                                       **pinyin_search)
        except self._es.BadRequestError:
            # An index built before the pinyin fields existed: ask without them.
            plain = {name: body for name, body in suggesters.items() if name not in ("pinyin", "initials")}
            return self._client.search(index=index, suggest=plain, size=0, source=fields)

    @staticmethod
    def _with_pinyin(response: dict[str, Any], typed: str, text_hits: list[SuggestionHit],
                     limit: int) -> list[SuggestionHit]:
        full_equal, initials_equal = [], []
        for hit in response.get("hits", {}).get("hits", []):
            source = hit.get("_source", {})
            found = _suggestion_hit(hit, fuzzy=False)
            if typed in (source.get("pinyin") or ()):
                full_equal.append(found)
            if typed in (source.get("initials") or ()):
                initials_equal.append(found)
        prefixed = {name: [_suggestion_hit(option, fuzzy=False) for option in _options(response, name)]
                    for name in ("pinyin", "initials")}
        return pinyin_order(limit, text_hits, full_equal, prefixed["pinyin"], initials_equal, prefixed["initials"])

    # -- health -------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - a health check answers, never raises
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def _filter_clauses(filters: SearchFilters) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for field, values in (
        ("brand.key", filters.brands),
        ("product_type.key", filters.product_types),
    ):
        keys = sorted({_key(v) for v in values if _key(v)})
        if keys:
            clauses.append({"terms": {field: keys}})
    if filters.min_price is not None or filters.max_price is not None:
        price: dict[str, float] = {}
        if filters.min_price is not None:
            price["gte"] = float(filters.min_price)
        if filters.max_price is not None:
            price["lte"] = float(filters.max_price)
        clauses.append({"range": {"price": price}})
    return clauses


def _vector_field(model: str) -> str:
    return f"vec_{vector_slug(model)}"


def _options(response: dict[str, Any], name: str) -> list[dict[str, Any]]:
    entries = response.get("suggest", {}).get(name) or []
    return [option for entry in entries for option in entry.get("options", [])]


def _suggestion_hit(option: dict[str, Any], *, fuzzy: bool) -> SuggestionHit:
    source = option.get("_source", {})
    return SuggestionHit(
        text=source.get("text", option.get("text", "")),
        weight=float(source.get("weight", 0.0)),
        source=source.get("source", "") or "",
        fuzzy=fuzzy,
    )


def _by_weight(hit: SuggestionHit) -> tuple[float, str]:
    # Equal weights: alphabetical, like the tantivy backend.
    return (-hit.weight, hit.text)


def _item(error: dict[str, Any]) -> dict[str, Any]:
    # helpers.bulk errors look like {"index": {...}} / {"delete": {...}}.
    return next(iter(error.values())) if error else {}


def _error_type(error: dict[str, Any]) -> str:
    detail = _item(error).get("error")
    return detail.get("type", "") if isinstance(detail, dict) else ""


def _jsonable(value: Any) -> Any:
    """Coerce values json cannot encode (Decimal, dates) to text, like the
    tantivy backend's ``json.dumps(default=str)``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


backend_class = ElasticsearchRecallBackend
