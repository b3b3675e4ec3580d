"""Product search quality on the Icecat catalog with human relevance judgments.

What is measured: nDCG@10 of our search endpoint's logic,
:func:`suggestions.services.search`, against plain BM25 over product titles
on the same tantivy index, over the judged queries of
``icecat/judgments/dev.csv`` (``query,docid,rating``, ratings 0–3, docid = the
Icecat product id = ``catalog.Product.source_id``).

How:

1. Load the Icecat catalog shipped with the demo (``catalog/data/icecat``) into
   a throwaway database with ``manage.py catalog_load_icecat`` and build the
   product index with :func:`suggestions.services.rebuild_index`.
2. Ours: ``services.search(query, page_size=10)``; result documents carry the
   product's primary key, mapped back to its Icecat id.
3. Baseline: the same live tantivy index, queried on the ``title`` field only
   with one BM25 term query per token of the query (the index's own analyzer),
   OR-ed together; top 10.
4. nDCG@10 with gains ``2**rating - 1``; unjudged documents count 0; the ideal
   DCG comes from every judged document of the query (a query whose judged
   documents are all rated 0 scores 0 for both systems). The mean over
   queries, the paired difference with a seeded bootstrap 95% confidence
   interval (queries resampled with replacement), and per-query wins, losses
   and ties.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
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
from bench.metrics import mean, ndcg_at_k, paired_bootstrap_ci, win_loss_tie

TOP_K = 10


@dataclass(frozen=True)
class QueryScore:
    """Both systems' nDCG@10 on one query, with what they returned.

    Attributes:
        query: The judged query.
        ours: nDCG@10 of our search.
        baseline: nDCG@10 of title BM25.
        ours_ids: Icecat ids of our top 10.
        baseline_ids: Icecat ids of the baseline's top 10.
    """

    query: str
    ours: float
    baseline: float
    ours_ids: tuple[str, ...]
    baseline_ids: tuple[str, ...]

    @property
    def diff(self) -> float:
        """``ours - baseline``."""
        return self.ours - self.baseline


def read_judgments(path: Path) -> dict[str, dict[str, float]]:
    """Judgments by query, in file order: ``{query: {docid: rating}}``.

    Args:
        path: ``icecat/judgments/dev.csv``.
    """
    judged: dict[str, dict[str, float]] = defaultdict(dict)
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            judged[row["query"]][row["docid"].strip()] = float(row["rating"])
    return dict(judged)


def title_bm25(query: str, k: int = TOP_K) -> list[str]:
    """Plain BM25 over the title field of the backend's live product index.

    Args:
        query: The user's query.
        k: Number of results.

    Returns:
        Document ids (product primary keys as text), best first.
    """
    import tantivy
    from tantivy import Occur, Query

    from suggestions.recall import get_backend
    from suggestions.recall import tantivy as engine

    live = get_backend()._set(engine.PRODUCTS).live()  # the index services.search reads
    if live is None:
        return []
    schema = live.index.schema
    tokens = engine._query_tokens(query)  # the index's own analyzer
    if not tokens:
        return []
    terms = [Query.term_query(schema, "title", token, index_option="freq") for token in tokens]
    tantivy_query: tantivy.Query = (
        terms[0] if len(terms) == 1 else Query.boolean_query([(Occur.Should, t) for t in terms])
    )
    searcher = live.searcher
    result = searcher.search(tantivy_query, k)
    return [searcher.doc(address).get_first("id") for _score, address in result.hits]


def our_search(query: str, k: int = TOP_K) -> list[str]:
    """Document ids of ``services.search(query, page_size=k)``, best first."""
    from suggestions import services

    return [r.document.id for r in services.search(query, page_size=k).results]


def _f(x: float) -> str:
    return f"{x:.4f}"


def _examples(scores: Sequence[QueryScore], title: str) -> str:
    rows = [[s.query, _f(s.ours), _f(s.baseline), f"{s.diff:+.4f}"] for s in scores]
    return f"### {title}\n\n" + (markdown_table(["query", "ours", "title BM25", "Δ"], rows) if rows else "(none)")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.search_quality``."""
    parser = argparse.ArgumentParser(prog="python -m bench.search_quality",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--resamples", type=int, default=10_000, help="Bootstrap resamples (default 10000).")
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default 0).")
    parser.add_argument("--per-query", action="store_true", help="Also print every query's scores.")
    parser.add_argument("--ranker", type=Path, default=None,
                        help="Also measure search with this search ranker folder active (e.g. one saved by "
                             "bench.search_clicks --save-ranker: learnt on another shop's clicks, it has none "
                             "for these queries).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status.
    """
    args = build_parser().parse_args(argv)
    judgments_file = require_file(resolve_data_dir(args.data_dir) / "icecat" / "judgments" / "dev.csv",
                                  "The Icecat relevance judgments")
    judgments = read_judgments(judgments_file)
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        from io import StringIO

        from django.core.management import call_command

        from catalog.models import Product
        from suggestions import services

        with clock.phase("load catalog"):
            call_command("catalog_load_icecat", "--no-progress", stdout=StringIO())
            source_of = {str(pk): str(source) for pk, source in Product.objects.values_list("pk", "source_id")}
        with clock.phase("index"):
            services.rebuild_index()
            # What `suggestions_build` gives a shop: the catalog gazetteer that
            # query understanding (price filters, brand/type boosts) tags with.
            from suggestions.nlp.gazetteer import build_gazetteer

            build_gazetteer(save=True)
        missing = sum(1 for docs in judgments.values() for d in docs if d not in set(source_of.values()))
        scores: list[QueryScore] = []
        with clock.phase("search"):
            for query, judged in judgments.items():
                ours_ids = tuple(source_of.get(i, f"?{i}") for i in our_search(query))
                base_ids = tuple(source_of.get(i, f"?{i}") for i in title_bm25(query))
                scores.append(QueryScore(query, ndcg_at_k(ours_ids, judged, TOP_K), ndcg_at_k(base_ids, judged, TOP_K),
                                         ours_ids, base_ids))
            from django.test import override_settings

            with override_settings(SUGGESTIONS_SEARCH_USES_UNDERSTANDING=False):
                plain = [ndcg_at_k(tuple(source_of.get(i, f"?{i}") for i in our_search(s.query)),
                               judgments[s.query], TOP_K) for s in scores]
        ranked = None
        if args.ranker:
            from suggestions import learning, search_ranking

            learning.promote(learning.register_version("search_ranker", artefact_uri=str(args.ranker), metrics={}))
            search_ranking.reset()
            ranked = [ndcg_at_k(tuple(source_of.get(i, f"?{i}") for i in our_search(s.query)),
                                judgments[s.query], TOP_K) for s in scores]
        with clock.phase("bootstrap"):
            ours = [s.ours for s in scores]
            base = [s.baseline for s in scores]
            low, high = paired_bootstrap_ci(ours, base, resamples=args.resamples, seed=args.seed)
        products = len(source_of)

    wins, losses, ties = win_loss_tie(ours, base)
    with_relevant = [s for s in scores if any(r > 0 for r in judgments[s.query].values())]
    print("# Search quality: Icecat catalog, human relevance judgments (nDCG@10)\n")
    print(f"command: {command_line('bench.search_quality', argv)}")
    print(f"judgments: {judgments_file} ({len(judgments)} queries, "
          f"{sum(len(d) for d in judgments.values()):,} judged pairs, {missing} judged docs not in the catalog)")
    print(f"catalog: {products:,} products from catalog/data/icecat, indexed with services.rebuild_index()")
    print("gains 2^rating − 1, unjudged = 0, ideal DCG from all judged docs of the query\n")
    rows = [
        ["ours: services.search(q, page_size=10)", _f(mean(ours)),
         _f(mean([s.ours for s in with_relevant]))],
        ["ours without query understanding", _f(mean(plain)),
         _f(mean([p for p, s in zip(plain, scores, strict=True) if s in with_relevant]))],
        *([[f"ours + search ranker ({args.ranker.name}, no clicks for these queries)", _f(mean(ranked)),
            _f(mean([p for p, s in zip(ranked, scores, strict=True) if s in with_relevant]))]] if ranked else []),
        ["plain BM25 over titles (same index)", _f(mean(base)),
         _f(mean([s.baseline for s in with_relevant]))],
        ["Δ ours − BM25", f"{mean(ours) - mean(base):+.4f}",
         f"{mean([s.diff for s in with_relevant]):+.4f}"],
    ]
    print(markdown_table(["system", f"nDCG@10 ({len(scores)} queries)",
                          f"nDCG@10 ({len(with_relevant)} queries with a relevant judged doc)"], rows))
    print(f"\npaired bootstrap 95% CI of Δ (all {len(scores)} queries, {args.resamples:,} resamples, "
          f"seed {args.seed}): [{low:+.4f}, {high:+.4f}]")
    print(f"per query: ours wins {wins}, loses {losses}, ties {ties}\n")
    ordered = sorted(scores, key=lambda s: s.diff)
    print(_examples([s for s in reversed(ordered) if s.diff > 1e-9][:5], "Biggest wins of ours"))
    print()
    print(_examples([s for s in ordered if s.diff < -1e-9][:5], "Biggest losses of ours"))
    if args.per_query:
        print()
        print(_examples(scores, "Every query"))
    print(f"\nwall time: {clock.summary()}")
    return 0
