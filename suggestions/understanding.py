"""Query understanding for the request path and the workers.

Contracts:
* :func:`understand` never loads a model and never waits on a worker: it
  answers from the cache, else from the stored :class:`QueryUnderstanding`,
  else from the rules/gazetteer fallback, and then schedules the workers so the
  active model's answer replaces the fallback within seconds.
* Understandings are computed on the *normalised* query; entity offsets refer
  to it (``Understanding.query``).
* Workers (tasks ``suggestions.ml.*``) call :func:`understand_pending` and
  :func:`reunderstand`, which run the active model in batches
  (:mod:`suggestions.ml.understanding.registry` imports torch: only workers reach it). Without
  an active model, or without the ``[ml]`` extra, they store the rules' answer.
* A merchandiser's label (:class:`QueryLabel`) overrides every prediction for
  its query, on the request path at once and in later worker runs.
* A stored understanding lives as long as some search event has its query, or
  a label: :func:`forget_unsearched` deletes the others and their cache entries
  (a shopper's erasure, retention). Labels are the shop's reviewed data and are
  deleted only by a merchandiser.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from django.core.cache import caches
from django.db import transaction
from django.db.models import Exists, OuterRef

from . import signals
from .conf import app_settings
from .models import QueryLabel, QueryUnderstanding, SearchEvent
from .nlp.types import Entity, Understanding
from .text import normalize_query

logger = logging.getLogger(__name__)

#: Seconds a fallback (rules) answer stays cached: short, so the model's answer
#: stored by a worker is picked up soon even where the cache is per process.
FALLBACK_CACHE_TIMEOUT = 60
_DRAIN_LOCK_KEY = "shop_suggestions:u:drain-scheduled"
#: Seconds between two drains asked for by any process (the cache lock).
_DRAIN_INTERVAL = 2


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _key(normalized: str) -> str:
    return "shop_suggestions:u:" + hashlib.blake2b(normalized.encode(), digest_size=16).hexdigest()


def _cache_get(normalized: str) -> dict | None:
    try:
        return _cache().get(_key(normalized))
    except Exception:  # noqa: BLE001 - a cache outage only costs a database read
        return None


def _cache_set(normalized: str, data: dict, timeout: int) -> None:
    try:
        _cache().set(_key(normalized), data, timeout)
    except Exception:  # noqa: BLE001
        logger.warning("suggestions: cache unavailable, understanding not cached")


def forget_unsearched(queries: Iterable[str] | None = None, *, batch: int = 500) -> int:
    """Delete stored understandings that no search event has any more (and no
    label holds), and their cache entries once the transaction commits.

    Args:
        queries: Normalised queries to consider (an erased shopper's); None
            considers every stored understanding (retention).
        batch: Queries per database round trip.

    Returns:
        The number of :class:`QueryUnderstanding` rows deleted.
    """
    rows = QueryUnderstanding.objects.filter(
        ~Exists(SearchEvent.objects.filter(normalized_query=OuterRef("normalized_query"))),
        ~Exists(QueryLabel.objects.filter(normalized_query=OuterRef("normalized_query"))),
    )
    if queries is None:
        orphans = list(rows.values_list("normalized_query", flat=True))
    else:
        wanted = sorted(set(queries))
        orphans = [q for start in range(0, len(wanted), batch)
                   for q in rows.filter(normalized_query__in=wanted[start:start + batch])
                   .values_list("normalized_query", flat=True)]
    deleted = 0
    for start in range(0, len(orphans), batch):
        chunk = orphans[start:start + batch]
        deleted += QueryUnderstanding.objects.filter(normalized_query__in=chunk).delete()[0]
    # Also the key of queries never stored: the rules' answer is cached too.
    keys = [_key(q) for q in (orphans if queries is None else set(queries) - _still_searched(queries))]

    def drop_cached() -> None:
        try:
            _cache().delete_many(keys)
        except Exception:  # noqa: BLE001
            logger.warning("suggestions: cache unavailable, erased understandings expire by timeout only")

    if keys:
        # After commit: a request reading the row before the deletion commits
        # would otherwise put it back in the cache for a week.
        transaction.on_commit(drop_cached)
    return deleted


def _still_searched(queries: Iterable[str]) -> set[str]:
    wanted = sorted(set(queries))
    return {q for start in range(0, len(wanted), 500)
            for q in SearchEvent.objects.filter(normalized_query__in=wanted[start:start + 500])
            .values_list("normalized_query", flat=True).distinct()}


def rules_understanding(normalized: str) -> Understanding:
    """The cheap synchronous answer (gazetteer + rules), no model."""
    from .nlp.rules import understand_with_rules

    return understand_with_rules(normalized)


def understand(query: str, *, schedule: bool = True) -> Understanding:
    """What a query means, fast. See the module contract."""
    normalized = normalize_query(query)
    if not normalized:
        raise ValueError("Cannot understand an empty query.")
    cached = _cache_get(normalized)
    if cached is not None:
        return Understanding.from_dict(cached)
    stored = QueryUnderstanding.objects.filter(normalized_query=normalized).values_list("data", flat=True).first()
    if stored:
        _cache_set(normalized, stored, app_settings.UNDERSTANDING_CACHE_TIMEOUT)
        return Understanding.from_dict(stored)
    result = rules_understanding(normalized)
    _cache_set(normalized, result.as_dict(), FALLBACK_CACHE_TIMEOUT)
    if schedule:
        schedule_understanding()
    return result


def schedule_understanding() -> None:
    """Ask the workers to understand pending queries (at most once per 2 s, shop-wide).

    Announces :data:`~suggestions.signals.understanding_requested`; the app's receiver
    sends the task once the transaction commits (this module never imports the tasks,
    which call back into it).
    """
    # Every search touches the cache (the drain lock) or the broker: a per-process
    # "asked a moment ago" shortcut saved that round trip, but hid an outage from
    # the searches in its window (their answers must say degraded).
    try:
        first = _cache().add(_DRAIN_LOCK_KEY, 1, timeout=_DRAIN_INTERVAL)
    except Exception:  # noqa: BLE001 - without a cache, schedule every time
        first = True
    if first:
        signals.understanding_requested.send(sender=schedule_understanding)


# -- labels ---------------------------------------------------------------------------


def label_to_understanding(label: QueryLabel, base: Understanding | None = None) -> Understanding:
    """A merchandiser's label as an :class:`Understanding` of the normalised query."""
    query = normalize_query(label.query)
    base = base or rules_understanding(query)
    entities = []
    for ent in label.entities or []:
        start, end = int(ent["start"]), int(ent["end"])
        # Labels are written against label.query; re-anchor on the normalised form.
        norm_text = normalize_query(label.query[start:end])
        found = query.find(norm_text) if norm_text else -1
        if found < 0:
            continue
        entities.append(Entity(label=str(ent["label"]), text=norm_text, start=found,
                               end=found + len(norm_text), value=str(ent.get("value") or norm_text), score=1.0))
    return Understanding(query=query, language=base.language, intent=label.intent or base.intent,
                         confidence=1.0 if label.intent else base.confidence,
                         entities=tuple(sorted(entities, key=lambda e: e.start)), source="label",
                         tokens=base.tokens)


def save_label(*, query: str, intent: str, entities: list[dict], source: str, user=None) -> QueryLabel:
    """Store a reviewed label and apply it to the stored/cached understanding at once."""
    normalized = normalize_query(query)
    label = QueryLabel.objects.filter(normalized_query=normalized).first() or QueryLabel(normalized_query=normalized)
    label.query, label.intent, label.entities, label.source = query, intent, entities, source
    label.reviewed_by = user if getattr(user, "is_authenticated", False) else None
    # Validate before writing: a bad span raises ValidationError and stores nothing.
    label.full_clean(validate_unique=False)
    with transaction.atomic():
        label.save()
        store_understandings([label_to_understanding(label)])
    signals.query_labelled.send(sender=QueryLabel, label=label)
    return label


# -- workers --------------------------------------------------------------------------


def _active_model():
    try:
        from .ml.understanding.registry import active_model
    except ImportError:  # the [ml] extra is not installed
        return None
    return active_model()


def understand_batch(queries: list[str]) -> list[Understanding]:
    """Understand normalised queries with the active model (rules without one);
    merchandisers' labels win."""
    labels = {lab.normalized_query: lab for lab in QueryLabel.objects.filter(normalized_query__in=queries)}
    todo = [q for q in queries if q not in labels]
    model = _active_model() if todo else None
    if model is not None:
        predicted = dict(zip(todo, model.predict(todo, batch_size=app_settings.UNDERSTANDING_BATCH_SIZE), strict=True))
    else:
        predicted = {q: rules_understanding(q) for q in todo}
    return [label_to_understanding(labels[q]) if q in labels else predicted[q] for q in queries]


def store_understandings(results: Iterable[Understanding]) -> int:
    """Persist understandings, fill the search events still without one, refresh the cache."""
    n = 0
    for u in results:
        data = u.as_dict()
        QueryUnderstanding.objects.update_or_create(
            normalized_query=u.query,
            defaults={"query": u.query, "language": u.language, "intent": u.intent,
                      "confidence": u.confidence, "data": data, "source": u.source},
        )
        SearchEvent.objects.filter(normalized_query=u.query, understanding__isnull=True).update(understanding=data)
        _cache_set(u.query, data, app_settings.UNDERSTANDING_CACHE_TIMEOUT)
        n += 1
    return n


def current_source() -> str:
    """``source`` of answers from the active understanding model (``rules`` without one)."""
    from .models import ModelVersion, ModelVersionStatus

    version = (ModelVersion.objects.filter(kind="understanding", status=ModelVersionStatus.ACTIVE)
               .values_list("version", flat=True).first())
    return f"model:{version}" if version else "rules"


def understand_pending(*, limit: int = 1000) -> int:
    """Understand the queries of search events that have none yet, newest first.

    Queries already understood by the active model (or labelled) are copied onto
    their events without running the model again.
    """
    pending: list[str] = []
    rows = (SearchEvent.objects.filter(understanding__isnull=True).exclude(normalized_query="")
            .order_by("-created_at").values_list("normalized_query", flat=True)[: limit * 5])
    for q in rows:
        if q not in pending:
            pending.append(q)
            if len(pending) == limit:
                break
    if not pending:
        return 0
    fresh_sources = {current_source(), "label"}
    known = {q: data for q, data, source in QueryUnderstanding.objects.filter(normalized_query__in=pending)
             .values_list("normalized_query", "data", "source") if source in fresh_sources}
    for q, data in known.items():
        SearchEvent.objects.filter(normalized_query=q, understanding__isnull=True).update(understanding=data)
    todo = [q for q in pending if q not in known]
    return len(known) + (store_understandings(understand_batch(todo)) if todo else 0)


def reunderstand(*, batch: int = 512) -> int:
    """Re-run every stored understanding (after the active model changed)."""
    done = 0
    queries = list(QueryUnderstanding.objects.order_by("pk").values_list("normalized_query", flat=True))
    for start in range(0, len(queries), batch):
        done += store_understandings(understand_batch(queries[start:start + batch]))
    return done
