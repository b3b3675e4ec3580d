"""Refinement chips and zero-result rewrites on the Icecat catalog: what
``search/`` offers and what it costs.

What is measured (the demo catalog, the judged queries of
``icecat/judgments/dev.csv``, a throwaway database with no history):

1. The catalog is loaded and indexed and the suggestions are built as
   ``suggestions_build`` builds them (catalog phrases and the spelling
   dictionary). For each judged query one generated refinement is stored
   approved, as the generator and a merchandiser would leave it: the query
   plus the most frequent catalog word of its results that it lacks
   (provenance: seed query, result count, score). It stands in for the model,
   which this benchmark does not run.
2. Coverage: the share of judged queries offered at least one refinement, the
   mean number offered, and for each query with one seeded typo that finds
   nothing as typed (``exact=True``) the share offered at least one rewrite.
   Groundedness (asserted): every rewrite finds at least one product; the
   share of offered refinements that find at least 3.
3. Cost: ``search/`` at the Django test client, warm (after one untimed
   pass), every clean and misspelt query three times, with refinements (answers cached per version,
   as served) and without (``SUGGESTIONS_REFINEMENTS=False``, the baseline);
   and the computation of one answer with an empty cache (the first search of
   a query after a moderation change: the version's first answers scan the
   suggestion texts, see :data:`suggestions.refinements.SCANS_BEFORE_INDEX`),
   median and p95.
4. The word index: the refinements of every clean query computed without
   the answer cache within one version, interleaved, from the version's word
   index and from one scan of the suggestion texts (the baseline, what the
   index replaced), with the share of identical answers and the index's build
   time (paid once per version).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    require_file,
    resolve_data_dir,
)
from bench.search_quality import read_judgments
from bench.spelling import inject_typo


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.refinements", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the typos (default 0).")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds over the queries (default 3).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    args = build_parser().parse_args(argv)
    judgments_file = require_file(resolve_data_dir(args.data_dir) / "icecat" / "judgments" / "dev.csv",
                                  "The Icecat relevance judgments")
    queries = list(read_judgments(judgments_file))
    rng = random.Random(args.seed)
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp, settings_module="bench.fuzz.settings"):
        from io import StringIO

        from django.core.management import call_command
        from django.test import Client, override_settings
        from django.urls import reverse

        from suggestions import services
        from suggestions.conf import app_settings
        from suggestions.models import Suggestion
        from suggestions.recall import get_backend
        from suggestions.refinements import refinements_for
        from suggestions.text import normalize_query

        with clock.phase("load catalog"):
            call_command("catalog_load_icecat", "--no-progress", stdout=StringIO())
        with clock.phase("index and build"):
            services.rebuild_index()
            services.build_suggestions()
        backend = get_backend()
        clean = list(dict.fromkeys(normalize_query(q) for q in queries if normalize_query(q)))
        with clock.phase("generated stand-ins"):
            for query in clean:
                page = services.search(query, page_size=20, exact=True)
                own = set(query.split())
                words = Counter(w for r in page.results for w in normalize_query(r.document.title).split()
                                if w.isalpha() and len(w) > 2 and w not in own)
                for word, _n in words.most_common(3):
                    text = f"{query} {word}"
                    found = backend.search_products(text, limit=0).total
                    if found >= 3 and not Suggestion.objects.filter(text=text).exists():
                        Suggestion.objects.create(
                            text=text, source="generated", status="approved", weight=1.0,
                            provenance={"seed_query": query, "results": found, "score": 0.5,
                                        "model_version": "bench-stand-in"})
                        break
            services.publish_suggestions()
        misspelt = []
        for query in clean:
            typo = inject_typo(query, rng)
            if typo and backend.search_products(typo[0], limit=0).total == 0:
                misspelt.append(normalize_query(typo[0]))
        with clock.phase("coverage"):
            offered = {q: services.search(q, page_size=20).refinements for q in clean}
            rewrites = {q: services.search(q, page_size=20, exact=True).refinements for q in misspelt}
            refinement_counts = [backend.search_products(r.text, limit=0).total
                                 for rs in offered.values() for r in rs]
            for q, rs in rewrites.items():
                for r in rs:
                    assert r.kind == "rewrite" and backend.search_products(r.text, limit=0).total >= 1, (q, r)
        with clock.phase("cold answers"):
            cold_ms = []
            for q in clean + misspelt:
                services.invalidate_cache()
                found = 0 if q in rewrites else 1
                t0 = time.perf_counter()
                refinements_for(q, found=found)
                cold_ms.append((time.perf_counter() - t0) * 1000)
        with clock.phase("word index"):
            # Refinements of a search that found products, computed (no answer cache) the two ways
            # within one cache version, interleaved: the word index of the version against one scan
            # of the suggestion texts per answer (the baseline, what the index replaced).
            from suggestions import refinements as chips
            from suggestions import serving

            version = serving._current_version()
            builds_ms = []
            for _build in range(5):
                chips.reset_word_index()
                t0 = time.perf_counter()
                index = chips._word_index(version, build=True)
                builds_ms.append((time.perf_counter() - t0) * 1000)
            build_ms = statistics.median(builds_ms)
            limit = app_settings.REFINEMENTS_LIMIT
            index_ms, scan_ms, same = [], [], 0
            for _round in range(args.rounds):
                for q in clean:
                    t0 = time.perf_counter()
                    scanned, _ = chips._compute(q, limit, False, "default", None)
                    scan_ms.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    indexed, _ = chips._compute(q, limit, False, "default", version)
                    index_ms.append((time.perf_counter() - t0) * 1000)
                    same += scanned == indexed
        with clock.phase("endpoint"):
            client, url = Client(), reverse("suggestions:search")
            texts = clean + misspelt
            endpoint_ms: dict[str, list[float]] = {"on": [], "off": []}
            for text in texts:  # warm-up, not timed: every answer computed once (its cost is "cold" above)
                client.get(url, {"q": text, "page_size": 20})
            for _round in range(args.rounds):
                for mode, flags in (("on", {}), ("off", {"SUGGESTIONS_REFINEMENTS": False})):
                    with override_settings(**flags):
                        for text in texts:
                            t0 = time.perf_counter()
                            response = client.get(url, {"q": text, "page_size": 20})
                            endpoint_ms[mode].append((time.perf_counter() - t0) * 1000)
                            assert response.status_code == 200, response.content[:200]
        generated = Suggestion.objects.filter(source="generated").count()
        suggestions = Suggestion.objects.filter(status="approved").count()

    with_any = sum(1 for rs in offered.values() if rs)
    sources = Counter(r.source for rs in offered.values() for r in rs)
    rewrite_sources = Counter(r.source for rs in rewrites.values() for r in rs)
    on, off = endpoint_ms["on"], endpoint_ms["off"]
    print("# Refinement chips and zero-result rewrites (Icecat catalog, judged queries)\n")
    print(f"command: {command_line('bench.refinements', argv)}")
    print(f"judgments: {judgments_file} ({len(clean)} distinct queries); approved suggestions: {suggestions:,} "
          f"(catalog phrases and {generated} generated stand-ins, one per judged query where one finds >= 3 products)")
    print(f"queries offered >= 1 refinement: {with_any}/{len(clean)} ({with_any / len(clean):.0%}); "
          f"mean offered {statistics.mean(len(rs) for rs in offered.values()):.2f}; by source "
          + ", ".join(f"{k} {v}" for k, v in sources.most_common()))
    print(f"refinements that find >= 3 products: {sum(1 for n in refinement_counts if n >= 3)}/{len(refinement_counts)}")
    zero_with = sum(1 for rs in rewrites.values() if rs)
    print(f"misspelt queries (seed {args.seed}) that find nothing as typed: {len(misspelt)}; offered >= 1 rewrite: "
          f"{zero_with}/{len(misspelt)}; by source " + ", ".join(f"{k} {v}" for k, v in rewrite_sources.most_common())
          + "; every rewrite finds >= 1 product (asserted)")
    print(f"one answer with an empty cache (refinements_for): median {statistics.median(cold_ms):.2f} ms, "
          f"p95 {_p95(cold_ms):.2f} ms over {len(cold_ms)} queries")
    print(f"refinements of a search with results, computed without the answer cache within one version "
          f"({len(index_ms)} each, interleaved): word index median {statistics.median(index_ms):.2f} ms, "
          f"p95 {_p95(index_ms):.2f} ms; scan of the texts (baseline) median {statistics.median(scan_ms):.2f} ms, "
          f"p95 {_p95(scan_ms):.2f} ms; ratio of medians {statistics.median(index_ms) / statistics.median(scan_ms):.2f}; "
          f"same answer {same}/{len(index_ms)}; the index ({len(index.rows):,} suggestions, "
          f"{len(index.postings):,} words) built in {build_ms:.1f} ms (median of 5 builds; "
          f"{build_ms / statistics.median(scan_ms):.0f} scans) once per version")
    print(f"search/ at the Django test client ({len(on)} requests each, warm): median {statistics.median(on):.2f} ms, "
          f"p95 {_p95(on):.2f} ms with refinements; median {statistics.median(off):.2f} ms, p95 {_p95(off):.2f} ms "
          f"without (baseline); ratio of medians {statistics.median(on) / statistics.median(off):.2f}")
    examples = [(q, [r.text for r in rs][:3]) for q, rs in offered.items() if rs][:6]
    examples += [(q, [r.text for r in rs][:3]) for q, rs in rewrites.items() if rs][:4]
    print("\n| query | offered (first three) |\n|---|---|")
    for q, texts in examples:
        print(f"| {q} | {'; '.join(texts)} |")
    print(f"\nwall time: {clock.summary()}")
    return 0
