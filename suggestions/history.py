"""Search history: recording announced events, per-shopper listing and erasure,
bulk import of past searches, retention.

Contracts:
* Events are append-only. They are deleted only by retention
  (:func:`garbage_collect`) or by the shopper's own erase request
  (:func:`erase_history`).
* No raw identifier is stored: users and sessions become a salted
  ``actor_hash`` (:func:`actor_hash`); signed-in users are also linked by FK so
  that deleting the user deletes their events.
* Daily aggregates are updated with ``F()`` expressions, never read-modify-write.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .conf import app_settings
from .models import (
    ProductClick,
    QueryDailyStat,
    SearchEvent,
    SearchOrigin,
    SuggestionClick,
    SuggestionImpression,
)
from .text import hash_identifier, normalize_query

#: Namespace of the deterministic request ids given to imported searches, so
#: that importing the same file twice stores each search once.
IMPORT_NAMESPACE = uuid.UUID("1b0c5f1e-7d55-4c55-9d36-4c0d2b6f5a10")


def actor_hash(user=None, session_key: str | None = None) -> str:
    """Salted hash identifying a shopper: the user when signed in, else the
    session. Empty when neither is known (such events count no distinct user)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return hash_identifier(f"user:{user.pk}", app_settings.HASH_SALT)
    if session_key:
        return hash_identifier(f"session:{session_key}", app_settings.HASH_SALT)
    return ""


def _owner_filter(user=None, session_key: str | None = None) -> Q | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return Q(user=user) | Q(actor_hash=actor_hash(user=user))
    if session_key:
        return Q(actor_hash=actor_hash(session_key=session_key))
    return None


def _bump_daily(day: date, normalized_query: str, **increments: int) -> None:
    """Add ``increments`` to the day's counters for a query, creating the row."""
    updates = {name: F(name) + value for name, value in increments.items() if value}
    if not updates or not normalized_query:
        return
    if QueryDailyStat.objects.filter(date=day, normalized_query=normalized_query).update(**updates):
        return
    try:
        with transaction.atomic():
            QueryDailyStat.objects.create(date=day, normalized_query=normalized_query, **increments)
    except IntegrityError:
        # Another request created the row between our update and create.
        QueryDailyStat.objects.filter(date=day, normalized_query=normalized_query).update(**updates)


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


# -- receivers of the request-path signals --------------------------------------------


def record_search(*, query: str, normalized_query: str, results_count: int | None, origin: str,
                  request_id: str, user=None, session_key: str | None = None,
                  filters: dict | None = None, **_: object) -> SearchEvent:
    """Store one submitted search and count it in the daily aggregate."""
    now = timezone.now()
    event = SearchEvent.objects.create(
        created_at=now,
        query=query[:255],
        normalized_query=normalized_query[:255],
        results_count=results_count,
        origin=origin,
        request_id=request_id,
        actor_hash=actor_hash(user, session_key),
        user=_user_or_none(user),
        filters=filters or {},
    )
    _bump_daily(timezone.localdate(now), normalized_query[:255], searches=1,
                zero_results=1 if results_count == 0 else 0)
    return event


def record_impression(*, request_id: str, prefix: str, suggestions: list[str], user=None,
                      session_key: str | None = None, **_: object) -> None:
    SuggestionImpression.objects.create(
        request_id=request_id, prefix=normalize_query(prefix)[:255],
        suggestions=[normalize_query(s)[:255] for s in suggestions],
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    )


def record_suggestion_click(*, request_id: str, prefix: str, suggestion: str, position: int,
                            user=None, session_key: str | None = None, **_: object) -> None:
    text = normalize_query(suggestion)[:255]
    SuggestionClick.objects.create(
        request_id=request_id, prefix=normalize_query(prefix)[:255], suggestion=text,
        position=position, actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    )
    _bump_daily(timezone.localdate(), text, suggestion_clicks=1)


def record_product_click(*, request_id: str, query: str, product_id: str, position: int,
                         user=None, session_key: str | None = None, **_: object) -> None:
    from django.contrib.contenttypes.models import ContentType

    from .adapter import get_adapter

    normalized = normalize_query(query)[:255]
    ProductClick.objects.create(
        request_id=request_id, query=normalized,
        content_type=ContentType.objects.get_for_model(get_adapter().get_model()),
        object_id=str(product_id)[:64], position=position,
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    )
    _bump_daily(timezone.localdate(), normalized, product_clicks=1)


# -- the shopper's own history ---------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    query: str
    created_at: datetime
    origin: str


def list_history(*, user=None, session_key: str | None = None, limit: int = 20) -> list[HistoryEntry]:
    """The shopper's own searches, newest first (empty when we cannot tell who they are)."""
    owner = _owner_filter(user, session_key)
    if owner is None:
        return []
    rows = SearchEvent.objects.filter(owner).order_by("-created_at").values_list("query", "created_at", "origin")[:limit]
    return [HistoryEntry(q, created, origin) for q, created, origin in rows]


def recent_queries(prefix: str, *, user=None, session_key: str | None = None, limit: int = 3) -> list[str]:
    """The shopper's own distinct recent normalised queries starting with ``prefix``."""
    owner = _owner_filter(user, session_key)
    if owner is None or limit <= 0:
        return []
    seen: list[str] = []
    rows = (SearchEvent.objects.filter(owner, normalized_query__startswith=prefix)
            .order_by("-created_at").values_list("normalized_query", flat=True)[: limit * 5])
    for text in rows:
        if text not in seen:
            seen.append(text)
            if len(seen) == limit:
                break
    return seen


def erase_history(*, user=None, session_key: str | None = None) -> int:
    """Delete every event of the shopper (searches, impressions, clicks). Returns rows deleted."""
    owner = _owner_filter(user, session_key)
    if owner is None:
        return 0
    deleted = 0
    with transaction.atomic():
        for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick):
            deleted += model.objects.filter(owner).delete()[0]
    return deleted


# -- import and retention ------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedSearch:
    """One past search to import."""

    user: str
    query: str
    time: datetime


@dataclass(frozen=True)
class ImportReport:
    imported: int
    duplicates: int


def import_searches(rows: Iterable[ImportedSearch], *, batch_size: int = 2000,
                    progress: Callable[[int], None] | None = None) -> ImportReport:
    """Bulk-import past searches into history.

    Each row gets a deterministic request id (from user, query and time), so a
    second import of the same rows stores nothing new. Daily aggregates are
    incremented for imported rows only.
    """
    salt = app_settings.HASH_SALT
    imported = duplicates = 0
    batch: list[SearchEvent] = []

    def flush() -> None:
        nonlocal imported, duplicates
        if not batch:
            return
        ids = [e.request_id for e in batch]
        existing = set(SearchEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True))
        fresh = [e for e in batch if e.request_id not in existing]
        # Inside one file the same search may repeat; keep its first occurrence.
        unique: dict[uuid.UUID, SearchEvent] = {}
        for e in fresh:
            unique.setdefault(e.request_id, e)
        duplicates += len(batch) - len(unique)
        with transaction.atomic():
            SearchEvent.objects.bulk_create(unique.values())
            daily = Counter((timezone.localdate(e.created_at), e.normalized_query) for e in unique.values())
            for (day, text), n in daily.items():
                _bump_daily(day, text, searches=n)
        imported += len(unique)
        if progress:
            progress(len(batch))
        batch.clear()

    for row in rows:
        created = row.time if timezone.is_aware(row.time) else timezone.make_aware(row.time)
        normalized = normalize_query(row.query)[:255]
        batch.append(SearchEvent(
            created_at=created, query=row.query[:255], normalized_query=normalized,
            origin=SearchOrigin.TYPED,
            request_id=uuid.uuid5(IMPORT_NAMESPACE, f"{row.user}\x1f{row.query}\x1f{created.isoformat()}"),
            actor_hash=hash_identifier(f"import:{row.user}", salt) if row.user else "",
        ))
        if len(batch) >= batch_size:
            flush()
    flush()
    return ImportReport(imported=imported, duplicates=duplicates)


def garbage_collect(*, now: datetime | None = None) -> dict[str, int]:
    """Delete events and daily aggregates older than the retention period."""
    cutoff = (now or timezone.now()) - timedelta(days=app_settings.HISTORY_RETENTION_DAYS)
    counts = {}
    for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick):
        counts[model._meta.model_name] = model.objects.filter(created_at__lt=cutoff).delete()[0]
    counts["querydailystat"] = QueryDailyStat.objects.filter(date__lt=cutoff.date()).delete()[0]
    return counts
