"""Search analytics: daily rollups of the events and the figures of the
admin's analytics page.

Definitions (the page, the CSV export and the README use the same ones):

* **Searches**: submitted searches (:class:`~suggestions.models.SearchEvent`).
* **Zero-result rate**: searches that returned nothing / searches whose number
  of results is known (imported searches have none).
* **Click-through of suggestions**: suggestions chosen / suggestion lists shown
  (:class:`~suggestions.models.SuggestionClick` / :class:`~suggestions.models.SuggestionImpression`).
* **Acceptance rate**: searches started by choosing a suggestion / all searches.
* **Click-through at position p**: suggestions chosen at position p / lists
  shown with a suggestion at position p (positions are 0-based in storage,
  shown 1-based).
* **Keystrokes saved**: for each chosen suggestion, its length minus the length
  of the prefix the shopper had typed (never below zero), summed; as a share,
  divided by the characters of the chosen suggestions.
* **Chip click-through**: refinement chips chosen / chips shown, where a chip
  is shown once per results page that lists it (surface ``refinements``:
  :class:`~suggestions.models.SuggestionImpression` /
  :class:`~suggestions.models.SuggestionClick`). Unlike the typeahead's, it is
  per chip, not per list: a page shows several chips, and shoppers choose
  one. By searched query and chip, and by the chip's source (the suggestion's
  ``source`` when the day was rolled up; "own words" for a rewrite made of
  the shopper's query, which is no suggestion).

Contracts:

* The page reads only the rollups (:class:`~suggestions.models.AnalyticsDay`,
  :class:`~suggestions.models.AnalyticsQueryDay`,
  :class:`~suggestions.models.AnalyticsPositionDay`,
  :class:`~suggestions.models.AnalyticsChipDay`), never the raw events, so
  it stays fast on large logs.
* :func:`rollup_day` rebuilds one day from its events in one transaction: the
  day's rows are deleted and recreated from set-based aggregate queries and
  ``bulk_create``. Re-running a day replaces it (idempotent). Days are days of
  the project's time zone.
* Days older than the retention period are not rebuilt (their events are
  gone): their totals stay, their per-query rows are deleted by retention
  (:func:`suggestions.history.garbage_collect`), as are their chip rows. Day and position totals hold
  no query text and no shopper.
* Erasure rebuilds the rolled-up days of the erased events
  (:func:`rebuild_rolled_up_days`), so no count of an erased shopper survives
  in a rollup.
"""

from __future__ import annotations

import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Func, IntegerField, Max, Min, Q, Sum, Value
from django.db.models.functions import Greatest, Length
from django.utils import timezone

from .conf import app_settings
from .models import (
    AnalyticsChipDay,
    AnalyticsDay,
    AnalyticsPositionDay,
    AnalyticsQueryDay,
    BlockedTerm,
    EventSurface,
    ProductClick,
    SearchEvent,
    SearchOrigin,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)

#: Rows per INSERT of the per-query rollup.
BATCH_SIZE = 2000


class JSONArrayLength(Func):
    """Length of a JSON array column (0 when the value is not an array)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection,
                           template="(CASE WHEN jsonb_typeof(%(expressions)s) = 'array' "
                                    "THEN jsonb_array_length(%(expressions)s) ELSE 0 END)", **extra)

    def as_mysql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSON_LENGTH", **extra)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The first moment of ``day`` and of the next day, in the project's time zone."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return start, end


def retention_start() -> date:
    """The oldest day all of whose events retention keeps (the day of the
    retention cutoff has lost its first hours)."""
    cutoff = timezone.now() - timedelta(days=app_settings.HISTORY_RETENTION_DAYS)
    return timezone.localdate(cutoff) + timedelta(days=1)


# -- the rollup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRollup:
    """What :func:`rollup_day` wrote for one day."""

    day: date
    searches: int
    impressions: int
    suggestion_clicks: int
    product_clicks: int
    queries: int
    seconds: float


def rollup_day(day: date, *, attempts: int = 3) -> DayRollup:
    """Rebuild the rollups of ``day`` from its events (see the module contract).

    Two rebuilds of the same day at once (the beat task and a command) cannot
    both insert its rows: the one that loses gets an ``IntegrityError`` from the
    unique constraints and starts again, replacing the winner's rows.
    """
    for attempt in range(attempts):
        try:
            return _rollup_day(day)
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _rollup_day(day: date) -> DayRollup:
    began = _time.perf_counter()
    start, end = day_bounds(day)
    window = {"created_at__gte": start, "created_at__lt": end}
    with transaction.atomic():
        searches = SearchEvent.objects.filter(**window)
        totals = searches.aggregate(
            searches=Count("id"),
            searches_with_count=Count("results_count"),
            zero_result_searches=Count("id", filter=Q(results_count=0)),
            suggestion_searches=Count("id", filter=Q(origin=SearchOrigin.SUGGESTION)),
            history_searches=Count("id", filter=Q(origin=SearchOrigin.HISTORY)),
        )
        # Lists by length: a list of n suggestions shows positions 0 .. n-1.
        # The typeahead's lists only: refinement chips are counted apart (suggestions/refinements.py).
        lengths = dict(SuggestionImpression.objects.filter(**window, surface=EventSurface.TYPEAHEAD)
                       .annotate(n=JSONArrayLength("suggestions")).values("n")
                       .annotate(lists=Count("id")).values_list("n", "lists"))
        clicks = SuggestionClick.objects.filter(**window, surface=EventSurface.TYPEAHEAD)
        click_totals = clicks.aggregate(
            n=Count("id"), accepted=Sum(Length("suggestion")),
            saved=Sum(Greatest(Length("suggestion") - Length("prefix"), Value(0))),
        )
        clicks_at = dict(clicks.values("position").annotate(n=Count("id")).values_list("position", "n"))
        product_clicks = ProductClick.objects.filter(**window)
        product_click_count = product_clicks.count()
        chips = _chip_counts(window)

        per_query: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for text, n, zero, chosen in (searches.values("normalized_query")
                                      .annotate(n=Count("id"), zero=Count("id", filter=Q(results_count=0)),
                                                chosen=Count("id", filter=Q(origin=SearchOrigin.SUGGESTION)))
                                      .values_list("normalized_query", "n", "zero", "chosen").iterator()):
            if text:
                per_query[text][:3] = [n, zero, chosen]
        for text, n in (product_clicks.exclude(query="").values("query").annotate(n=Count("id"))
                        .values_list("query", "n").iterator()):
            per_query[text][3] = n

        AnalyticsDay.objects.filter(date=day).delete()
        AnalyticsQueryDay.objects.filter(date=day).delete()
        AnalyticsPositionDay.objects.filter(date=day).delete()
        AnalyticsChipDay.objects.filter(date=day).delete()
        AnalyticsDay.objects.create(
            date=day, **totals,
            impressions=sum(lengths.values()),
            suggestions_shown=sum(n * lists for n, lists in lengths.items()),
            suggestion_clicks=click_totals["n"], product_clicks=product_click_count,
            accepted_characters=click_totals["accepted"] or 0, keystrokes_saved=click_totals["saved"] or 0,
            rolled_up_at=timezone.now(),
        )
        AnalyticsQueryDay.objects.bulk_create(
            (AnalyticsQueryDay(date=day, normalized_query=text, searches=n, zero_result_searches=zero,
                               suggestion_searches=chosen, product_clicks=pclicks)
             for text, (n, zero, chosen, pclicks) in per_query.items()),
            batch_size=BATCH_SIZE,
        )
        longest = max([n for n in lengths if n] + [p + 1 for p in clicks_at], default=0)
        AnalyticsPositionDay.objects.bulk_create(
            AnalyticsPositionDay(date=day, position=p, clicks=clicks_at.get(p, 0),
                                 impressions=sum(lists for n, lists in lengths.items() if n > p))
            for p in range(longest)
        )
        AnalyticsChipDay.objects.bulk_create(
            (AnalyticsChipDay(date=day, query=query, chip=chip, source=source, shown=shown, clicked=clicked)
             for (query, chip), (source, shown, clicked) in chips.items()),
            batch_size=BATCH_SIZE,
        )
    return DayRollup(day, totals["searches"], sum(lengths.values()), click_totals["n"], product_click_count,
                     len(per_query), _time.perf_counter() - began)


def _chip_counts(window: dict) -> dict[tuple[str, str], tuple[str, int, int]]:
    """``(query, chip)`` → ``(source, shown, chosen)`` of the refinement chips
    of a day. The lists are JSON arrays, read row by row (a chip listed twice
    on one page is shown once); clicks are counted in the database."""
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for query, listed in (SuggestionImpression.objects.filter(**window, surface=EventSurface.REFINEMENTS)
                          .values_list("prefix", "suggestions").iterator(chunk_size=BATCH_SIZE)):
        for chip in set(listed if isinstance(listed, list) else ()):
            if isinstance(chip, str) and chip:
                shown[(query, chip[:255])] += 1
    clicked = {(q, c): n for q, c, n in (SuggestionClick.objects.filter(**window, surface=EventSurface.REFINEMENTS)
                                         .values("prefix", "suggestion").annotate(n=Count("id"))
                                         .values_list("prefix", "suggestion", "n").iterator())}
    keys = set(shown) | set(clicked)
    texts = sorted({chip for _q, chip in keys})
    sources: dict[str, str] = {}
    for start in range(0, len(texts), 500):
        sources.update(Suggestion.objects.filter(text__in=texts[start:start + 500]).values_list("text", "source"))
    return {key: (sources.get(key[1], ""), shown.get(key, 0), clicked.get(key, 0)) for key in keys}


@dataclass(frozen=True)
class RollupReport:
    """What :func:`rollup` did: the days rebuilt and the days skipped as older than retention."""

    days: list[DayRollup]
    skipped: list[date] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"days": [d.day.isoformat() for d in self.days], "skipped": [d.isoformat() for d in self.skipped],
                "searches": sum(d.searches for d in self.days), "seconds": round(sum(d.seconds for d in self.days), 3)}


def rollup(*, days_back: int = 1, since: date | None = None, until: date | None = None,
           progress: Callable[[DayRollup], None] | None = None) -> RollupReport:
    """Rebuild the rollups of a range of days, oldest first.

    Args:
        days_back: Rebuild today and this many days before it (default 1:
            yesterday and today). Ignored when ``since`` is given.
        since: First day to rebuild.
        until: Last day to rebuild (default: today).
        progress: Called after each day with what was written.

    Raises:
        ValueError: ``days_back`` is negative or ``since`` is after ``until``.
    """
    last = until or timezone.localdate()
    if since is None:
        if days_back < 0:
            raise ValueError("days_back must be 0 or more.")
        since = last - timedelta(days=days_back)
    if since > last:
        raise ValueError(f"The first day ({since}) is after the last ({last}).")
    oldest = retention_start()
    done, skipped = [], []
    day = since
    while day <= last:
        if day < oldest:
            skipped.append(day)
        else:
            result = rollup_day(day)
            done.append(result)
            if progress:
                progress(result)
        day += timedelta(days=1)
    return RollupReport(done, skipped)


def event_days(queryset_filters: Iterable) -> set[date]:
    """The days (project time zone) on which the given event querysets have rows."""
    days: set[date] = set()
    for queryset in queryset_filters:
        days.update(timezone.localdate(moment) for moment in
                    queryset.values_list("created_at", flat=True).iterator())
    return days


def rebuild_rolled_up_days(days: Iterable[date]) -> int:
    """Rebuild the given days that have a rollup (after an erasure); returns how many.

    Every such day is rebuilt, even one older than retention: the erased
    shopper's events were there, so the day still has events to count (the
    retention cutoff's day is counted from what retention left of it).
    """
    rolled = sorted(AnalyticsDay.objects.filter(date__in=list(days)).values_list("date", flat=True))
    for day in rolled:
        rollup_day(day)
    return len(rolled)


# -- the figures of the page -----------------------------------------------------------------


def ratio(part: int | None, whole: int | None) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Totals:
    searches: int = 0
    searches_with_count: int = 0
    zero_result_searches: int = 0
    suggestion_searches: int = 0
    history_searches: int = 0
    impressions: int = 0
    suggestions_shown: int = 0
    suggestion_clicks: int = 0
    product_clicks: int = 0
    accepted_characters: int = 0
    keystrokes_saved: int = 0

    @property
    def zero_result_rate(self) -> float | None:
        return ratio(self.zero_result_searches, self.searches_with_count)

    @property
    def click_through(self) -> float | None:
        return ratio(self.suggestion_clicks, self.impressions)

    @property
    def acceptance_rate(self) -> float | None:
        return ratio(self.suggestion_searches, self.searches)

    @property
    def keystrokes_saved_share(self) -> float | None:
        return ratio(self.keystrokes_saved, self.accepted_characters)


TOTAL_FIELDS = tuple(Totals.__dataclass_fields__)


@dataclass(frozen=True)
class DayFigures(Totals):
    day: date | None = None
    rolled_up: bool = False


@dataclass(frozen=True)
class QueryFigures:
    query: str
    searches: int
    zero_result_searches: int
    suggestion_searches: int
    product_clicks: int
    #: Moderation state of the query as a suggestion ("" when it is none), and
    #: whether a blocked term equal to it exists.
    suggestion_status: str = ""
    blocked: bool = False

    @property
    def zero_result_rate(self) -> float | None:
        return ratio(self.zero_result_searches, self.searches)

    @property
    def clicks_per_search(self) -> float | None:
        return ratio(self.product_clicks, self.searches)


@dataclass(frozen=True)
class PositionFigures:
    position: int
    impressions: int
    clicks: int

    @property
    def click_through(self) -> float | None:
        return ratio(self.clicks, self.impressions)


#: ``source`` of the chip rows that are no suggestion (rewrites of the shopper's own query).
OWN_WORDS = "own words"


@dataclass(frozen=True)
class ChipFigures:
    """Refinement chips shown and chosen over a period: one chip with the
    searched query it was shown with (``query`` empty in the by-source table)."""

    query: str
    chip: str
    source: str
    shown: int
    clicked: int

    @property
    def click_through(self) -> float | None:
        return ratio(self.clicked, self.shown)


@dataclass(frozen=True)
class AnalyticsReport:
    """The figures of one period, read from the rollups."""

    start: date
    end: date
    totals: Totals
    days: list[DayFigures]
    top_queries: list[QueryFigures]
    zero_result_queries: list[QueryFigures]
    positions: list[PositionFigures]
    last_rollup: datetime | None
    #: Chips by source (``chip`` and ``query`` empty), most shown first.
    chip_sources: list[ChipFigures] = field(default_factory=list)
    #: The most shown chips, with their searched query.
    chips: list[ChipFigures] = field(default_factory=list)

    @property
    def chip_totals(self) -> ChipFigures:
        """Every chip of the period together."""
        return ChipFigures("", "", "", sum(c.shown for c in self.chip_sources),
                           sum(c.clicked for c in self.chip_sources))

    @property
    def days_without_rollup(self) -> list[date]:
        """Days of the period, up to today, that no rollup has covered yet."""
        today = timezone.localdate()
        return [d.day for d in self.days if not d.rolled_up and d.day <= today]


def _moderation(texts: list[str]) -> tuple[dict[str, str], set[str]]:
    statuses = dict(Suggestion.objects.filter(text__in=texts).values_list("text", "status"))
    blocked = set(BlockedTerm.objects.filter(pattern__in=texts).values_list("pattern", flat=True))
    return statuses, blocked


def report(start: date, end: date, *, limit: int = 50) -> AnalyticsReport:
    """The figures of the days ``start`` .. ``end`` (inclusive), from the rollups.

    Args:
        start: First day.
        end: Last day.
        limit: Rows of the top and zero-result query tables.
    """
    days = AnalyticsDay.objects.filter(date__gte=start, date__lte=end)
    sums = days.aggregate(**{name: Sum(name) for name in TOTAL_FIELDS}, last=Max("rolled_up_at"))
    last = sums.pop("last")
    totals = Totals(**{k: v or 0 for k, v in sums.items()})
    by_day = {row["date"]: row for row in days.values("date", *TOTAL_FIELDS)}
    series = []
    day = start
    while day <= end:
        row = by_day.get(day)
        series.append(DayFigures(**{k: row[k] for k in TOTAL_FIELDS}, day=day, rolled_up=True) if row
                      else DayFigures(day=day))
        day += timedelta(days=1)

    queries = (AnalyticsQueryDay.objects.filter(date__gte=start, date__lte=end).values("normalized_query")
               .annotate(searches=Sum("searches"), zero=Sum("zero_result_searches"),
                         chosen=Sum("suggestion_searches"), clicks=Sum("product_clicks")))
    top = list(queries.filter(searches__gt=0).order_by("-searches", "normalized_query")[:limit])
    zero = list(queries.filter(zero__gt=0).order_by("-zero", "-searches", "normalized_query")[:limit])
    statuses, blocked = _moderation(sorted({r["normalized_query"] for r in top + zero}))

    def figures(rows) -> list[QueryFigures]:
        return [QueryFigures(r["normalized_query"], r["searches"], r["zero"], r["chosen"], r["clicks"],
                             statuses.get(r["normalized_query"], ""), r["normalized_query"] in blocked)
                for r in rows]

    positions = [PositionFigures(r["position"], r["shown"], r["chosen"]) for r in
                 AnalyticsPositionDay.objects.filter(date__gte=start, date__lte=end).values("position")
                 .annotate(shown=Sum("impressions"), chosen=Sum("clicks")).order_by("position")]
    chip_rows = AnalyticsChipDay.objects.filter(date__gte=start, date__lte=end)
    by_source = [ChipFigures("", "", r["source"] or OWN_WORDS, r["shown"], r["chosen"]) for r in
                 chip_rows.values("source").annotate(shown=Sum("shown"), chosen=Sum("clicked"))
                 .order_by("-shown", "source")]
    # Grouped with its source too: a rewrite that later became a suggestion is two rows.
    chips = [ChipFigures(r["query"], r["chip"], r["source"] or OWN_WORDS, r["shown"], r["chosen"]) for r in
             chip_rows.values("query", "chip", "source").annotate(shown=Sum("shown"), chosen=Sum("clicked"))
             .order_by("-shown", "-chosen", "query", "chip", "source")[:limit]]
    return AnalyticsReport(start, end, totals, series, figures(top), figures(zero), positions, last,
                           chip_sources=by_source, chips=chips)


def rolled_up_range() -> tuple[date | None, date | None]:
    """The first and last day that have a rollup."""
    bounds = AnalyticsDay.objects.aggregate(first=Min("date"), last=Max("date"))
    return bounds["first"], bounds["last"]


__all__ = [
    "AnalyticsReport", "ChipFigures", "DayFigures", "DayRollup", "PositionFigures", "QueryFigures", "RollupReport", "Totals",
    "day_bounds", "event_days", "rebuild_rolled_up_days", "report", "rollup", "rollup_day",
]
