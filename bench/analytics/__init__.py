"""Speed of the search analytics rollup and of the page it serves, on a large log.

What is measured, on ``--events`` synthetic events (:mod:`bench.analytics.events`:
Zipf queries, sessions with suggestion lists, suggestion and result clicks)
spread over ``--days`` days:

1. **Rollup** of every day (:func:`suggestions.services.rollup_analytics`,
   set-based aggregate queries and ``bulk_create``), median of ``--runs`` runs;
   target: under a minute for 1M events.
   Baseline: a naive rollup that reads every event row into Python and counts
   there, writing the same rows. Both must write identical rollups (checked).
2. **The page's figures** for the last 30 days from the rollups
   (:func:`suggestions.services.analytics_report`), against the same figures
   computed from the raw events at request time (aggregate queries over the
   event tables: what the page would cost without rollups). Both must agree
   (checked).

SQLite by default (a throwaway file); ``--database-url postgres://…`` runs on a
local PostgreSQL database (created when missing, its tables emptied first, and
dropped at the end unless ``--keep-tmp``).
Exit status 1 when the rollups disagree or the rollup takes a minute or more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import timedelta

from bench.common import command_line, django_environment, fail, markdown_table

TARGET_SECONDS = 60.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="Events to generate (default 1,000,000).")
    parser.add_argument("--days", type=int, default=30, help="Days of history they span (default 30).")
    parser.add_argument("--runs", type=int, default=3, help="Runs of the rollup; the median is reported (default 3).")
    parser.add_argument("--baseline-runs", type=int, default=1, help="Runs of the naive rollup (default 1).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the event generator (default 7).")
    parser.add_argument("--database-url", default=None,
                        help="A local PostgreSQL database URL to run on instead of a throwaway SQLite file.")
    parser.add_argument("--keep-tmp", action="store_true", help="Keep the temporary folder and print its path.")
    return parser


def _connect_params(url: str) -> tuple[dict, str]:
    import dj_database_url

    cfg = dj_database_url.parse(url)
    return ({"host": cfg.get("HOST") or None, "port": cfg.get("PORT") or None, "user": cfg.get("USER") or None,
             "password": cfg.get("PASSWORD") or None}, cfg["NAME"])


def drop_database(url: str) -> None:
    """Drop the benchmark's PostgreSQL database (a million rows are not left behind)."""
    import psycopg
    from psycopg import sql

    params, name = _connect_params(url)
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` when missing (local servers only)."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    if "postgresql" not in cfg["ENGINE"]:
        raise fail(f"--database-url must be a PostgreSQL URL, got {cfg['ENGINE']}.")
    host = cfg.get("HOST") or ""
    if host not in ("", "127.0.0.1", "localhost", "::1") and not host.startswith("/"):
        raise fail("The benchmark only talks to a local PostgreSQL.")
    params = {"host": host or None, "port": cfg.get("PORT") or None, "user": cfg.get("USER") or None,
              "password": cfg.get("PASSWORD") or None}
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
    except psycopg.OperationalError as exc:
        raise fail(f"PostgreSQL is not reachable: {exc}") from exc


# -- the baseline rollup: every row through Python -------------------------------------------------


def naive_rollup(first, last) -> None:
    """Rebuild the same rollups by reading every event of the days into Python."""
    from django.db import transaction
    from django.utils import timezone

    from suggestions.analytics import day_bounds
    from suggestions.models import (
        AnalyticsDay,
        AnalyticsPositionDay,
        AnalyticsQueryDay,
        ProductClick,
        SearchEvent,
        SuggestionClick,
        SuggestionImpression,
    )

    start, end = day_bounds(first)[0], day_bounds(last)[1]
    window = {"created_at__gte": start, "created_at__lt": end}
    day_of = timezone.localdate
    totals: dict = defaultdict(Counter)
    queries: dict = defaultdict(Counter)
    lists: dict = defaultdict(Counter)
    clicks_at: dict = defaultdict(Counter)
    for created, text, results, origin in SearchEvent.objects.filter(**window).values_list(
            "created_at", "normalized_query", "results_count", "origin").iterator(chunk_size=5000):
        d = day_of(created)
        flags = {"searches": 1, "searches_with_count": int(results is not None),
                 "zero_result_searches": int(results == 0), "suggestion_searches": int(origin == "suggestion"),
                 "history_searches": int(origin == "history")}
        totals[d].update(flags)
        if text:
            queries[(d, text)].update(searches=1, zero=flags["zero_result_searches"], chosen=flags["suggestion_searches"])
    for created, shown in SuggestionImpression.objects.filter(**window).values_list(
            "created_at", "suggestions").iterator(chunk_size=5000):
        d = day_of(created)
        n = len(shown) if isinstance(shown, list) else 0
        totals[d].update(impressions=1, suggestions_shown=n)
        lists[d][n] += 1
    for created, prefix, text, position in SuggestionClick.objects.filter(**window).values_list(
            "created_at", "prefix", "suggestion", "position").iterator(chunk_size=5000):
        d = day_of(created)
        totals[d].update(suggestion_clicks=1, accepted_characters=len(text),
                         keystrokes_saved=max(len(text) - len(prefix), 0))
        clicks_at[d][position] += 1
    for created, text in ProductClick.objects.filter(**window).values_list("created_at", "query").iterator(chunk_size=5000):
        d = day_of(created)
        totals[d].update(product_clicks=1)
        if text:
            queries[(d, text)].update(clicks=1)
    with transaction.atomic():
        for model in (AnalyticsDay, AnalyticsQueryDay, AnalyticsPositionDay):
            model.objects.filter(date__gte=first, date__lte=last).delete()
        now = timezone.now()
        day, rows_day, rows_pos = first, [], []
        while day <= last:
            rows_day.append(AnalyticsDay(date=day, rolled_up_at=now, **totals[day]))
            longest = max([n for n in lists[day] if n] + [p + 1 for p in clicks_at[day]], default=0)
            rows_pos += [AnalyticsPositionDay(date=day, position=p, clicks=clicks_at[day][p],
                                              impressions=sum(c for n, c in lists[day].items() if n > p))
                         for p in range(longest)]
            day += timedelta(days=1)
        AnalyticsDay.objects.bulk_create(rows_day)
        AnalyticsPositionDay.objects.bulk_create(rows_pos)
        AnalyticsQueryDay.objects.bulk_create(
            (AnalyticsQueryDay(date=d, normalized_query=t, searches=c["searches"], zero_result_searches=c["zero"],
                               suggestion_searches=c["chosen"], product_clicks=c["clicks"])
             for (d, t), c in queries.items()), batch_size=2000)


def snapshot() -> dict:
    """The rollup tables' contents, comparable across rebuilds."""
    from suggestions.models import AnalyticsDay, AnalyticsPositionDay, AnalyticsQueryDay

    def rows(model, key):
        return sorted(tuple(v for k, v in r.items() if k not in ("id", "rolled_up_at"))
                      for r in model.objects.values().order_by(*key))

    return {"days": rows(AnalyticsDay, ["date"]), "queries": rows(AnalyticsQueryDay, ["date", "normalized_query"]),
            "positions": rows(AnalyticsPositionDay, ["date", "position"])}


# -- the page from the raw events (no rollups) --------------------------------------------------------


def page_from_raw_events(first, last, limit: int = 25) -> dict:
    """The page's headline figures, top and zero-result queries and positions,
    straight from the event tables."""
    from django.db.models import Count, Q, Sum, Value
    from django.db.models.functions import Greatest, Length

    from suggestions.analytics import JSONArrayLength, day_bounds
    from suggestions.models import ProductClick, SearchEvent, SuggestionClick, SuggestionImpression

    window = {"created_at__gte": day_bounds(first)[0], "created_at__lt": day_bounds(last)[1]}
    searches = SearchEvent.objects.filter(**window)
    totals = searches.aggregate(searches=Count("id"), known=Count("results_count"),
                                zero=Count("id", filter=Q(results_count=0)),
                                chosen=Count("id", filter=Q(origin="suggestion")))
    shown = SuggestionImpression.objects.filter(**window)
    lengths = dict(shown.annotate(n=JSONArrayLength("suggestions")).values("n").annotate(c=Count("id"))
                   .values_list("n", "c"))
    clicks = SuggestionClick.objects.filter(**window)
    click_totals = clicks.aggregate(n=Count("id"), accepted=Sum(Length("suggestion")),
                                    saved=Sum(Greatest(Length("suggestion") - Length("prefix"), Value(0))))
    at = dict(clicks.values("position").annotate(c=Count("id")).values_list("position", "c"))
    per_query = searches.values("normalized_query").annotate(n=Count("id"), z=Count("id", filter=Q(results_count=0)))
    top = list(per_query.order_by("-n", "normalized_query").values_list("normalized_query", "n")[:limit])
    zero = list(per_query.filter(z__gt=0).order_by("-z", "-n", "normalized_query").values_list("normalized_query", "z")[:limit])
    per_day = searches.values("created_at__date").annotate(n=Count("id")).count()
    impressions = sum(lengths.values())
    return {
        "searches": totals["searches"], "zero_rate": totals["zero"] / totals["known"] if totals["known"] else None,
        "acceptance": totals["chosen"] / totals["searches"] if totals["searches"] else None,
        "click_through": click_totals["n"] / impressions if impressions else None,
        "keystrokes_saved": click_totals["saved"] or 0, "top": top, "zero": zero,
        "positions": {p: (sum(c for n, c in lengths.items() if n > p), at.get(p, 0))
                      for p in range(max([n for n in lengths if n] + [p + 1 for p in at], default=0))},
        "days_with_searches": per_day, "product_clicks": ProductClick.objects.filter(**window).count(),
    }


def page_from_rollups(first, last, limit: int = 25) -> dict:
    from suggestions import services

    r = services.analytics_report(first, last, limit=limit)
    t = r.totals
    return {
        "searches": t.searches, "zero_rate": t.zero_result_rate, "acceptance": t.acceptance_rate,
        "click_through": t.click_through, "keystrokes_saved": t.keystrokes_saved,
        "top": [(q.query, q.searches) for q in r.top_queries],
        "zero": [(q.query, q.zero_result_searches) for q in r.zero_result_queries],
        "positions": {p.position: (p.impressions, p.clicks) for p in r.positions},
        "days_with_searches": sum(1 for d in r.days if d.searches), "product_clicks": t.product_clicks,
    }


def _median_time(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings_module = "bench.settings"
    if args.database_url:
        ensure_database(args.database_url)
        os.environ["BENCH_DATABASE_URL"] = args.database_url
        settings_module = "bench.analytics.settings"
    try:
        return _run(args, argv, settings_module)
    finally:
        if args.database_url and not args.keep_tmp:
            drop_database(args.database_url)


def _run(args, argv, settings_module: str) -> int:
    with django_environment(keep=args.keep_tmp, settings_module=settings_module):
        from django.db import connection
        from django.utils import timezone

        from bench.analytics.events import generate
        from suggestions import services
        from suggestions.models import (
            AnalyticsDay,
            AnalyticsPositionDay,
            AnalyticsQueryDay,
            ProductClick,
            SearchEvent,
            SuggestionClick,
            SuggestionImpression,
        )

        for model in (SearchEvent, SuggestionImpression, SuggestionClick, ProductClick, AnalyticsDay,
                      AnalyticsQueryDay, AnalyticsPositionDay):
            model.objects.all().delete()
        print(command_line("bench.analytics", argv))
        version = (connection.Database.sqlite_version if connection.vendor == "sqlite"
                   else f"{connection.pg_version // 10000}.{connection.pg_version % 10000}")
        print(f"database: {connection.vendor} {version}")
        began = time.perf_counter()
        made = generate(args.events, days=args.days, seed=args.seed)
        print(f"generated {made.events:,} events in {time.perf_counter() - began:.1f} s: {made.searches:,} searches, "
              f"{made.impressions:,} suggestion lists, {made.suggestion_clicks:,} suggestion clicks, "
              f"{made.product_clicks:,} result clicks over {args.days} days")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        last = timezone.localdate()
        first = last - timedelta(days=args.days - 1)

        ours, ours_runs = _median_time(lambda: services.rollup_analytics(since=first, until=last), args.runs)
        ours_rows = snapshot()
        naive, naive_runs = _median_time(lambda: naive_rollup(first, last), args.baseline_runs)
        same_rollups = snapshot() == ours_rows
        services.rollup_analytics(since=first, until=last)

        page_first = last - timedelta(days=29)
        page, page_runs = _median_time(lambda: page_from_rollups(page_first, last), 5)
        raw, raw_runs = _median_time(lambda: page_from_raw_events(page_first, last), 3)
        same_page = page_from_rollups(page_first, last) == page_from_raw_events(page_first, last)

        rate = made.events / ours
        print()
        print(markdown_table(
            ["what", "ours (s, median)", "baseline (s, median)", "baseline / ours", "runs (ours; baseline)"],
            [["rollup of every day", f"{ours:.2f}", f"{naive:.2f}", f"{naive / ours:.1f}x",
              f"{', '.join(f'{t:.2f}' for t in ours_runs)}; {', '.join(f'{t:.2f}' for t in naive_runs)}"],
             ["page figures, last 30 days", f"{page:.4f}", f"{raw:.3f}", f"{raw / page:.0f}x",
              f"{', '.join(f'{t:.4f}' for t in page_runs)}; {', '.join(f'{t:.3f}' for t in raw_runs)}"]]))
        print()
        print("rollup baseline: every event row read into Python and counted there; "
              "page baseline: the same figures by aggregate queries over the raw events.")
        print(f"rollup: {rate:,.0f} events/s; {AnalyticsQueryDay.objects.count():,} query-day rows, "
              f"{AnalyticsPositionDay.objects.count():,} position-day rows")
        print(f"rollups of ours and the baseline identical: {same_rollups}; "
              f"page from rollups equals page from raw events: {same_page}")
        ok = same_rollups and same_page and ours < TARGET_SECONDS
        print(f"target: rollup of {made.events:,} events under {TARGET_SECONDS:.0f} s: "
              f"{'met' if ours < TARGET_SECONDS else 'MISSED'}")
        if not ok:
            print("FAILED", file=sys.stderr)
        return 0 if ok else 1
