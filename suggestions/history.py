"""Search history: who a request's shopper is, recording announced events,
per-shopper listing and erasure, bulk import of past searches, retention.

Contracts:
* Who a shopper is (:func:`request_actor`): the signed-in user; else, for an
  anonymous shopper, the id of the shopper cookie the request carried
  (:mod:`suggestions.middleware`), or, where that middleware is not installed,
  an existing session the request carried (checked in the session store).
  Nothing here creates a session: a cookie-less request belongs to nobody, its
  events are stored without an ``actor_hash`` and count no shopper.
* A session key handed to these functions is a returning shopper's, so every
  event with a user or a session key is ``identified``; imported searches are
  identified when they name a user. Only identified shoppers count towards the
  k-anonymity gate (:mod:`suggestions.mining`).
* Events are append-only. They are deleted only by retention
  (:func:`garbage_collect`) or by the shopper's own erase request
  (:func:`erase_history`).
* Erasure and retention reach every copy of a shopper's query text: the events,
  what they added to the daily aggregates (decremented; rows that reach zero are
  deleted), and the stored understanding and its cache entries of queries that
  no remaining event has (:func:`suggestions.understanding.forget_unsearched`).
  Suggestions mined from history are not erased: they passed the k-gate, so
  they are aggregates of several shoppers, and the next build recounts them
  without the erased events (and drops those that no longer pass). The
  analytics rollups of the erased events' days are rebuilt without them; retention
  deletes the per-query rollups with the daily aggregates
  (:mod:`suggestions.analytics`). The shopper's profile for personal
  re-ranking is deleted by their erasure; retention deletes profiles with no
  remaining event and rebuilds the others from the events that remain
  (:mod:`suggestions.personal`).
  ``tests/test_hardening_privacy.py`` lists every field that can hold query text
  and how erasure and retention reach it.
* No raw identifier is stored: users and sessions become a salted
  ``actor_hash`` (:func:`actor_hash`); signed-in users are also linked by FK so
  that deleting the user deletes their events.
* Daily aggregates are added to in the database (one ``INSERT … ON CONFLICT DO
  UPDATE`` on PostgreSQL and SQLite, else ``F()`` updates), never read-modify-write.
* Within :func:`batched_writes` (a ``POST events/`` batch) the receivers here
  queue their rows and daily increments; they are written when the block
  ends, in the same transaction: one ``INSERT`` per table and one ``UPDATE``
  per counted text, instead of one of each per event.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
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


def _carried_session_key(request) -> str | None:
    """The key of an existing session the request carried, else None."""
    session = getattr(request, "session", None)  # absent without SessionMiddleware
    if session is None or settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return None
    # Reading the session loads it, and the store forgets a key it does not
    # hold: a made-up cookie is no session. (A cookie-backed session with a bad
    # signature is reset instead, which marks it modified.)
    session.keys()
    if session.modified:
        return None
    return session.session_key or None


def request_actor(request) -> dict:
    """Who a request is for, as the ``user`` and ``session_key`` arguments of the
    services (see the module contract). Never creates a session.

    Args:
        request: A Django or DRF request.

    Returns:
        ``{"user": <user or None>, "session_key": <str or None>}``; an anonymous
        shopper's ``session_key`` is ``"shopper:<cookie id>"`` where
        :class:`~suggestions.middleware.ShopperCookieMiddleware` is installed.
    """
    from .middleware import middleware_installed, shopper_id

    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        session = getattr(request, "session", None)
        return {"user": user, "session_key": session.session_key if session is not None else None}
    if middleware_installed(request):
        carried = shopper_id(request)
        return {"user": None, "session_key": f"shopper:{carried}" if carried else None}
    return {"user": None, "session_key": _carried_session_key(request)}


def _owner_filter(user=None, session_key: str | None = None) -> Q | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return Q(user=user) | Q(actor_hash=actor_hash(user=user))
    if session_key:
        return Q(actor_hash=actor_hash(session_key=session_key))
    return None


#: Databases whose ``INSERT … ON CONFLICT … DO UPDATE`` adds to a row in one statement.
_UPSERT_VENDORS = frozenset({"postgresql", "sqlite"})


def _upsert_daily(day: date, normalized_query: str, increments: dict[str, int]) -> bool:
    """Add ``increments`` to the day's row in one statement (creating it); False
    on a database without ``ON CONFLICT`` (the caller updates, then inserts)."""
    from django.db import connections, router

    alias = router.db_for_write(QueryDailyStat)
    connection = connections[alias]
    if connection.vendor not in _UPSERT_VENDORS:
        return False
    names = [n for n in increments if n in _DAILY_COUNTERS]
    meta = QueryDailyStat._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    columns = [qn(meta.get_field(n).column) for n in ("date", "normalized_query", *_DAILY_COUNTERS)]
    values = [day, normalized_query, *(int(increments.get(n, 0)) for n in _DAILY_COUNTERS)]
    assignments = ", ".join(f"{qn(meta.get_field(n).column)} = {table}.{qn(meta.get_field(n).column)} "
                            f"+ EXCLUDED.{qn(meta.get_field(n).column)}" for n in names)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
           f"ON CONFLICT ({columns[0]}, {columns[1]}) DO UPDATE SET {assignments}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datefield_value(day), *values[1:]])
    return True


def _bump_daily(day: date, normalized_query: str, **increments: int) -> None:
    """Add ``increments`` to the day's counters for a query, creating the row
    (:func:`_unbump_daily` takes them back)."""
    updates = {name: F(name) + value for name, value in increments.items() if value}
    if not updates or not normalized_query:
        return
    if _upsert_daily(day, normalized_query, {name: value for name, value in increments.items() if value}):
        return
    if QueryDailyStat.objects.filter(date=day, normalized_query=normalized_query).update(**updates):
        return
    try:
        with transaction.atomic():
            QueryDailyStat.objects.create(date=day, normalized_query=normalized_query, **increments)
    except IntegrityError:
        # Another request created the row between our update and create.
        QueryDailyStat.objects.filter(date=day, normalized_query=normalized_query).update(**updates)


_DAILY_COUNTERS = ("searches", "zero_results", "suggestion_clicks", "product_clicks")


def _unbump_daily(decrements: dict[tuple[date, str], Counter]) -> None:
    """Take back what events added to the daily counters (never below zero:
    a row may have been rebuilt since), and delete rows left with nothing."""
    for (day, text), counts in decrements.items():
        rows = QueryDailyStat.objects.filter(date=day, normalized_query=text)
        updates = {name: Greatest(F(name) - n, Value(0)) for name, n in counts.items() if n}
        if updates and rows.update(**updates):
            rows.filter(**{name: 0 for name in _DAILY_COUNTERS}).delete()


class PendingWrites:
    """What :func:`batched_writes` queued: event rows, daily increments, and the
    writes other receivers asked to run at its end (:meth:`at_end`), with a
    scratch ``memo`` for lookups that hold for the whole batch."""

    def __init__(self) -> None:
        self.rows: dict[type, list] = defaultdict(list)
        self.daily: dict[tuple[date, str], Counter] = defaultdict(Counter)
        self.memo: dict = {}
        self._at_end: list[Callable[[], None]] = []

    def at_end(self, write: Callable[[], None]) -> None:
        """Run ``write`` when the batch is written (same transaction)."""
        self._at_end.append(write)

    def flush(self) -> None:
        for model, rows in self.rows.items():
            model.objects.bulk_create(rows)
        for (day, text), increments in self.daily.items():
            _bump_daily(day, text, **increments)
        for write in self._at_end:
            write()


def current_batch() -> PendingWrites | None:
    """The :func:`batched_writes` block this code runs in, if any."""
    return _pending.get()


_pending: contextvars.ContextVar[PendingWrites | None] = contextvars.ContextVar(
    "suggestions_history_pending", default=None)


@contextlib.contextmanager
def batched_writes() -> Iterator[None]:
    """Queue the event rows and daily increments written inside the block and
    write them together when it ends without an error (see the module contract).
    Call it inside the transaction that must hold them; nested, it is one batch."""
    if _pending.get() is not None:
        yield
        return
    pending = PendingWrites()
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    pending.flush()


def store_event(row) -> None:
    """Save a new event row now, or queue it in the current :func:`batched_writes`."""
    pending = _pending.get()
    if pending is None:
        row.save(force_insert=True)
    else:
        pending.rows[type(row)].append(row)


def count_daily(day: date, normalized_query: str, **increments: int) -> None:
    """:func:`_bump_daily` now, or queued in the current :func:`batched_writes`."""
    pending = _pending.get()
    if pending is None:
        _bump_daily(day, normalized_query, **increments)
    elif normalized_query:
        pending.daily[(day, normalized_query)].update({k: v for k, v in increments.items() if v})


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
        # Only returning shoppers reach here with a session key (module contract).
        identified=bool(actor_hash(user, session_key)),
        user=_user_or_none(user),
        filters=filters or {},
    )
    _bump_daily(timezone.localdate(now), normalized_query[:255], searches=1,
                zero_results=1 if results_count == 0 else 0)
    return event


def record_impression(*, request_id: str, prefix: str, suggestions: list[str], user=None,
                      session_key: str | None = None, **_: object) -> None:
    store_event(SuggestionImpression(
        request_id=request_id, prefix=normalize_query(prefix)[:255],
        suggestions=[normalize_query(s)[:255] for s in suggestions],
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    ))


def record_suggestion_click(*, request_id: str, prefix: str, suggestion: str, position: int,
                            user=None, session_key: str | None = None, **_: object) -> None:
    text = normalize_query(suggestion)[:255]
    store_event(SuggestionClick(
        request_id=request_id, prefix=normalize_query(prefix)[:255], suggestion=text,
        position=position, actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    ))
    count_daily(timezone.localdate(), text, suggestion_clicks=1)


def record_product_click(*, request_id: str, query: str, product_id: str, position: int,
                         user=None, session_key: str | None = None, **_: object) -> None:
    from django.contrib.contenttypes.models import ContentType

    from .adapter import get_adapter

    normalized = normalize_query(query)[:255]
    store_event(ProductClick(
        request_id=request_id, query=normalized,
        content_type=ContentType.objects.get_for_model(get_adapter().get_model()),
        object_id=str(product_id)[:64], position=position,
        actor_hash=actor_hash(user, session_key), user=_user_or_none(user),
    ))
    count_daily(timezone.localdate(), normalized, product_clicks=1)


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
    """Erase the shopper's history and every copy of their query text.

    Deletes their events (searches, impressions, suggestion and product clicks,
    experiment events),
    takes back what those events added to :class:`QueryDailyStat`, and deletes
    the stored understanding and cached understanding of their queries that no
    one else searched (see the module contract for what stays and why).

    Returns:
        The number of events deleted.
    """
    from .understanding import forget_unsearched

    owner = _owner_filter(user, session_key)
    if owner is None:
        return 0
    decrements: dict[tuple[date, str], Counter] = {}

    def take_back(created: datetime, text: str, **counts: int) -> None:
        if text:
            decrements.setdefault((timezone.localdate(created), text), Counter()).update(counts)

    with transaction.atomic():
        queries: set[str] = set()
        for created, text, results in SearchEvent.objects.filter(owner).values_list(
                "created_at", "normalized_query", "results_count").iterator():
            take_back(created, text, searches=1, zero_results=1 if results == 0 else 0)
            queries.add(text)
        for created, text in SuggestionClick.objects.filter(owner).values_list("created_at", "suggestion").iterator():
            take_back(created, text, suggestion_clicks=1)
        for created, text in ProductClick.objects.filter(owner).values_list("created_at", "query").iterator():
            take_back(created, text, product_clicks=1)
            queries.add(text)
        # Analytics rollups of the shopper's days are rebuilt without them.
        from .analytics import event_days, rebuild_rolled_up_days

        days = event_days(model.objects.filter(owner) for model in (
            SearchEvent, SuggestionImpression, SuggestionClick, ProductClick))
        deleted = 0
        for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick):
            deleted += model.objects.filter(owner).delete()[0]
        # Experiment events know the shopper by the hash only (suggestions.experiments).
        from .models import ExperimentEvent

        deleted += ExperimentEvent.objects.filter(actor_hash=actor_hash(user, session_key)).delete()[0]
        # The shopper's profile for personal re-ranking (not an event: not counted).
        from .personal import erase as erase_profile

        erase_profile(actor_hash(user, session_key))
        _unbump_daily(decrements)
        forget_unsearched(queries - {""})
        rebuild_rolled_up_days(days)
    return deleted


# -- import and retention ------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedSearch:
    """One past search to import.

    Attributes:
        user: The shopper's id in the log (hashed before it is stored; empty:
            an unidentified shopper, who counts for no one in the k-gate).
        query: The query as typed.
        time: When it was searched.
        product: The id of the product clicked after it (as the adapter's
            documents name products), if the log says; stored as a
            :class:`~suggestions.models.ProductClick` with no position.
        clicked_at: When that product was clicked (default: ``time``).
    """

    user: str
    query: str
    time: datetime
    product: str = ""
    clicked_at: datetime | None = None


@dataclass(frozen=True)
class ImportReport:
    imported: int
    duplicates: int
    #: Product clicks stored with the imported searches.
    clicks: int = 0
    #: Clicks left out because the catalog has no product of that id.
    unknown_products: int = 0


def _aware(value: datetime) -> datetime:
    return value if timezone.is_aware(value) else timezone.make_aware(value)


def import_searches(rows: Iterable[ImportedSearch], *, batch_size: int = 2000,
                    progress: Callable[[int], None] | None = None) -> ImportReport:
    """Bulk-import past searches (and the product clicked after each, when
    given) into history.

    Each row gets a deterministic request id (from user, query and time), so a
    second import of the same rows stores nothing new, clicks included. Daily
    aggregates are incremented for imported rows only. A click on a product id
    the adapter does not know is left out (counted in the report).
    """
    salt = app_settings.HASH_SALT
    imported = duplicates = clicks = unknown = 0
    batch: list[tuple[SearchEvent, ImportedSearch]] = []
    product_type = None

    def known_products(ids: set[str]) -> set[str]:
        from .adapter import get_adapter

        if not ids or not app_settings.ADAPTER:
            return set()
        adapter = get_adapter()
        found: set[str] = set()
        ordered = sorted(ids)
        for first in range(0, len(ordered), 500):
            chunk = ordered[first:first + 500]
            try:
                found.update(str(d.id) for d in adapter.get_documents(chunk))
            except (ValueError, TypeError):
                # An id the product model cannot hold ("abc" for an integer
                # key): ask one by one and leave out those that fail.
                for one in chunk:
                    try:
                        found.update(str(d.id) for d in adapter.get_documents([one]))
                    except (ValueError, TypeError):
                        continue
        return found

    def flush() -> None:
        nonlocal imported, duplicates, clicks, unknown, product_type
        if not batch:
            return
        ids = [e.request_id for e, _row in batch]
        existing = set(SearchEvent.objects.filter(request_id__in=ids).values_list("request_id", flat=True))
        # Inside one file the same search may repeat; keep its first occurrence.
        unique: dict[uuid.UUID, tuple[SearchEvent, ImportedSearch]] = {}
        for e, row in batch:
            if e.request_id not in existing:
                unique.setdefault(e.request_id, (e, row))
        duplicates += len(batch) - len(unique)
        products = {str(row.product)[:64] for _e, row in unique.values() if row.product}
        known = known_products(products)
        click_rows = []
        for e, row in unique.values():
            if not row.product:
                continue
            product = str(row.product)[:64]
            if product not in known:
                unknown += 1
                continue
            if product_type is None:
                from django.contrib.contenttypes.models import ContentType

                from .adapter import get_adapter

                product_type = ContentType.objects.get_for_model(get_adapter().get_model())
            click_rows.append(ProductClick(
                created_at=_aware(row.clicked_at) if row.clicked_at else e.created_at, request_id=e.request_id,
                query=e.normalized_query, content_type=product_type, object_id=product, position=None,
                actor_hash=e.actor_hash))
        with transaction.atomic():
            SearchEvent.objects.bulk_create([e for e, _row in unique.values()])
            ProductClick.objects.bulk_create(click_rows)
            daily = Counter((timezone.localdate(e.created_at), e.normalized_query) for e, _row in unique.values())
            clicked = Counter((timezone.localdate(c.created_at), c.query) for c in click_rows)
            for (day, text), n in daily.items():
                _bump_daily(day, text, searches=n, product_clicks=clicked.pop((day, text), 0))
            for (day, text), n in clicked.items():
                _bump_daily(day, text, product_clicks=n)
        imported += len(unique)
        clicks += len(click_rows)
        if progress:
            progress(len(batch))
        batch.clear()

    for row in rows:
        created = _aware(row.time)
        normalized = normalize_query(row.query)[:255]
        batch.append((SearchEvent(
            created_at=created, query=row.query[:255], normalized_query=normalized,
            origin=SearchOrigin.TYPED,
            request_id=uuid.uuid5(IMPORT_NAMESPACE, f"{row.user}\x1f{row.query}\x1f{created.isoformat()}"),
            actor_hash=hash_identifier(f"import:{row.user}", salt) if row.user else "",
            identified=bool(row.user),
        ), row))
        if len(batch) >= batch_size:
            flush()
    flush()
    return ImportReport(imported=imported, duplicates=duplicates, clicks=clicks, unknown_products=unknown)


def garbage_collect(*, now: datetime | None = None) -> dict[str, int]:
    """Delete events and daily aggregates older than the retention period, and
    the stored (and cached) understandings of queries no remaining event has.

    Returns:
        Rows deleted, by model name.
    """
    from .understanding import forget_unsearched

    cutoff = (now or timezone.now()) - timedelta(days=app_settings.HISTORY_RETENTION_DAYS)
    counts = {}
    with transaction.atomic():
        # Shoppers whose old events go: their profiles are rebuilt from what remains.
        touched = {a for model in (SearchEvent, ProductClick) for a in model.objects.filter(
            created_at__lt=cutoff).exclude(actor_hash="").values_list("actor_hash", flat=True).distinct()}
        for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick):
            counts[model._meta.model_name] = model.objects.filter(created_at__lt=cutoff).delete()[0]
        from .models import ExperimentEvent

        counts["experimentevent"] = ExperimentEvent.objects.filter(created_at__lt=cutoff).delete()[0]
        counts["querydailystat"] = QueryDailyStat.objects.filter(date__lt=cutoff.date()).delete()[0]
        # Per-query analytics too; day and position totals hold no query text and no shopper.
        from .models import AnalyticsChipDay, AnalyticsQueryDay

        counts["analyticsqueryday"] = AnalyticsQueryDay.objects.filter(date__lt=cutoff.date()).delete()[0]
        counts["analyticschipday"] = AnalyticsChipDay.objects.filter(date__lt=cutoff.date()).delete()[0]
        from .personal import apply_retention

        counts["shopperprofile"] = apply_retention(cutoff, touched)
        counts["queryunderstanding"] = forget_unsearched()
    return counts
