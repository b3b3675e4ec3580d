"""Serving suggestions on the request path.

Contracts:
* :func:`suggest` answers from the cache, else from the recall backend, else
  (backend down) from the database, and never raises because the cache or the
  backend is down: it sets ``degraded`` instead. Degraded answers are not cached.
* Order: the shopper's own recent searches, then suggestions pinned for the
  typed prefix, then the active suggestion ranker's order of the prefix's
  candidates (precomputed by the workers; absent without a promoted ranker
  and for prefixes past its length), then exact-prefix completions by
  weight, then (prefixes of ``SUGGESTIONS_FUZZY_MIN_PREFIX_LENGTH``+
  characters) one-edit completions.
* Blocked terms are removed when suggestions are published *and* when they are
  served, so a stale engine or cache cannot show a term blocked since. Each
  term is checked on its own (:class:`BlockedTermMatcher`) and matched with
  RE2 in time linear in the text; a stored term that cannot be served (RE2
  cannot compile it, or nothing is left once normalised) is skipped with a
  logged warning, never an error for the request.
* :func:`publish_suggestions` pushes the approved set to the recall backend and
  invalidates every cached answer by changing the cache version.
* Hot answers are also kept in process memory, keyed by the cache version, which
  each process re-reads from the shared cache at most every
  ``SUGGESTIONS_LOCAL_CACHE_SECONDS``: a change made in another process shows
  within that delay (in the same process at once). On a local hit the request
  touches neither the shared cache nor the database.
* A shopper in a running experiment (:mod:`suggestions.experiments`) is served
  their arm's precomputed order (or the team draft of both) in place of the
  active ranker's; the answer cache key carries the arm.
* Personal re-ranking (:mod:`suggestions.personal`) is applied to the shared
  answer per request, after the cache, from the profile the caller passes
  (the API: the shopper's signed cookie): it reads no database and makes no
  cache call.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import re2
from django.core.cache import caches
from django.core.signals import setting_changed

from . import experiments, metrics, personal
from .conf import app_settings
from .history import recent_queries
from .models import (
    BlockedTerm,
    BlockedTermKind,
    RankedPrefix,
    Suggestion,
    SuggestionStatus,
    re2_options,
    regex_forms,
)
from .recall import RecallUnavailable, SuggestionEntry, get_backend
from .text import contains_word, match_key, new_request_id, normalize_prefix

logger = logging.getLogger(__name__)

VERSION_KEY = "shop_suggestions:version"


@dataclass(frozen=True)
class SuggestionItem:
    text: str
    kind: str  # "recent" | "pinned" | "suggestion"
    source: str
    fuzzy: bool = False


@dataclass(frozen=True)
class SuggestResult:
    prefix: str
    request_id: str
    items: list[SuggestionItem]
    degraded: bool
    #: Why ``degraded`` is true: ``"cache"`` (the shared cache could not be read
    #: or written) and/or ``"recall"`` (the search engine was down: the answer
    #: comes from the database). Empty when it is false.
    degraded_reasons: tuple[str, ...] = ()


class BlockedTermMatcher:
    """Tests texts against a set of blocked terms, by the rule of
    :meth:`BlockedTerm.matches <suggestions.models.BlockedTerm.matches>`.

    Each term is checked on its own (:meth:`BlockedTerm.compile
    <suggestions.models.BlockedTerm.compile>`), so a term that cannot be
    served, for example one stored before validation used RE2 or written by
    bulk SQL, is skipped with a logged warning instead of breaking the others.
    Words and phrases are searched together as literals in one RE2 ``Set``
    (a word hit is then checked for whole-word boundaries), regular
    expressions in another; a set RE2 cannot build within its memory budget
    falls back to searching its terms one by one.

    Args:
        terms: The blocked terms.
    """

    def __init__(self, terms: Iterable[BlockedTerm]) -> None:
        self.skipped: list[BlockedTerm] = []
        literals: list[tuple[str, bool]] = []  # (literal, whole word)
        regexes: list[tuple[str, object]] = []  # (pattern, compiled)
        for term in terms:
            try:
                compiled = term.compile()
            except ValueError as exc:
                logger.warning("suggestions: blocked term %r (%s, id %s) skipped: %s",
                               term.pattern, term.kind, term.pk, exc)
                self.skipped.append(term)
                continue
            if term.kind == BlockedTermKind.REGEX:
                regexes.append((term.pattern, compiled))
            else:
                literals.append((compiled, term.kind == BlockedTermKind.WORD))
        self.size = len(literals) + len(regexes)
        self._literals = literals
        self._literal_set = _build_set([lit for lit, _word in literals], _literal_options())
        self._regexes = [compiled for _pattern, compiled in regexes]
        self._regex_set = _build_set([pattern for pattern, _compiled in regexes], re2_options())

    def __len__(self) -> int:
        return self.size

    def search(self, text: str) -> bool:
        """Whether any term blocks ``text``."""
        if not self.size:
            return False
        key = match_key(text)
        if self._literals and self._literal_hit(key):
            return True
        if self._regexes:
            return any(self._regex_hit(form) for form in regex_forms(text, key))
        return False

    def _literal_hit(self, key: str) -> bool:
        if self._literal_set is not None:
            candidates = (self._literals[i] for i in self._literal_set.Match(key) or ())
        else:
            candidates = (item for item in self._literals if item[0] in key)
        return any(not word or contains_word(key, literal) for literal, word in candidates)

    def _regex_hit(self, form: str) -> bool:
        if self._regex_set is not None:
            return self._regex_set.Match(form) is not None
        return any(compiled.search(form) for compiled in self._regexes)


def _literal_options() -> re2.Options:
    options = re2.Options()
    options.literal = True
    options.log_errors = False
    return options


def _build_set(patterns: list[str], options: re2.Options):
    """An RE2 ``Set`` searching all ``patterns`` at once; ``None`` when there
    are none or RE2 cannot build it (the caller then loops)."""
    if not patterns:
        return None
    candidate = re2.Set.SearchSet(options)
    try:
        for pattern in patterns:
            candidate.Add(pattern)
        candidate.Compile()
    except re2.error:
        logger.warning("suggestions: %d blocked terms exceed RE2's set memory; matching them one by one",
                       len(patterns))
        return None
    return candidate


class _BlockedTerms:
    """The blocked-term matcher, built once per suggestions version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._matcher: BlockedTermMatcher | None = None

    def matcher(self, version: str | None) -> BlockedTermMatcher:
        if version is not None and version == self._version and self._matcher is not None:
            return self._matcher
        matcher = BlockedTermMatcher(BlockedTerm.objects.all())
        with self._lock:
            self._version, self._matcher = version, matcher
        return matcher


_blocked = _BlockedTerms()


class _LocalState:
    """Per-process memo of the shared cache version, hot answers and pinned
    suggestions. Everything in it is keyed by the version, so a new version
    (publish, moderation) makes all of it stale at once."""

    MAX_ANSWERS = 20_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: str | None = None
        self.checked_at = 0.0
        self.answers: OrderedDict[str, list[SuggestionItem]] = OrderedDict()
        self.pinned_version: str | None = None
        self.pinned: dict[str, list[tuple[str, str, float]]] = {}
        self.approved_version: str | None = None
        self.approved: frozenset[str] | None = None
        self.ranked_version: str | None = None
        self.ranked: dict[str, list] | None = None

    def reset(self) -> None:
        with self.lock:
            self.version, self.checked_at = None, 0.0
            self.answers.clear()
            self.pinned_version, self.pinned = None, {}
            self.approved_version, self.approved = None, None
            self.ranked_version, self.ranked = None, None

    def get_answer(self, key: str) -> list[SuggestionItem] | None:
        with self.lock:
            items = self.answers.get(key)
            if items is not None:
                self.answers.move_to_end(key)
            return items

    def put_answer(self, key: str, items: list[SuggestionItem]) -> None:
        with self.lock:
            self.answers[key] = items
            if len(self.answers) > self.MAX_ANSWERS:
                self.answers.popitem(last=False)


_local = _LocalState()


def reset_local_state() -> None:
    """Forget this process's memo of versions, answers and pinned suggestions."""
    _local.reset()
    experiments.reset_memo()


def _on_setting_changed(*, setting: str, **_: object) -> None:
    if setting == "CACHES" or setting.startswith("SUGGESTIONS_"):
        _local.reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="suggestions.serving.reset_local_state")


def blocked_matcher(version: str | None = None) -> BlockedTermMatcher:
    """The matcher of every blocked term, rebuilt when ``version`` (the cache
    version) changes; ``None`` rebuilds it from the database now."""
    return _blocked.matcher(version)


def current_blocked_matcher() -> BlockedTermMatcher:
    """The matcher for the current cache version, as :func:`suggest` uses it
    (built once per version, not once per call); rebuilt from the database
    when the shared cache is down."""
    try:
        version = _current_version()
    except Exception:  # noqa: BLE001 - a cache outage must not fail the caller
        version = None
    return _blocked.matcher(version)


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _shared_version() -> str:
    """The version in the shared cache; raises when the cache is down."""
    cache = _cache()
    version = cache.get(VERSION_KEY)
    if version is None:
        version = uuid.uuid4().hex
        cache.add(VERSION_KEY, version, timeout=None)
        version = cache.get(VERSION_KEY) or version
    return version


def _current_version() -> str:
    """The cache version, re-read from the shared cache at most every
    ``SUGGESTIONS_LOCAL_CACHE_SECONDS``; raises when the cache is down."""
    interval = app_settings.LOCAL_CACHE_SECONDS
    now = time.monotonic()
    if interval > 0 and _local.version is not None and now - _local.checked_at < interval:
        return _local.version
    version = _shared_version()
    with _local.lock:
        if version != _local.version:
            _local.answers.clear()
        _local.version, _local.checked_at = version, now
    return version


def invalidate_cache() -> bool:
    """Give every cached answer a new version. False when the cache is down."""
    _local.reset()
    try:
        _cache().set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
        return True
    except Exception:  # noqa: BLE001 - any cache client error means "down"
        logger.warning("suggestions: cache unavailable, cached answers expire by timeout only", exc_info=True)
        return False


def served_entries() -> list[SuggestionEntry]:
    """Approved suggestions minus blocked terms: what the backend should serve."""
    blocked = blocked_matcher(None)
    entries = []
    for text, weight, source in Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", "weight", "source"):
        if not blocked.search(text):
            entries.append(SuggestionEntry(text=text, weight=weight, source=source))
    return entries


def publish_suggestions(backend_alias: str = "default") -> int:
    """Push the served set to the recall backend and invalidate cached answers.

    Raises :class:`RecallUnavailable` when the backend is down (tasks retry).
    Returns the number of suggestions served.
    """
    entries = served_entries()
    get_backend(backend_alias).replace_suggestions(entries)
    invalidate_cache()
    return len(entries)


def _pinned(prefix: str, version: str | None) -> list[tuple[str, str]]:
    """Approved suggestions pinned for a head of ``prefix`` that complete it.

    Pinned rows are few: they are loaded once per cache version (one query),
    not once per keystroke.
    """
    if version is not None and _local.pinned_version == version:
        pinned = _local.pinned
    else:
        pinned = {}
        rows = (Suggestion.objects.filter(status=SuggestionStatus.APPROVED).exclude(pinned_prefix="")
                .values_list("pinned_prefix", "text", "source", "weight"))
        for pinned_prefix, text, source, weight in rows:
            pinned.setdefault(pinned_prefix, []).append((text, source, weight))
        if version is not None:
            with _local.lock:
                _local.pinned_version, _local.pinned = version, pinned
    found = [row for i in range(1, len(prefix) + 1) for row in pinned.get(prefix[:i], ())
             if row[0].startswith(prefix)]
    return [(text, source) for text, source, _w in sorted(found, key=lambda r: -r[2])]


#: Up to this many approved suggestions, each process keeps their texts in memory
#: (one query per cache version) to check a precomputed order against; past it,
#: each ranked answer asks the database.
APPROVED_MEMO_LIMIT = 200_000


def _approved_texts(version: str | None) -> frozenset[str] | None:
    """Every approved suggestion's text for this cache version, or None (no
    version, or more than :data:`APPROVED_MEMO_LIMIT` of them)."""
    if version is None:
        return None
    if _local.approved_version == version:
        return _local.approved
    approved = Suggestion.objects.filter(status=SuggestionStatus.APPROVED)
    texts = list(approved.values_list("text", flat=True)[: APPROVED_MEMO_LIMIT + 1])
    memo = frozenset(texts) if len(texts) <= APPROVED_MEMO_LIMIT else None
    with _local.lock:
        _local.approved_version, _local.approved = version, memo
    return memo


#: Up to this many precomputed prefix orders, each process holds them all in
#: memory (one query per cache version: a refresh of the orders is a new
#: version); past it, each ranked answer reads its prefix's row.
RANKED_MEMO_LIMIT = 50_000


def _ranked_rows(version: str | None) -> dict[str, list] | None:
    """Every precomputed order by prefix for this cache version, or None (no
    version, or more than :data:`RANKED_MEMO_LIMIT` of them)."""
    if version is None:
        return None
    if _local.ranked_version == version:
        return _local.ranked
    rows = list(RankedPrefix.objects.values_list("prefix", "texts")[: RANKED_MEMO_LIMIT + 1])
    memo = dict(rows) if len(rows) <= RANKED_MEMO_LIMIT else None
    with _local.lock:
        _local.ranked_version, _local.ranked = version, memo
    return memo


def _ranked(prefix: str, version: str | None = None) -> list[SuggestionItem]:
    """The active suggestion ranker's order for ``prefix`` (precomputed by the
    workers, :class:`RankedPrefix`), restricted to what is approved now, so a
    suggestion moderated since the last precomputation is never served (a
    moderation change is a new cache ``version``)."""
    memo = _ranked_rows(version)
    if memo is not None:
        row = memo.get(prefix)
    else:
        row = RankedPrefix.objects.filter(prefix=prefix).values_list("texts", flat=True).first()
    if not row:
        return []
    approved = _approved_texts(version)
    if approved is None:
        approved = set(Suggestion.objects.filter(status=SuggestionStatus.APPROVED, text__in=[t for t, _s in row])
                       .values_list("text", flat=True))
    return [SuggestionItem(text, "suggestion", source) for text, source in row if text in approved]


def _compute(prefix: str, limit: int, backend_alias: str, version: str | None,
             arm=None) -> tuple[list[SuggestionItem], bool]:
    """Pinned, then ranked (or engine) completions for ``prefix`` (no personal part).
    In an experiment (``arm``, :class:`~suggestions.experiments.ServingArm`) the
    arm's order replaces the active ranker's."""
    items = [SuggestionItem(text, "pinned", source) for text, source in _pinned(prefix, version)]
    # The learned order leads; the engine's completions (and one-edit ones)
    # fill what it does not cover.
    if arm is None:
        items += _ranked(prefix, version)
    else:
        items += [SuggestionItem(text, "suggestion", source) for text, source in arm.ranked(prefix)]
    fuzzy = len(prefix) >= app_settings.FUZZY_MIN_PREFIX_LENGTH
    # Ask for more than needed: blocked and pinned duplicates are dropped after.
    want = limit + len(items) + 5
    degraded = False
    try:
        hits = get_backend(backend_alias).suggest(prefix, limit=want, fuzzy=fuzzy)
        # One-edit completions help a mistyped prefix ("cabel"), not one that
        # already has completions of its own ("mouse" must not offer "house…").
        exact = len({i.text for i in items} | {h.text for h in hits if not h.fuzzy})
        keep_fuzzy = exact < app_settings.FUZZY_FILL_BELOW
        items += [SuggestionItem(h.text, "suggestion", h.source, h.fuzzy) for h in hits if keep_fuzzy or not h.fuzzy]
    except RecallUnavailable:
        logger.warning("suggestions: recall backend %r unavailable, answering from the database", backend_alias)
        degraded = True
        rows = (Suggestion.objects.filter(status=SuggestionStatus.APPROVED, text__startswith=prefix)
                .order_by("-weight").values_list("text", "source")[:want])
        items += [SuggestionItem(text, "suggestion", source) for text, source in rows]
    return items, degraded


def _dedupe(items: list[SuggestionItem], blocked: BlockedTermMatcher, limit: int) -> list[SuggestionItem]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.text in seen or (item.kind != "recent" and blocked.search(item.text)):
            continue
        seen.add(item.text)
        out.append(item)
        if len(out) == limit:
            break
    return out


def suggest(prefix: str, *, limit: int, user=None, session_key: str | None = None,
            backend_alias: str = "default", recent: list[str] | None = None,
            profile: personal.Profile | None = None) -> SuggestResult:
    """Suggestions for what the shopper has typed so far. See the module contract.

    ``recent``: the shopper's recent queries, newest first, when the caller has
    them (the API reads them from the shopper's cookie, :mod:`suggestions.recent`);
    ``None`` reads them from the history.

    ``profile``: the shopper's affinities (the API reads them from the
    shopper's profile cookie, :mod:`suggestions.personal`): completions of
    their brands and product types move up; None changes nothing."""
    normalized = normalize_prefix(prefix)
    request_id = new_request_id()
    if not normalized.strip():
        return SuggestResult(normalized, request_id, [], False)
    reasons: list[str] = []
    cache = _cache()
    key = None
    shared: list[SuggestionItem] | None = None
    version = None
    arm = None
    try:
        version = _current_version()
        # A running experiment serves the shopper's arm; answers are cached per arm.
        arm = experiments.serving_arm(user, session_key, version)
        digest = hashlib.blake2b(normalized.encode(), digest_size=16).hexdigest()
        key = f"shop_suggestions:{version}:{backend_alias}:{limit}:{digest}{arm.cache_tag if arm else ''}"
        shared = _local.get_answer(key)
        if shared is None:
            cached = cache.get(key)
            if cached is not None:
                shared = [SuggestionItem(*row) for row in cached]
                _local.put_answer(key, shared)
                metrics.count_suggest_answer("shared")
        else:
            metrics.count_suggest_answer("local")
    except Exception:  # noqa: BLE001 - a cache outage must not fail the request
        logger.warning("suggestions: cache unavailable", exc_info=True)
        reasons.append("cache")
        key = None
    blocked = blocked_matcher(version)
    if shared is None:
        computed, backend_down = _compute(normalized, limit, backend_alias, version, arm)
        metrics.count_suggest_answer("computed")
        shared = _dedupe(computed, blocked, limit)
        if backend_down:
            reasons.append("recall")
        if key is not None and not backend_down:
            _local.put_answer(key, shared)
            try:
                cache.set(key, [(i.text, i.kind, i.source, i.fuzzy) for i in shared], app_settings.CACHE_TIMEOUT)
            except Exception:  # noqa: BLE001
                if "cache" not in reasons:
                    reasons.append("cache")
    wanted = min(app_settings.RECENT_SEARCHES_LIMIT, limit)
    texts = ([t for t in recent if t.startswith(normalized)][:wanted] if recent is not None
             else recent_queries(normalized, user=user, session_key=session_key, limit=wanted))
    recents = [SuggestionItem(text, "recent", "recent") for text in texts]
    if profile and app_settings.PERSONALIZATION:
        shared = personal.rerank_suggestions(shared, profile)
    # The shared answer was deduplicated and filtered when it was computed, under
    # this version's blocked terms: only the shopper's own recent searches need it.
    items = _dedupe(recents + shared, blocked, limit) if recents else list(shared[:limit])
    return SuggestResult(normalized, request_id, items, bool(reasons), tuple(reasons))
