"""Search ranking from clicks on the real Best Buy log: how high is the product the shopper clicked?

What is measured: for each test search of ``bestbuy/train.csv`` (query and
the sku clicked after it), the rank of the clicked product in the first 10
results: MRR@10, MAP@5 (the Kaggle competition's metric; with one clicked
product per search it is the reciprocal rank within the first 5) and hit@3.

How:

1. Read ``bestbuy/train.csv`` (``user, sku, query, click_time, query_time``)
   and ``bestbuy/sku_name.tsv`` (read at run time, never shipped). Clicks on
   skus without a name (0.7 %) are dropped: they are not in the catalog.
   Queries are normalised (:func:`suggestions.text.normalize_query`).
2. Split by time: the earliest ``--train-share`` of the searches (by query
   time) are history, the rest are test searches.
3. A throwaway shop: the 437 named skus are the catalog's products
   (title = name), indexed with :func:`suggestions.services.rebuild_index`;
   the history's searches are imported with
   :func:`suggestions.services.import_search_history`, and its clicks stored
   as ``ProductClick`` rows (same hashed shopper, click time). The log has no
   result positions: a history click's position is the clicked product's rank
   in the shop's search without the ranker (the depth, 50, when it is not in
   the first 50), which is what the shop would have recorded had it served them.
4. Systems, on the same test searches:

   * **BM25 over names**: the live tantivy index's title field, one BM25 term
     query per token, OR-ed (as ``bench/search_quality``'s baseline);
   * **search without the ranker**: ``services.search(q, page_size=10)`` as
     shipped (multi-field BM25, understanding, did-you-mean);
   * **click prior**: the history's clicks for the exact normalised query,
     most clicked first, then every product by its clicks overall (sees every
     query, also those below the k-anonymity gate the ranker respects);
   * **ours with the ranker**: the learning loop
     (:func:`suggestions.services.retrain`) trains a ``search_ranker`` on the
     history (its newest ``SUGGESTIONS_HELDOUT_DAYS`` held out for the gate),
     and, when promoted, ``services.search(q, page_size=10)`` reranks.

   * **personal re-ranking** (:mod:`suggestions.personal`): shopper profiles
     are rebuilt from the history (:func:`suggestions.services.rebuild_profiles`:
     the history's clicks and understood searches, as the receivers keep
     them), and every test search runs again as its shopper, with their
     profile (``services.search(q, page_size=10, profile=...)``), with the
     ranker off and on. The catalog (names only) has no brand or product
     type, so here a profile holds the products the shopper clicked.
     Returning shoppers are those with a click in the history (every
     history row is a click); the others are new shoppers, for whom nothing
     may change.

5. Per system the mean over test searches, also split into queries that
   passed the k-gate in the history and the others, and the paired bootstrap
   95 % CI of ours minus each baseline (searches resampled). ``--latency N``
   times ``GET /api/suggestions/search/?q=`` at the Django test client for
   ``N`` test queries with the ranker on and off, and the rerank alone
   (median and p95, warm).

``--dense`` runs all of it with hybrid search (``SUGGESTIONS_DENSE``): the
437 names are embedded (``services.embed_products``), search without the
ranker fuses BM25 and the nearest products by reciprocal rank fusion, and the
ranker learns the fusion from its BM25-rank, kNN-rank and similarity features.

``--save-ranker DIR`` keeps the promoted version (model and the whole
history's click statistics) for ``python -m bench.search_quality --ranker DIR``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    markdown_table,
    require_file,
    resolve_data_dir,
)
from bench.metrics import mean, paired_bootstrap_ci

TOP_K = 10


@dataclass(frozen=True)
class LoggedClick:
    """One row of the log: shopper, clicked sku, normalised query, query and click times."""

    user: str
    sku: str
    query: str
    raw_query: str
    query_time: datetime
    click_time: datetime


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def read_log(path: Path, names: dict[str, str]) -> list[LoggedClick]:
    """The log's clicks on named skus with a query and valid times, by query time."""
    from suggestions.text import normalize_query

    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            query, sku = normalize_query(row.get("query") or ""), (row.get("sku") or "").strip()
            qt, ct = _time(row.get("query_time") or ""), _time(row.get("click_time") or "")
            if query and sku in names and qt and ct:
                out.append(LoggedClick(row["user"], sku, query, row["query"], qt, ct))
    out.sort(key=lambda c: (c.query_time, c.user, c.sku))
    return out


def read_names(path: Path) -> dict[str, str]:
    names = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            sku, _tab, name = line.rstrip("\n").partition("\t")
            if sku.strip() and name.strip():
                names[sku.strip()] = name.strip()
    return names


def reciprocal_ranks(ranked: Sequence[str], target: str) -> tuple[float, float, float]:
    """(RR@10, AP@5, hit@3) of one search whose clicked product is ``target``."""
    top = list(ranked[:TOP_K])
    if target not in top:
        return 0.0, 0.0, 0.0
    rank = top.index(target) + 1
    return 1.0 / rank, (1.0 / rank if rank <= 5 else 0.0), (1.0 if rank <= 3 else 0.0)


def click_prior(history: Sequence[LoggedClick]):
    """The click-prior baseline's ranking function (sku lists)."""
    by_query: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for c in history:
        by_query[c.query][c.sku] += 1
        overall[c.sku] += 1
    popular = [s for s, _n in sorted(overall.items(), key=lambda kv: (-kv[1], kv[0]))]

    def rank(query: str) -> list[str]:
        own = [s for s, _n in sorted(by_query.get(query, {}).items(), key=lambda kv: (-kv[1], kv[0]))]
        seen = set(own)
        return (own + [s for s in popular if s not in seen])[:TOP_K]
    return rank


def print_personal(history, test, profile_of, profile_rows: int, without: dict[str, list[float]],
                   with_personal: dict[str, tuple[list, list[bool]]], args) -> None:
    """The personal re-ranking table: returning shoppers (test searches of
    shoppers with a search or click in the history) and new shoppers, without
    and with their profiles, and the paired bootstrap CI on the returning slice."""
    known_users = {c.user for c in history}
    returning = [c.user in known_users for c in test]
    profiled = [bool(profile_of.get(c.user)) for c in test]
    n_ret = sum(returning)
    dims = Counter()
    for profile in profile_of.values():
        if profile:
            dims.update(d for d in ("brands", "product_types", "products") if getattr(profile, d))
    print(f"Personal re-ranking (suggestions.personal, defaults): {profile_rows:,} shopper profiles built from the "
          f"history; {sum(1 for p in profile_of.values() if p):,} of the {len(profile_of):,} test shoppers have "
          f"one (with brands {dims['brands']:,}, product types {dims['product_types']:,}, products "
          f"{dims['products']:,}). Returning shoppers: {n_ret:,} test searches of "
          f"{len({c.user for c, r in zip(test, returning, strict=True) if r}):,} shoppers "
          f"({sum(profiled):,} searches with a profile); new shoppers: {len(test) - n_ret:,} searches.\n")

    def part(values, flags, want=True):
        return [v for v, f in zip(values, flags, strict=True) if f == want]
    table = []
    for name, rr in without.items():
        values, _changed = with_personal[name]
        prr = [v[0] for v in values]
        table.append([name, _f(mean(part(rr, returning))), _f(mean(part(prr, returning))),
                      _f(mean(part(rr, returning, False))), _f(mean(part(prr, returning, False)))])
    print(markdown_table(["MRR@10", f"returning ({n_ret:,}) without", "returning, personal",
                          f"new ({len(test) - n_ret:,}) without", "new, personal"], table))
    print()
    for name, rr in without.items():
        values, changed = with_personal[name]
        prr = [v[0] for v in values]
        a, b = part(prr, returning), part(rr, returning)
        low, high = paired_bootstrap_ci(a, b, resamples=args.resamples, seed=args.seed)
        new_a, new_b = part(prr, returning, False), part(rr, returning, False)
        print(f"{name}: personal − without, returning shoppers: MRR@10 {mean(a) - mean(b):+.4f} "
              f"(paired bootstrap 95% CI [{low:+.4f}, {high:+.4f}]); top 10 changed on "
              f"{sum(part(changed, returning)):,} of {n_ret:,} returning and "
              f"{sum(part(changed, returning, False)):,} of {len(new_a):,} new shoppers' searches "
              f"(new shoppers' MRR@10 {mean(new_a) - mean(new_b):+.4f})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.search_clicks", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--train-share", type=float, default=0.8,
                        help="Share of the searches (earliest first) that are history (default 0.8).")
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N clicks of the log (0: all).")
    parser.add_argument("--resamples", type=int, default=5000, help="Bootstrap resamples (default 5000).")
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default 0).")
    parser.add_argument("--save-ranker", type=Path, default=None,
                        help="Copy the promoted ranker's folder (model and click statistics) here, e.g. for "
                             "bench.search_quality --ranker.")
    parser.add_argument("--dense", action="store_true",
                        help="Hybrid search throughout: embed the catalog and fuse dense recall (see above).")
    parser.add_argument("--latency", type=int, default=200,
                        help="Test queries timed at the test client with the ranker on and off (0: skip).")
    return parser


def _f(x: float) -> str:
    return f"{x:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    log_file = require_file(data_dir / "bestbuy" / "train.csv", "The Best Buy search log")
    names_file = require_file(data_dir / "bestbuy" / "sku_name.tsv", "The Best Buy product names")
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        from django.contrib.contenttypes.models import ContentType
        from django.test import override_settings
        from django.utils import timezone

        from catalog.models import Product
        from suggestions import search_ranking, services
        from suggestions.conf import app_settings
        from suggestions.models import ProductClick
        from suggestions.text import hash_identifier

        hybrid = override_settings(SUGGESTIONS_DENSE=True) if args.dense else None
        if hybrid is not None:
            hybrid.enable()
        names = read_names(names_file)
        clicks = read_log(log_file, names)
        if args.limit:
            clicks = clicks[:args.limit]
        cut = int(len(clicks) * args.train_share)
        history, test = clicks[:cut], clicks[cut:]
        with clock.phase("catalog and index"):
            Product.objects.bulk_create([Product(title=name, source_id=f"bestbuy-{sku}") for sku, name in names.items()])
            pk_of = {src.removeprefix("bestbuy-"): str(pk) for pk, src in Product.objects.values_list("pk", "source_id")}
            sku_of = {pk: sku for sku, pk in pk_of.items()}
            services.rebuild_index()
            from suggestions.nlp.gazetteer import build_gazetteer

            build_gazetteer(save=True)
        embedded = None
        if args.dense:
            from suggestions import dense

            with clock.phase("embed"):
                embedded = services.embed_products().stored
                dense.reset()
        with clock.phase("history"):
            services.import_search_history(
                services.ImportedSearch(c.user, c.raw_query, c.query_time) for c in history)
            positions: dict[str, list[str]] = {}
            for q in {c.query for c in history}:
                _ctx, cands = search_ranking.recall(q)
                positions[q] = [x.id for x in cands]
            ct = ContentType.objects.get_for_model(Product)
            salt = app_settings.HASH_SALT
            import uuid

            rows = []
            for c in history:
                pk = pk_of[c.sku]
                shown = positions[c.query]
                rows.append(ProductClick(
                    created_at=timezone.make_aware(c.click_time) if timezone.is_naive(c.click_time) else c.click_time,
                    request_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{c.user}|{c.query}|{c.query_time.isoformat()}"),
                    query=c.query, content_type=ct, object_id=pk,
                    position=shown.index(pk) if pk in shown else len(shown),
                    actor_hash=hash_identifier(f"import:{c.user}", salt)))
            ProductClick.objects.bulk_create(rows, batch_size=2000)

        from bench.search_quality import title_bm25

        def ours(q: str) -> list[str]:
            return [sku_of.get(r.document.id, "") for r in services.search(q, page_size=TOP_K).results]

        def bm25(q: str) -> list[str]:
            return [sku_of.get(i, "") for i in title_bm25(q, TOP_K)]

        lists: dict[str, dict[str, list[str]]] = {}

        def scored(rank, name: str = "") -> list[tuple[float, float, float]]:
            cache: dict[str, list[str]] = lists.setdefault(name, {}) if name else {}
            out = []
            for c in test:
                if c.query not in cache:
                    cache[c.query] = rank(c.query)
                out.append(reciprocal_ranks(cache[c.query], c.sku))
            return out

        with clock.phase("profiles"):
            # Shopper profiles from the history's clicks and understood searches
            # (suggestions.personal), as the receivers would have kept them.
            profile_rows = services.rebuild_profiles()
            profile_of = {u: services.shopper_profile(hash_identifier(f"import:{u}", app_settings.HASH_SALT))
                          for u in {c.user for c in test}}

        def personal_scored(baseline: str) -> tuple[list[tuple[float, float, float]], list[bool]]:
            """Every test search as its shopper (with their profile, if any); and
            how many top-10 lists differ from ``baseline``'s (no profile given)."""
            out, changed, cache = [], [], {}
            for c in test:
                profile = profile_of.get(c.user)
                key = (c.query, c.user if profile else "")
                if key not in cache:
                    cache[key] = [sku_of.get(r.document.id, "") for r in
                                  services.search(c.query, page_size=TOP_K, profile=profile).results]
                changed.append(cache[key] != lists[baseline][c.query])
                out.append(reciprocal_ranks(cache[key], c.sku))
            return out, changed

        with clock.phase("baselines"):
            results = {"BM25 over names (same index)": scored(bm25), "click prior (history's clicks per query)":
                       scored(click_prior(history))}
        min_users = app_settings.MIN_DISTINCT_USERS
        with clock.phase("retrain"):
            # Before any test search is recorded: the loop sees the history only.
            report = services.retrain("search_ranker")
        personal_results: dict[str, tuple[list, list[bool]]] = {}
        with clock.phase("baselines"), override_settings(SUGGESTIONS_SEARCH_RANKER=False):
            results["search without the ranker"] = scored(ours, "search without the ranker")
            personal_results["search without the ranker"] = personal_scored("search without the ranker")
        if args.save_ranker and report.promoted:
            import shutil

            shutil.copytree(report.version.artefact_uri, args.save_ranker, dirs_exist_ok=True)
            served = search_ranking.serving_stats_path(report.version.version)
            if served.exists():  # the whole history's statistics, as served
                shutil.copy(served, Path(args.save_ranker) / "clicks.json.gz")
        with clock.phase("ours"):
            search_ranking.reset()
            results["ours: search with the ranker"] = scored(ours, "ours: search with the ranker")
            personal_results["ours: search with the ranker"] = personal_scored("ours: search with the ranker")
        latency = {}
        if args.latency:
            from django.test import Client

            client = Client()
            queries = sorted({c.query for c in test})[: args.latency]
            with clock.phase("latency"):
                for label, on in (("ranker off", False), ("ranker on", True)):
                    with override_settings(SUGGESTIONS_SEARCH_RANKER=on):
                        for q in queries[:20]:  # warm-up
                            client.get("/api/suggestions/search/", {"q": q})
                        times = []
                        for q in queries:
                            started = time.perf_counter()
                            client.get("/api/suggestions/search/", {"q": q})
                            times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    latency[label] = (statistics.median(times), times[int(0.95 * (len(times) - 1))], len(times))
                if report.promoted:
                    # The rerank alone: features and one LightGBM call on recall's first 50.
                    from suggestions.recall import SearchFilters, get_backend

                    times = []
                    for q in queries:
                        found = get_backend().search_products(q, limit=app_settings.SEARCH_RANKER_DEPTH)
                        started = time.perf_counter()
                        search_ranking.rerank(q, None, SearchFilters(), found, offset=0, limit=TOP_K)
                        times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    latency["rerank alone (features + LightGBM, 50 candidates)"] = (
                        statistics.median(times), times[int(0.95 * (len(times) - 1))], len(times))
                # services.search itself for the returning shoppers' searches (ranker as promoted),
                # with their profile and without; and the personal re-rank of 50 hits alone.
                mine = [(c.query, profile_of[c.user]) for c in test if profile_of.get(c.user)][: args.latency]
                if mine:
                    from suggestions import personal
                    from suggestions.recall import get_backend

                    for q, p in mine:  # warm-up (understanding cache, index readers)
                        services.search(q, page_size=TOP_K, profile=p)
                    timed: dict[bool, list[float]] = {False: [], True: []}
                    for q, p in mine:  # interleaved, so that neither gets the warmer machine
                        for use in (False, True):
                            started = time.perf_counter()
                            services.search(q, page_size=TOP_K, profile=p if use else None)
                            timed[use].append((time.perf_counter() - started) * 1000)
                    for use, label in ((False, "services.search, returning shoppers, no profile"),
                                       (True, "services.search, returning shoppers, their profile")):
                        times = sorted(timed[use])
                        latency[label] = (statistics.median(times), times[int(0.95 * (len(times) - 1))], len(times))
                    times = []
                    for q, p in mine:
                        hits = list(get_backend().search_products(q, limit=app_settings.PERSONALIZATION_DEPTH).hits)
                        started = time.perf_counter()
                        personal.rerank_hits(hits, p)
                        times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    latency["personal re-rank alone (50 hits)"] = (
                        statistics.median(times), times[int(0.95 * (len(times) - 1))], len(times))
        if hybrid is not None:
            hybrid.disable()

    ours_key = "ours: search with the ranker"
    print("# Search ranking from clicks: the Best Buy log (clicked product's rank)\n")
    print(f"command: {command_line('bench.search_clicks', argv)}")
    print(f"log: {len(clicks):,} clicks on named skus; history {len(history):,} (to "
          f"{history[-1].query_time:%Y-%m-%d %H:%M}), test {len(test):,} searches "
          f"({len({c.query for c in test}):,} distinct queries); catalog {len(names)} products")
    if args.dense:
        print(f"hybrid search throughout (SUGGESTIONS_DENSE): {embedded:,} products embedded; without the ranker "
              "BM25 and the nearest products are fused by reciprocal rank fusion, the ranker learns the fusion")
    print(f"history click positions (simulated: rank in search without the ranker): "
          f"{sum(1 for r in rows if r.position < 10) / max(len(rows), 1):.1%} in the first 10")
    trained = report.version.metrics.get("train", {}) if report.version else {}
    print(f"ranker: {report.version.version if report.version else '-'}, {trained.get('groups', 0):,} training "
          f"groups, position-bias eta {trained.get('position_bias_eta', 0)}, "
          f"{'promoted' if report.promoted else 'not promoted'}: {report.gate.reason if report.gate else ''}\n")
    table = []
    base_rr = {}
    for name, values in results.items():
        rr = [v[0] for v in values]
        base_rr[name] = rr
        table.append([name, _f(mean(rr)), _f(mean([v[1] for v in values])), _f(mean([v[2] for v in values]))])
    print(markdown_table(["system", "MRR@10", "MAP@5", "hit@3"], table))
    print()
    shoppers: dict[str, set[str]] = defaultdict(set)
    for c in history:
        shoppers[c.query].add(c.user)
    known = [len(shoppers.get(c.query, ())) >= min_users for c in test]
    print(f"MRR@10 by test query: searched in the history by at least {min_users} shoppers (the k-gate) "
          f"or not\n")
    print(markdown_table(
        ["system", f"gated queries ({sum(known):,})", f"other queries ({len(known) - sum(known):,})"],
        [[name, _f(mean([r for r, k in zip(rr, known, strict=True) if k])),
          _f(mean([r for r, k in zip(rr, known, strict=True) if not k]))] for name, rr in base_rr.items()]))
    print()
    for name, rr in base_rr.items():
        if name == ours_key:
            continue
        low, high = paired_bootstrap_ci(base_rr[ours_key], rr, resamples=args.resamples, seed=args.seed)
        print(f"ours − {name}: MRR@10 {mean(base_rr[ours_key]) - mean(rr):+.4f} "
              f"(paired bootstrap 95% CI [{low:+.4f}, {high:+.4f}])")
    print()
    print_personal(history, test, profile_of, profile_rows, {k: base_rr[k] for k in personal_results},
                   personal_results, args)
    if latency:
        print()
        print(markdown_table(["search/ at the test client (ranker off/on), else as named", "median ms", "p95 ms", "queries"],
                             [[k, f"{m:.2f}", f"{p:.2f}", n] for k, (m, p, n) in latency.items()]))
        off, on = latency["ranker off"][0], latency["ranker on"][0]
        print(f"median ratio on/off: {on / off:.2f}")
    print(f"\nwall time: {clock.summary()}")
    return 0
