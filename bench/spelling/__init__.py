"""Did-you-mean on misspelt Icecat queries: search quality with and without
spelling correction, how often the typo is corrected back, and its cost.

What is measured, on the judged queries of ``icecat/judgments/dev.csv``
(nDCG@10, gains ``2**rating - 1``, as ``bench.search_quality``):

1. Each query gets one seeded typo in one of its words of at least four ASCII
   letters: a deletion, a transposition of neighbours or a substitution by a
   neighbouring key, chosen at random (``--seed``). Queries without such a
   word keep their text and are left out of the typo figures (counted).
2. The catalog shipped with the demo is loaded and indexed, and the spelling
   dictionary is built as ``suggestions_build`` builds it (catalog words; the
   throwaway database has no history).
3. For every misspelt query: ``services.search(typo, exact=True)`` (the
   baseline: no correction), ``services.search(typo)`` with did-you-mean as
   configured by default (queries with no result, and words matching no
   product in queries with results), the same with zero-result queries only
   (``SUGGESTIONS_DIDYOUMEAN_UNMATCHED_WORDS=False``), and the clean query as
   the ceiling. "Corrected back" means ``corrected_query`` equals the clean
   query's normal form; "miscorrected", a correction to anything else.
4. Costs: median and p95 of one correction lookup (``spelling.correct`` on
   the misspelt text, the dictionary already loaded), the dictionary's load
   time, and the median ``services.search`` time of a misspelt query with and
   without correction.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence

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
from bench.search_quality import read_judgments

TOP_K = 10
_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours(char: str) -> str:
    for r, row in enumerate(_KEYBOARD):
        c = row.find(char)
        if c >= 0:
            near = row[max(0, c - 1):c] + row[c + 1:c + 2]
            for other in (r - 1, r + 1):
                if 0 <= other < len(_KEYBOARD):
                    near += _KEYBOARD[other][max(0, c - 1):c + 1]
            return near.replace(char, "") or "e"
    return "e"


def inject_typo(query: str, rng: random.Random) -> tuple[str, str] | None:
    """``(misspelt query, kind)`` with one typo in a word of at least four ASCII
    letters, or None when the query has no such word."""
    words = query.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isascii() and w.isalpha()]
    if not candidates:
        return None
    i = rng.choice(candidates)
    word = words[i].lower()
    kind = rng.choice(["deletion", "transposition", "substitution"])
    p = rng.randrange(1, len(word) - 1) if kind == "transposition" else rng.randrange(len(word))
    if kind == "deletion":
        typo = word[:p] + word[p + 1:]
    elif kind == "transposition":
        typo = word[:p] + word[p + 1] + word[p] + word[p + 2:]
        if typo == word:  # a doubled letter: substitute instead
            kind, typo = "substitution", word[:p] + rng.choice(_neighbours(word[p])) + word[p + 1:]
    else:
        typo = word[:p] + rng.choice(_neighbours(word[p])) + word[p + 1:]
    words[i] = typo
    return " ".join(words), kind


def _f(x: float) -> str:
    return f"{x:.4f}"


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "0/0"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.spelling``."""
    parser = argparse.ArgumentParser(prog="python -m bench.spelling", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the typos and the bootstrap (default 0).")
    parser.add_argument("--resamples", type=int, default=10_000, help="Bootstrap resamples (default 10000).")
    parser.add_argument("--lookups", type=int, default=20,
                        help="Timed repetitions of each query's correction lookup (default 20).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    args = build_parser().parse_args(argv)
    judgments_file = require_file(resolve_data_dir(args.data_dir) / "icecat" / "judgments" / "dev.csv",
                                  "The Icecat relevance judgments")
    judgments = read_judgments(judgments_file)
    rng = random.Random(args.seed)
    typos = {q: inject_typo(q, rng) for q in judgments}
    clock = Stopwatch()
    # The throttles out of the way (bench.fuzz.settings): the endpoint is timed request after request.
    with django_environment(keep=args.keep_tmp, settings_module="bench.fuzz.settings"):
        from io import StringIO

        from django.core.management import call_command
        from django.test import override_settings

        from catalog.models import Product
        from suggestions import services, spelling
        from suggestions.adapter import get_adapter
        from suggestions.mining import query_stats
        from suggestions.nlp.gazetteer import build_gazetteer
        from suggestions.text import normalize_query

        with clock.phase("load catalog"):
            call_command("catalog_load_icecat", "--no-progress", stdout=StringIO())
            source_of = {str(pk): str(source) for pk, source in Product.objects.values_list("pk", "source_id")}
        with clock.phase("index"):
            services.rebuild_index()
            build_gazetteer(save=True)
            words = spelling.build_dictionary(get_adapter().iter_documents(batch_size=500), query_stats())
            spelling.reset()
            started = time.perf_counter()
            spelling.get_corrector()
            load_ms = (time.perf_counter() - started) * 1000

        def ranked(page) -> tuple[str, ...]:
            return tuple(source_of.get(r.document.id, f"?{r.document.id}") for r in page.results)

        rows: list[dict] = []
        search_ms = {"exact": [], "dym": []}
        with clock.phase("search"):
            for query, judged in judgments.items():
                if typos[query] is None:
                    continue
                typo, kind = typos[query]
                clean_page = services.search(query, page_size=TOP_K)
                clean = ndcg_at_k(ranked(clean_page), judged, TOP_K)
                clean_exact = ndcg_at_k(ranked(services.search(query, page_size=TOP_K, exact=True)), judged, TOP_K)
                t0 = time.perf_counter()
                exact = services.search(typo, page_size=TOP_K, exact=True)
                t1 = time.perf_counter()
                dym = services.search(typo, page_size=TOP_K)
                t2 = time.perf_counter()
                search_ms["exact"].append((t1 - t0) * 1000)
                search_ms["dym"].append((t2 - t1) * 1000)
                with override_settings(SUGGESTIONS_DIDYOUMEAN_UNMATCHED_WORDS=False):
                    low = services.search(typo, page_size=TOP_K)
                rows.append({
                    "query": query, "typo": typo, "kind": kind, "clean": clean, "clean_exact": clean_exact,
                    "clean_fix": clean_page.corrected_query,
                    "exact": ndcg_at_k(ranked(exact), judged, TOP_K), "exact_total": exact.total,
                    "dym": ndcg_at_k(ranked(dym), judged, TOP_K), "dym_fix": dym.corrected_query,
                    "low": ndcg_at_k(ranked(low), judged, TOP_K), "low_fix": low.corrected_query,
                    "target": normalize_query(query),
                })
        with clock.phase("lookups"):
            lookup_us = []
            for row in rows:
                for _ in range(args.lookups):
                    t0 = time.perf_counter()
                    spelling.correct(normalize_query(row["typo"]))
                    lookup_us.append((time.perf_counter() - t0) * 1e6)
            direct = [spelling.correct(normalize_query(r["typo"])) for r in rows]
        with clock.phase("endpoint"):
            # search/ at the Django test client, warm: every clean and misspelt
            # query, with did-you-mean and synonyms (one approved pair) and without.
            from django.test import Client
            from django.urls import reverse

            services.add_synonym("laptop", "notebook")
            client, url = Client(), reverse("suggestions:search")
            texts = [r["query"] for r in rows] + [r["typo"] for r in rows]
            endpoint_ms: dict[str, list[float]] = {"on": [], "off": []}
            for _round in range(3):
                for mode, flags in (("on", {}), ("off", {"SUGGESTIONS_DIDYOUMEAN": False,
                                                         "SUGGESTIONS_SYNONYMS": False})):
                    with override_settings(**flags):
                        for text in texts:
                            t0 = time.perf_counter()
                            response = client.get(url, {"q": text, "page_size": 20})
                            endpoint_ms[mode].append((time.perf_counter() - t0) * 1000)
                            assert response.status_code == 200, response.content[:200]
        with clock.phase("bootstrap"):
            ci0 = paired_bootstrap_ci([r["dym"] for r in rows], [r["exact"] for r in rows],
                                      resamples=args.resamples, seed=args.seed)
            ci1 = paired_bootstrap_ci([r["low"] for r in rows], [r["exact"] for r in rows],
                                      resamples=args.resamples, seed=args.seed)
        products = len(source_of)

    n = len(rows)
    zero = [r for r in rows if r["exact_total"] == 0]
    print("# Did-you-mean: Icecat judged queries with one typo each (nDCG@10)\n")
    print(f"command: {command_line('bench.spelling', argv)}")
    print(f"judgments: {judgments_file} ({len(judgments)} queries; {n} with a word to misspell, "
          f"{len(judgments) - n} left out); typos seeded {args.seed}: "
          + ", ".join(f"{k} {sum(1 for r in rows if r['kind'] == k)}"
                      for k in ("deletion", "transposition", "substitution")))
    print(f"catalog: {products:,} products; spelling dictionary: {len(words):,} words "
          f"(catalog titles, brands, types), loaded in {load_ms:.0f} ms")
    print(f"misspelt queries that find nothing as typed: {len(zero)}/{n}\n")
    table = [
        ["clean queries (ceiling)", _f(mean([r["clean"] for r in rows])), "", ""],
        ["misspelt, no correction (baseline: exact=True)", _f(mean([r["exact"] for r in rows])), "", ""],
        ["misspelt, did-you-mean (default settings)", _f(mean([r["dym"] for r in rows])),
         _pct(sum(1 for r in rows if r["dym_fix"] == r["target"]), n),
         _pct(sum(1 for r in rows if r["dym_fix"] and r["dym_fix"] != r["target"]), n)],
        ["misspelt, did-you-mean of zero-result queries only", _f(mean([r["low"] for r in rows])),
         _pct(sum(1 for r in rows if r["low_fix"] == r["target"]), n),
         _pct(sum(1 for r in rows if r["low_fix"] and r["low_fix"] != r["target"]), n)],
    ]
    print(markdown_table(["system", f"nDCG@10 ({n} queries)", "corrected back", "miscorrected"], table))
    w0 = win_loss_tie([r["dym"] for r in rows], [r["exact"] for r in rows])
    w1 = win_loss_tie([r["low"] for r in rows], [r["exact"] for r in rows])
    print(f"\nΔ did-you-mean (default) − baseline: {mean([r['dym'] - r['exact'] for r in rows]):+.4f}, "
          f"95% CI [{ci0[0]:+.4f}, {ci0[1]:+.4f}]; wins {w0[0]}, losses {w0[1]}, ties {w0[2]}")
    print(f"Δ did-you-mean (zero-result only) − baseline: {mean([r['low'] - r['exact'] for r in rows]):+.4f}, "
          f"95% CI [{ci1[0]:+.4f}, {ci1[1]:+.4f}]; wins {w1[0]}, losses {w1[1]}, ties {w1[2]}")
    if zero:
        print(f"on the {len(zero)} misspelt queries with no result as typed: baseline "
              f"{_f(mean([r['exact'] for r in zero]))}, did-you-mean {_f(mean([r['dym'] for r in zero]))}, "
              f"clean {_f(mean([r['clean'] for r in zero]))}")
    print(f"clean queries: {_pct(sum(1 for r in rows if r['clean_fix']), n)} corrected by did-you-mean "
          f"({', '.join(repr(r['query']) + ' → ' + repr(r['clean_fix']) for r in rows if r['clean_fix']) or 'none'}); "
          f"nDCG@10 {_f(mean([r['clean'] for r in rows]))} with, {_f(mean([r['clean_exact'] for r in rows]))} without")
    back = sum(1 for r, c in zip(rows, direct, strict=True)
               if c is not None and normalize_query(c.text) == r["target"])
    print(f"the corrector alone (every misspelt query, whatever its results): corrected back {_pct(back, n)}")
    q = statistics.quantiles(lookup_us, n=20)
    print(f"\ncorrection lookup (spelling.correct, dictionary loaded): median {statistics.median(lookup_us):.0f} µs, "
          f"p95 {q[18]:.0f} µs over {len(lookup_us):,} calls")
    print(f"services.search of a misspelt query: median {statistics.median(search_ms['exact']):.2f} ms exact, "
          f"{statistics.median(search_ms['dym']):.2f} ms with did-you-mean "
          f"(ratio {statistics.median(search_ms['dym']) / statistics.median(search_ms['exact']):.2f})\n")
    on, off = endpoint_ms["on"], endpoint_ms["off"]
    print(f"search/ at the Django test client ({len(on):,} requests each, clean and misspelt queries, warm): "
          f"median {statistics.median(on):.2f} ms, p95 {statistics.quantiles(on, n=20)[18]:.2f} ms with "
          f"did-you-mean and synonyms; median {statistics.median(off):.2f} ms, p95 "
          f"{statistics.quantiles(off, n=20)[18]:.2f} ms without (ratio of medians "
          f"{statistics.median(on) / statistics.median(off):.2f})\n")
    examples = [[r["typo"], r["dym_fix"] or r["low_fix"] or "—", r["query"]] for r in rows][:12]
    print(markdown_table(["misspelt", "corrected to", "clean"], examples))
    print(f"\nwall time: {clock.summary()}")
    return 0
