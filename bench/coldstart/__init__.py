"""Cold-start suggestions on the Icecat catalog: no search history, real queries.

What is measured: how well :func:`suggestions.services.suggest` completes real
shoppers' queries for this catalog when the shop has no search history yet,
so every suggestion comes from the catalog
(:func:`suggestions.mining.mine_catalog`), against a baseline of the most
frequent title n-grams; and whether each served suggestion returns products.

How:

1. Load the demo's Icecat catalog (``manage.py catalog_load_icecat``), build
   the product index (:func:`suggestions.services.rebuild_index`) and the
   suggestions (:func:`suggestions.services.build_suggestions`) with an empty
   history.
2. Queries: the distinct judged queries of ``icecat/judgments/dev.csv`` (real
   queries for this catalog), normalised with
   :func:`suggestions.text.normalize_query`.
3. Pairs: every query and every prefix of it (1 character up to the whole
   query). A completion is a hit when it equals the query or a shorter query
   made of its leading words ("hp laser" for "hp laser printer"). Rank of the
   first hit among the top ``--top`` (8) completions: MRR@8, Success@1 and
   Success@8, over all pairs and split by prefix length (1–3, 4+ characters).
4. Ours: ``services.suggest(prefix, limit=8)``, anonymous.
   Baseline: the word n-grams (1 to 3 words) of the normalised product titles,
   the N most frequent by number of products, where N is the number of
   suggestions ours serves; a prefix is answered with the n-grams starting
   with it, most frequent first (ties by text).
5. Returns products: each distinct completion shown in the evaluation, and
   each suggestion in the served set, is searched on the live product index
   with *every* word required (the per-word field and stem matching of the
   tantivy backend's search): the share that returns at least 3 products.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
from bench.metrics import RankStats

#: Completions asked for and ranks counted.
TOP_K = 8
#: Prefixes up to this many characters are "short".
SHORT_MAX = 3
#: Longest title n-gram of the baseline, in words.
BASELINE_MAX_WORDS = 3
#: A suggestion "returns products" when at least this many match all its words.
MIN_RESULTS = 3


@dataclass
class Evaluation:
    """Ranks of one system over all pairs and by prefix length, and what it showed."""

    overall: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    short: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    long: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    shown: set[str] = field(default_factory=set)
    per_query: dict[str, float] = field(default_factory=dict)


def read_queries(path: Path) -> list[str]:
    """Distinct normalised judged queries, in file order."""
    from suggestions.text import normalize_query

    seen: dict[str, None] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            query = normalize_query(row.get("query") or "")
            if query:
                seen.setdefault(query, None)
    return list(seen)


def targets_of(query: str) -> set[str]:
    """The query and every shorter query made of its leading words."""
    words = query.split()
    return {" ".join(words[:n]) for n in range(1, len(words) + 1)}


def rank_of_hit(ranked: Sequence[str], targets: set[str], k: int = TOP_K) -> int:
    """1-based position of the first completion in ``targets`` within ``k``; 0 if none."""
    for position, text in enumerate(ranked[:k], start=1):
        if text in targets:
            return position
    return 0


def evaluate(queries: Iterable[str], answer: Callable[[str], list[str]]) -> Evaluation:
    """Rank every (prefix, query) pair; answers are cached per prefix."""
    cache: dict[str, list[str]] = {}
    result = Evaluation()
    for query in queries:
        targets = targets_of(query)
        reciprocal = []
        for length in range(1, len(query) + 1):
            prefix = query[:length]
            if not prefix.strip():
                continue
            ranked = cache.get(prefix)
            if ranked is None:
                ranked = cache[prefix] = answer(prefix)[:TOP_K]
                result.shown.update(ranked)
            rank = rank_of_hit(ranked, targets)
            result.overall.add(rank)
            (result.short if length <= SHORT_MAX else result.long).add(rank)
            reciprocal.append(1.0 / rank if rank else 0.0)
        result.per_query[query] = sum(reciprocal) / len(reciprocal) if reciprocal else 0.0
    return result


def title_ngrams(titles: Iterable[str], max_words: int = BASELINE_MAX_WORDS) -> Counter:
    """Products per word n-gram (1..``max_words`` words) of the normalised titles."""
    from suggestions.text import normalize_query

    counts: Counter = Counter()
    for title in titles:
        words = normalize_query(title).split()
        grams = {" ".join(words[i:i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}
        counts.update(grams)
    return counts


def prefix_table(counts: Counter, size: int) -> Callable[[str], list[str]]:
    """The baseline's answer: the ``size`` most frequent texts, prefix-matched by count."""
    kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]
    by_first: dict[str, list[str]] = defaultdict(list)
    for text, _n in kept:
        by_first[text[:1]].append(text)

    def answer(prefix: str) -> list[str]:
        out = []
        for text in by_first.get(prefix[:1], ()):
            if text.startswith(prefix):
                out.append(text)
                if len(out) == TOP_K:
                    break
        return out

    return answer


def all_words_count(text: str) -> int:
    """Products of the live index matching every word of ``text`` (as the tantivy
    backend matches one word: any search field, or the stem in the stemmed fields)."""
    from tantivy import Occur, Query

    from suggestions.recall import get_backend
    from suggestions.recall import tantivy as engine

    live = get_backend()._set(engine.PRODUCTS).live()
    if live is None:
        return 0
    schema = live.index.schema
    tokens = engine._query_tokens(text)
    if not tokens:
        return 0
    per_word = [
        Query.disjunction_max_query(
            [Query.term_query(schema, name, token, index_option="freq") for name, _boost in engine.SEARCH_FIELDS]
            + [Query.term_query(schema, name, stem, index_option="freq")
               for name, _source, _boost in engine.STEM_FIELDS for stem in engine._STEMMER.analyze(token)[:1]])
        for token in tokens
    ]
    query = Query.boolean_query([(Occur.Must, q) for q in per_word])
    return int(live.searcher.search(query, 1, count=True).count)


def share_returning(texts: Iterable[str], counter: Callable[[str], int]) -> tuple[int, int, list[str]]:
    """(returning ≥ MIN_RESULTS, total, examples of those that do not)."""
    texts = sorted(set(texts))
    failing = [t for t in texts if counter(t) < MIN_RESULTS]
    return len(texts) - len(failing), len(texts), failing


def _our_answer(prefix: str) -> list[str]:
    from suggestions import services

    return [item.text for item in services.suggest(prefix, limit=TOP_K).items]


def _f(x: float) -> str:
    return f"{x:.4f}"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.coldstart``."""
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--examples", nargs="*", default=["lap", "laptop", "monitor", "hdmi", "usb", "printer",
                                                          "mon", "mouse", "cabel", "startech", "samsung"],
                        help="Prefixes whose completions are printed.")
    parser.add_argument("--per-query", action="store_true", help="Also print each query's MRR over its prefixes.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status.
    """
    args = build_parser().parse_args(argv)
    judgments = require_file(resolve_data_dir(args.data_dir) / "icecat" / "judgments" / "dev.csv",
                             "The Icecat relevance judgments")
    queries = read_queries(judgments)
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        from io import StringIO

        from django.core.management import call_command

        from catalog.models import Product
        from suggestions import services
        from suggestions.models import Suggestion, SuggestionStatus

        with clock.phase("load catalog"):
            call_command("catalog_load_icecat", "--no-progress", stdout=StringIO())
            titles = list(Product.objects.values_list("title", flat=True))
        with clock.phase("index"):
            services.rebuild_index()
        with clock.phase("build"):
            report = services.build_suggestions()
            served = list(Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", flat=True))
            rules = Counter((Suggestion.objects.get(text=t).provenance or {}).get("rule", "?") for t in served)
        with clock.phase("eval ours"):
            ours = evaluate(queries, _our_answer)
        with clock.phase("eval baseline"):
            ngrams = title_ngrams(titles)
            baseline_set = sorted(ngrams.items(), key=lambda item: (-item[1], item[0]))[:len(served)]
            baseline = evaluate(queries, prefix_table(ngrams, len(served)))
        with clock.phase("count results"):
            cache: dict[str, int] = {}

            def counter(text: str) -> int:
                if text not in cache:
                    cache[text] = all_words_count(text)
                return cache[text]

            ours_shown = share_returning(ours.shown, counter)
            base_shown = share_returning(baseline.shown, counter)
            ours_all = share_returning(served, counter)
            base_all = share_returning([t for t, _n in baseline_set], counter)
        examples = {prefix: _our_answer(prefix) for prefix in args.examples}
        products = len(titles)

    print("# Cold-start suggestions: Icecat catalog, no search history, judged queries\n")
    print(f"command: {command_line('bench.coldstart', argv)}")
    print(f"queries: {len(queries)} distinct judged queries from {judgments}")
    print(f"catalog: {products:,} products; ours serves {len(served):,} catalog suggestions "
          f"({report.history} from history) by rule: "
          + ", ".join(f"{rule} {n:,}" for rule, n in rules.most_common()))
    print(f"baseline: the {len(served):,} most frequent title n-grams (1–{BASELINE_MAX_WORDS} words)")
    print(f"pairs (prefix, query): {ours.overall.n:,} (prefixes of 1–{SHORT_MAX} chars: {ours.short.n:,})\n")
    rows = []
    for name, ev in (("ours (services.suggest)", ours), ("most frequent title n-grams", baseline)):
        rows.append([name, _f(ev.overall.mrr()), _f(ev.overall.success_at(1)), _f(ev.overall.success_at(TOP_K)),
                     _f(ev.short.mrr()), _f(ev.long.mrr()), _f(ev.long.success_at(TOP_K))])
    rows.append(["Δ ours − baseline", f"{ours.overall.mrr() - baseline.overall.mrr():+.4f}",
                 f"{ours.overall.success_at(1) - baseline.overall.success_at(1):+.4f}",
                 f"{ours.overall.success_at(TOP_K) - baseline.overall.success_at(TOP_K):+.4f}",
                 f"{ours.short.mrr() - baseline.short.mrr():+.4f}", f"{ours.long.mrr() - baseline.long.mrr():+.4f}",
                 f"{ours.long.success_at(TOP_K) - baseline.long.success_at(TOP_K):+.4f}"])
    print(markdown_table(["system", f"MRR@{TOP_K}", "S@1", f"S@{TOP_K}", f"MRR@{TOP_K} 1–{SHORT_MAX} chars",
                          f"MRR@{TOP_K} {SHORT_MAX + 1}+ chars", f"S@{TOP_K} {SHORT_MAX + 1}+ chars"], rows))
    wins = sum(1 for q in queries if ours.per_query[q] > baseline.per_query[q] + 1e-12)
    losses = sum(1 for q in queries if ours.per_query[q] < baseline.per_query[q] - 1e-12)
    print(f"\nper query (MRR over its prefixes): ours wins {wins}, loses {losses}, ties {len(queries) - wins - losses}\n")
    print(f"### Suggestions that return ≥ {MIN_RESULTS} products (every word required)\n")
    share_rows = []
    for name, (ok, total, _failing) in (("ours, shown in the evaluation", ours_shown),
                                        ("baseline, shown in the evaluation", base_shown),
                                        ("ours, whole served set", ours_all),
                                        ("baseline, whole candidate set", base_all)):
        share_rows.append([name, f"{total:,}", f"{total - ok:,}", _f(ok / total if total else 1.0)])
    print(markdown_table(["suggestions", "count", f"< {MIN_RESULTS} products", "share ≥ 3"], share_rows))
    if ours_all[2]:
        print("\nours below the threshold: " + ", ".join(ours_all[2][:20]))
    print("\n### Example completions (ours)\n")
    for prefix, items in examples.items():
        print(f"- `{prefix}`: " + (" · ".join(items) if items else "(none)"))
    if args.per_query:
        print("\n### Per query (MRR over its prefixes)\n")
        print(markdown_table(["query", "ours", "baseline"],
                             [[q, _f(ours.per_query[q]), _f(baseline.per_query[q])] for q in queries]))
    print(f"\nwall time: {clock.summary()}")
    return 0
