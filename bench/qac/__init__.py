"""Query auto-completion benchmark on the real Best Buy search log.

What is measured: how high :func:`suggestions.services.suggest` ranks the query
a shopper really typed, given the first 1..10 characters of it, against the
classic Most-Popular-Completion (MPC) baseline built from the same searches.

How:

1. Read ``bestbuy/train.csv`` (``user, query, query_time``) from the data
   folder; drop rows with an empty query or a bad time and identical
   ``(user, query, query_time)`` rows, as the history importer does.
2. Split the *users* deterministically: SHA-1 of ``"<seed>:<user>"`` modulo
   100 below ``train_share * 100`` is train (:func:`bench.metrics.is_train_user`).
3. Our system: import the train users' searches with
   :func:`suggestions.services.import_search_history`, then
   :func:`suggestions.services.build_suggestions` with ``include_catalog=False``
   and the default settings (k-anonymity gate of
   ``SUGGESTIONS_MIN_DISTINCT_USERS`` users, time decay), and ask
   ``services.suggest(prefix, limit=10)`` anonymously (no recent searches).
4. Baselines from the same train searches: MPC counts each normalised query
   (:func:`suggestions.text.normalize_query`) and ranks the queries starting
   with the prefix by count, ties by text; "MPC + k-gate" keeps only the
   queries searched by at least as many distinct train users as our gate asks.
5. Pairs: for every search of the test users and every prefix of 1..10
   characters of its normalised query (never longer than the query), the
   target is the normalised query. MRR@10 and Success@1/5/10 over all pairs and
   split by prefix length 1–3 and 4–10. Every system answers exactly the same
   pairs; answers are cached per prefix.

``--split time`` replaces the user split by a temporal one (the earliest
``train_share`` of the searches build, the rest are evaluated), which is how a
shop uses its history: it shows what time decay is for.

The shop's catalog: the log's own products (``bestbuy/sku_name.tsv``, read at
run time) are loaded as the demo catalog's products, so the build mines catalog
phrases from them as a real shop's would (``--no-catalog`` leaves them out);
their titles are short names, so the bench sets
``SUGGESTIONS_CATALOG_PRODUCT_NAMES="auto"`` (the build also suggests the
leading words of product names; ``--no-product-names`` leaves the default off). The sku each
training search led to is imported with it as a product click (no position;
``--no-clicks`` leaves them out), which the ranker's product-click features read.

The suggestion ranker (``--ranker``, on by default): after the popularity
system is measured, the learning loop (:func:`suggestions.services.retrain`)
trains a ``suggestion_ranker`` on the imported history (its newest
``SUGGESTIONS_HELDOUT_DAYS`` held out for the promotion gate), and ``suggest``
is measured again with the promoted ranker. Within its training window the
ranker takes features and labels from different searches: older and newer ones
(``--label-split time``, the default of the time split and of the product) or
two folds of shoppers (``shoppers``, the default of the user split, whose test
shoppers come from the same weeks as the training ones).

Besides MRR@10 and Success@n: eSaved, the share of a search's characters the
shopper need not type when taking the query as soon as it appears in the top 5
(prefixes of 1..10 characters; 0 when it never appears), averaged over test
searches; and the returning-shopper slice (test searches of shoppers who also
have training searches).

Unseen queries: the test searches whose normalised query never occurs among
the training searches (MPC can never suggest them) are a slice of their own
("Unseen queries" table). ``--generated`` measures what generated refinements
add, in the same run and split: after our popularity system is measured, the
learning loop trains the ``generator`` (``--generator-model tiny`` by default:
a config-built GPT-2 trained from scratch; ``smollm2``: LoRA on
SmolLM2-135M-Instruct) on the imported history and the catalog,
:func:`suggestions.services.generate_refinements` generates for the shop's
seeds (:func:`suggestions.generation.generation_seeds`, its window stretched
over the log), every candidate the gates let through is approved (standing for
the merchandisers' review), and ``suggest`` is measured again. With
``--generated`` the products are indexed first (the results gate searches
them), for both measurements. It prints ours
with generated refinements beside ours without: overall MRR@10 and Success@10
on unseen queries, with paired-bootstrap intervals over test searches, and
the catalog baseline of the unseen slice: completion from the product titles'
n-grams (1–4 consecutive words, by the number of titles holding them).

``--ablations`` adds diagnostic rows of our system with time decay and/or
typo-tolerant (fuzzy) completion switched off through settings, to show what
each costs or brings on this log.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    fail,
    markdown_table,
    require_file,
    resolve_data_dir,
)
from bench.metrics import RankStats, is_train_user, rank_of

#: Prefix lengths evaluated: 1..MAX_PREFIX characters.
MAX_PREFIX = 10
#: Suggestions asked for and ranks counted.
TOP_K = 10
#: Prefix lengths up to this are "short" (1–3), longer are "long" (4–10).
SHORT_MAX = 3


@dataclass(frozen=True)
class Search:
    """One search of the log.

    Attributes:
        user: User id as in the file.
        query: Query text as typed (stripped).
        time: When it was searched.
        normalized: :func:`~suggestions.text.normalize_query` of the query.
    """

    user: str
    query: str
    time: datetime
    normalized: str
    #: The product clicked after the search (the log's ``sku``), if any.
    sku: str = ""


@dataclass
class SegmentStats:
    """Rank statistics over all pairs and by prefix length."""

    overall: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    short: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    long: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    returning: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    unseen: RankStats = field(default_factory=lambda: RankStats(k=TOP_K))
    servable: int = 0
    saved: list[float] = field(default_factory=list)

    def add(self, prefix_length: int, rank: int, returning: bool = False, unseen: bool = False) -> None:
        """Record the rank of one pair."""
        self.overall.add(rank)
        (self.short if prefix_length <= SHORT_MAX else self.long).add(rank)
        if returning:
            self.returning.add(rank)
        if unseen:
            self.unseen.add(rank)

    def esaved(self) -> float:
        """Mean share of characters saved per search (see the module docstring)."""
        return sum(self.saved) / len(self.saved) if self.saved else 0.0


def read_searches(path: Path) -> tuple[list[Search], dict[str, int]]:
    """Read the Best Buy log as the history importer would.

    Args:
        path: ``bestbuy/train.csv``.

    Returns:
        The distinct searches in file order, and counts of dropped rows by reason.
    """
    from suggestions.text import normalize_query

    dropped = Counter()
    seen: set[tuple[str, str, datetime]] = set()
    searches: list[Search] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            query = (row.get("query") or "").strip()
            user = (row.get("user") or "").strip()
            if not query:
                dropped["empty query"] += 1
                continue
            try:
                when = datetime.fromisoformat((row.get("query_time") or "").strip())
            except ValueError:
                dropped["bad time"] += 1
                continue
            key = (user, query, when)
            if key in seen:
                dropped["duplicate (user, query, time)"] += 1
                continue
            seen.add(key)
            normalized = normalize_query(query)
            if not normalized:
                dropped["empty after normalisation"] += 1
                continue
            searches.append(Search(user, query, when, normalized, (row.get("sku") or "").strip()))
    return searches, dict(dropped)


def split_by_user(searches: Iterable[Search], *, seed: int, train_share: float) -> tuple[list[Search], list[Search]]:
    """Split searches into (train, test) by a deterministic hash of the user id."""
    train: list[Search] = []
    test: list[Search] = []
    for search in searches:
        (train if is_train_user(search.user, seed=seed, train_share=train_share) else test).append(search)
    return train, test


def split_by_time(searches: Iterable[Search], *, train_share: float) -> tuple[list[Search], list[Search]]:
    """Split searches into (train, test): the earliest ``train_share`` of them are train.

    Searches are ordered by (time, user, query), so the split is deterministic.
    """
    ordered = sorted(searches, key=lambda s: (s.time, s.user, s.query))
    cut = round(train_share * len(ordered))
    return ordered[:cut], ordered[cut:]


def most_popular_completion(
    counts: Counter, *, allowed: Callable[[str], bool] | None = None, max_prefix: int = MAX_PREFIX, k: int = TOP_K
) -> dict[str, list[str]]:
    """The MPC answer of every prefix of 1..``max_prefix`` characters.

    Args:
        counts: Searches per normalised query.
        allowed: Keeps a query when it returns True (all kept when ``None``).
        max_prefix: Longest prefix answered.
        k: Completions per prefix.

    Returns:
        Prefix → up to ``k`` queries starting with it, by count (descending)
        then text.
    """
    table: dict[str, list[str]] = defaultdict(list)
    for text, _n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if allowed is not None and not allowed(text):
            continue
        for length in range(1, min(max_prefix, len(text)) + 1):
            answers = table[text[:length]]
            if len(answers) < k:
                answers.append(text)
    return dict(table)


def evaluation_pairs(test: Iterable[Search], max_prefix: int = MAX_PREFIX) -> list[tuple[str, str]]:
    """(prefix, target) for every test search and every prefix of 1..``max_prefix`` characters."""
    pairs = []
    for search in test:
        target = search.normalized
        for length in range(1, min(max_prefix, len(target)) + 1):
            pairs.append((target[:length], target))
    return pairs


def evaluate(
    test: Sequence[Search], answer: Callable[[str], list[str]], servable: set[str] | None = None,
    returning_users: set[str] | None = None, max_prefix: int = MAX_PREFIX,
    unseen_queries: set[str] | None = None,
) -> SegmentStats:
    """Rank every (prefix, target) pair of the test searches in the answer of its
    prefix (answers cached per prefix), and the keystrokes each search saves.

    Args:
        test: Test searches; each gives the pairs of its 1..``max_prefix``-character prefixes.
        answer: Ranked completions of a prefix.
        servable: Every text the system could ever suggest (for the
            "target servable" diagnostic), if known.
        returning_users: Users with training searches (the returning-shopper slice).
        unseen_queries: Normalised queries that no training search has (the unseen slice).
    """
    cache: dict[str, list[str]] = {}
    stats = SegmentStats()
    returning_users = returning_users or set()
    unseen_queries = unseen_queries or set()
    for search in test:
        target = search.normalized
        first_top5 = None
        for length in range(1, min(max_prefix, len(target)) + 1):
            prefix = target[:length]
            ranked = cache.get(prefix)
            if ranked is None:
                ranked = cache[prefix] = answer(prefix)
            rank = rank_of(target, ranked, TOP_K)
            stats.add(length, rank, search.user in returning_users, target in unseen_queries)
            if first_top5 is None and 0 < rank <= 5:
                first_top5 = length
            if servable is not None and target in servable:
                stats.servable += 1
        stats.saved.append((len(target) - first_top5) / len(target) if first_top5 else 0.0)
    return stats


def title_ngram_completion(titles: Iterable[str], *, max_words: int = 4, max_prefix: int = MAX_PREFIX,
                           k: int = TOP_K) -> dict[str, list[str]]:
    """The catalog baseline of unseen queries: every run of 1..``max_words``
    consecutive words of the normalised titles, ranked for each prefix of
    1..``max_prefix`` characters by the number of titles holding it, then
    shorter first, then text."""
    holding: Counter = Counter()
    for title in titles:
        words = title.split()
        grams = {" ".join(words[i:j]) for i in range(len(words))
                 for j in range(i + 1, min(len(words), i + max_words) + 1)}
        holding.update(grams)
    table: dict[str, list[str]] = defaultdict(list)
    for text, _n in sorted(holding.items(), key=lambda item: (-item[1], len(item[0]), item[0])):
        for length in range(1, min(max_prefix, len(text)) + 1):
            answers = table[text[:length]]
            if len(answers) < k:
                answers.append(text)
    return dict(table)


#: Longest run of title words counted by :func:`title_word_runs`.
RUN_WORDS = 6


def title_word_runs(titles: Iterable[str], max_words: int = RUN_WORDS) -> set[str]:
    """Every run of 1..``max_words`` consecutive words of the normalised titles."""
    runs: set[str] = set()
    for title in titles:
        words = title.split()
        runs.update(" ".join(words[i:j]) for i in range(len(words))
                    for j in range(i + 1, min(len(words), i + max_words) + 1))
    return runs


def per_search(ranks: Sequence[int], searches: Sequence[Search], max_prefix: int = MAX_PREFIX,
               k: int = TOP_K) -> tuple[list[tuple[float, float, int]], list[Search]]:
    """``ranks`` (pair order of :func:`evaluate`) regrouped by search: for each
    search (reciprocal ranks summed, hits@k summed, pairs)."""
    out, i = [], 0
    for search in searches:
        n = min(max_prefix, len(search.normalized))
        chunk = ranks[i:i + n]
        i += n
        out.append((sum(1.0 / r for r in chunk if 0 < r <= k), float(sum(1 for r in chunk if 0 < r <= k)), n))
    if i != len(ranks):
        raise ValueError(f"{len(ranks)} ranks for {i} pairs of {len(searches)} searches")
    return out, list(searches)


def bootstrap_by_search(ours: Sequence[tuple[float, float, int]], base: Sequence[tuple[float, float, int]],
                        column: int, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the difference of a pair-level mean (``column`` 0: MRR,
    1: Success@k) between two systems, resampling test searches (a search's
    prefixes stay together; the same resample for both)."""
    import numpy as np

    a = np.asarray([row[column] for row in ours], dtype=np.float64)
    b = np.asarray([row[column] for row in base], dtype=np.float64)
    n_pairs = np.asarray([row[2] for row in ours], dtype=np.float64)
    if not len(a):
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, 100):
        w = rng.multinomial(len(a), np.full(len(a), 1.0 / len(a)), size=min(100, resamples - start))
        diffs.append((w @ a - w @ b) / (w @ n_pairs))
    low, high = np.percentile(np.concatenate(diffs), [2.5, 97.5])
    return float(low), float(high)


def load_catalog(path: Path) -> int:
    """Load ``sku_name.tsv`` (``sku<TAB>name``) as the demo catalog's products; returns how many."""
    from catalog.models import Product

    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            sku, _tab, name = line.rstrip("\n").partition("\t")
            if sku and name:
                rows.append(Product(title=name, source_id=f"bestbuy-{sku}"))
    Product.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _our_answer(prefix: str) -> list[str]:
    from suggestions import services

    return [item.text for item in services.suggest(prefix, limit=TOP_K).items]


def _served_texts() -> set[str]:
    from suggestions.models import Suggestion, SuggestionStatus

    return set(Suggestion.objects.filter(status=SuggestionStatus.APPROVED).values_list("text", flat=True))


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def results_tables(rows: Sequence[tuple[str, SegmentStats]], pairs: int) -> str:
    """The printed tables: one per prefix-length segment, systems as rows."""
    out = []
    for title, attr in (("All prefixes (1–10 chars)", "overall"), ("Prefixes of 1–3 chars", "short"),
                        ("Prefixes of 4–10 chars", "long"),
                        ("Returning shoppers (test searches of shoppers with training searches)", "returning"),
                        ("Unseen queries (test searches whose query no training search has; MPC: 0 by "
                         "construction)", "unseen")):
        body = []
        for name, stats in rows:
            s: RankStats = getattr(stats, attr)
            body.append([name, f"{s.n:,}", _fmt(s.mrr()), _fmt(s.success_at(1)), _fmt(s.success_at(5)),
                         _fmt(s.success_at(10))])
        if len(rows) >= 2:
            ours: RankStats = getattr(rows[0][1], attr)
            base: RankStats = getattr(rows[1][1], attr)
            body.append([f"Δ {rows[0][0]} − {rows[1][0]}", "", f"{ours.mrr() - base.mrr():+.4f}",
                         f"{ours.success_at(1) - base.success_at(1):+.4f}",
                         f"{ours.success_at(5) - base.success_at(5):+.4f}",
                         f"{ours.success_at(10) - base.success_at(10):+.4f}"])
        out.append(f"### {title}\n\n" + markdown_table(["system", "pairs", "MRR@10", "S@1", "S@5", "S@10"], body))
    servable = [[name, f"{stats.servable / pairs:.4f}" if pairs else "0"] for name, stats in rows]
    out.append("### Pairs whose target the system can suggest at all (upper bound of S@10)\n\n"
               + markdown_table(["system", "share of pairs"], servable))
    saved = [[name, f"{stats.esaved():.4f}"] for name, stats in rows]
    out.append("### Keystrokes saved (eSaved: share of characters not typed, taking the query once in the top 5)\n\n"
               + markdown_table(["system", "eSaved"], saved))
    return "\n\n".join(out)


def generated_comparison(rows: Sequence[tuple[str, SegmentStats]], test: Sequence[Search], unseen: set[str]) -> str:
    """Ours with generated refinements against ours without (same run): overall
    MRR@10 and unseen Success@10, with intervals over test searches."""
    named = dict(rows)
    ours = named["ours + generated refinements (suggest)"]
    base = named["ours, popularity (suggest)"]
    unseen_test = [s for s in test if s.normalized in unseen]
    a_all, _ = per_search(ours.overall.ranks, test)
    b_all, _ = per_search(base.overall.ranks, test)
    a_new, _ = per_search(ours.unseen.ranks, unseen_test)
    b_new, _ = per_search(base.unseen.ranks, unseen_test)
    mrr_low, mrr_high = bootstrap_by_search(a_all, b_all, 0)
    s10_low, s10_high = bootstrap_by_search(a_new, b_new, 1)
    d_mrr = ours.overall.mrr() - base.overall.mrr()
    d_s10 = ours.unseen.success_at(10) - base.unseen.success_at(10)
    body = [
        ["overall MRR@10", _fmt(base.overall.mrr()), _fmt(ours.overall.mrr()),
         f"{d_mrr:+.4f} [{mrr_low:+.4f}, {mrr_high:+.4f}]"],
        ["unseen queries Success@10", _fmt(base.unseen.success_at(10)), _fmt(ours.unseen.success_at(10)),
         f"{d_s10:+.4f} [{s10_low:+.4f}, {s10_high:+.4f}]"],
    ]
    table = markdown_table(["measure", "ours without", "ours with generated", "Δ [95% CI over test searches]"], body)
    target = (f"target: unseen Success@10 ≥ 0.12: {'met' if ours.unseen.success_at(10) >= 0.12 else 'missed'} "
              f"({ours.unseen.success_at(10):.4f}); overall MRR@10 not lower than without: "
              f"{'yes' if d_mrr >= 0 else 'no'} ({d_mrr:+.4f})")
    return "### Generated refinements: ours with them against ours without (same run, same split)\n\n" + table + "\n\n" + target


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.qac``."""
    parser = argparse.ArgumentParser(prog="python -m bench.qac", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the user split (default 0).")
    parser.add_argument("--no-product-names", dest="product_names", action="store_false",
                        help="Leave SUGGESTIONS_CATALOG_PRODUCT_NAMES at its default (off) instead of \"auto\".")
    parser.add_argument("--no-clicks", dest="clicks", action="store_false",
                        help="Do not import the product clicked after each training search (default: imported, "
                             "as product clicks without positions).")
    parser.add_argument("--split", choices=("user", "time"), default="user",
                        help="user: hash split of the users (default); time: earliest searches build, "
                        "latest are evaluated.")
    parser.add_argument("--train-share", type=float, default=0.8,
                        help="Share of users whose searches build the suggestions (default 0.8).")
    parser.add_argument("--limit-test", type=int, default=None, metavar="N",
                        help="Evaluate only the first N test searches (quick run).")
    parser.add_argument("--catalog", action=argparse.BooleanOptionalAction, default=True,
                        help="Load the log's products (bestbuy/sku_name.tsv) as the shop's catalog (default: on).")
    parser.add_argument("--ranker", action=argparse.BooleanOptionalAction, default=True,
                        help="Train the suggestion ranker through the learning loop and measure it (default: on).")
    parser.add_argument("--label-split", choices=("time", "shoppers"), default=None,
                        help="How the ranker separates features from labels in its training window "
                        "(default: shoppers for --split user, time for --split time).")
    parser.add_argument("--ablations", action="store_true",
                        help="Also evaluate our system without time decay and/or without fuzzy completion.")
    parser.add_argument("--generated", action="store_true",
                        help="Also train the refinement generator through the learning loop, generate and gate "
                        "refinements for the shop's seeds, approve what the gates pass, and measure suggest "
                        "again: ours with generated refinements beside ours without (same run and split).")
    parser.add_argument("--generator-model", choices=("tiny", "smollm2"), default="tiny",
                        help="With --generated: tiny (config-built GPT-2 trained from scratch, default) or smollm2 "
                        "(LoRA on SmolLM2-135M-Instruct; needs manage.py suggestions_prepare_generator).")
    parser.add_argument("--generator-steps", type=int, default=None,
                        help="With --generated: training steps (default: 1500 tiny, 150 smollm2).")
    parser.add_argument("--generated-min-results", type=int, default=None, metavar="N",
                        help="With --generated: the results gate (SUGGESTIONS_GENERATED_MIN_RESULTS; default: the "
                        "setting's, 3). A smaller N is a diagnostic of what the gate costs, not the product.")
    parser.add_argument("--generator-seeds", type=int, default=200,
                        help="With --generated: most seeds of each kind (SUGGESTIONS_GENERATOR_SEEDS; default 200).")
    return parser


def _generate(args, train: Sequence[Search], clock: Stopwatch) -> tuple[dict, int]:
    """Train the generator through the loop, generate for the shop's seeds and
    approve what the gates pass. Returns (what it did, approved count)."""
    from django.test.utils import override_settings
    from django.utils import timezone

    from suggestions import services
    from suggestions.models import Suggestion, SuggestionSource, SuggestionStatus

    options: dict = {"steps": args.generator_steps or (1500 if args.generator_model == "tiny" else 150)}
    if args.generator_model == "tiny":
        import torch

        torch.set_num_threads(1)  # a tiny model gains nothing from threads on a shared CPU
        options.update(tiny=True, batch_size=32)
    with clock.phase("train generator"):
        trained = services.retrain("generator", options=options, log=lambda line: print(f"  loop: {line}"))
    from suggestions.conf import app_settings

    done: dict = {"version": trained.version.version if trained.version else None,
                  "promoted": trained.promoted, "gate": trained.gate.reason if trained.gate else "",
                  "steps": options["steps"]}
    if not trained.promoted:
        return done, 0
    window = (timezone.localdate() - min(s.time for s in train).date()).days + 1
    gate = {} if args.generated_min_results is None else {"SUGGESTIONS_GENERATED_MIN_RESULTS": args.generated_min_results}
    with clock.phase("generate"), override_settings(SUGGESTIONS_GENERATOR_WINDOW_DAYS=window,
                                                     SUGGESTIONS_GENERATOR_SEEDS=args.generator_seeds, **gate):
        report = services.generate_refinements()
        pending = Suggestion.objects.filter(source=SuggestionSource.GENERATED, status=SuggestionStatus.PENDING)
        approved = services.review_generated(pending, SuggestionStatus.APPROVED)
        done["min_results"] = app_settings.GENERATED_MIN_RESULTS
    done.update(report.as_dict())
    return done, approved


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its report.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``).

    Returns:
        Exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.train_share < 1:
        raise fail("--train-share must be between 0 and 1 (exclusive).")
    data_file = require_file(resolve_data_dir(args.data_dir) / "bestbuy" / "train.csv", "The Best Buy search log")
    sku_file = (require_file(resolve_data_dir(args.data_dir) / "bestbuy" / "sku_name.tsv", "The Best Buy product names")
                if args.catalog else None)
    label_split = args.label_split or ("shoppers" if args.split == "user" else "time")
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        from django.test.utils import override_settings

        names = override_settings(SUGGESTIONS_CATALOG_PRODUCT_NAMES="auto") if args.product_names else None
        if names is not None:
            names.enable()

        from suggestions import services
        from suggestions.conf import app_settings

        with clock.phase("read"):
            searches, dropped = read_searches(data_file)
            if args.split == "time":
                train, test = split_by_time(searches, train_share=args.train_share)
            else:
                train, test = split_by_user(searches, seed=args.seed, train_share=args.train_share)
            if args.limit_test is not None:
                test = test[: max(0, args.limit_test)]
            pairs = evaluation_pairs(test)
            returning = {s.user for s in train} & {s.user for s in test}
            unseen = {s.normalized for s in test} - {s.normalized for s in train}
        k = app_settings.MIN_DISTINCT_USERS
        titles: list[str] = []
        products = load_catalog(sku_file) if sku_file else 0
        if args.generated and sku_file:
            # The generator's results gate searches the products: index them before anything is
            # built, so ours with and without generated refinements see the same shop.
            with clock.phase("index products"):
                services.rebuild_index()
        with clock.phase("import"):
            # The product each search led to is imported as its click (by the
            # catalog's id of that sku), as a shop would import its own log.
            pk_of: dict[str, str] = {}
            if sku_file and args.clicks:
                from catalog.models import Product

                pk_of = {src.removeprefix("bestbuy-"): str(pk)
                         for pk, src in Product.objects.values_list("pk", "source_id")}
            report = services.import_search_history(
                services.ImportedSearch(user=s.user, query=s.query, time=s.time, product=pk_of.get(s.sku, ""))
                for s in train)
        with clock.phase("build"):
            build = services.build_suggestions(include_catalog=bool(sku_file))
        rows: list[tuple[str, SegmentStats]] = []
        retrained = None
        with clock.phase("eval ours"):
            rows.append(("ours, popularity (suggest)", evaluate(test, _our_answer, _served_texts(), returning, unseen_queries=unseen)))
        with clock.phase("eval MPC"):
            counts = Counter(s.normalized for s in train)
            users: dict[str, set[str]] = defaultdict(set)
            for s in train:
                users[s.normalized].add(s.user)
            mpc = most_popular_completion(counts)
            rows.append(("MPC", evaluate(test, lambda p: mpc.get(p, []), set(counts), returning, unseen_queries=unseen)))
            gated = most_popular_completion(counts, allowed=lambda t: len(users[t]) >= k)
            gated_set = {t for t in counts if len(users[t]) >= k}
            rows.append((f"MPC + k-gate (k={k})", evaluate(test, lambda p: gated.get(p, []), gated_set, returning,
                                                            unseen_queries=unseen)))
            if sku_file:
                from catalog.models import Product
                from suggestions.text import normalize_query

                titles = [normalize_query(t) for t in Product.objects.values_list("title", flat=True)]
                grams = title_ngram_completion(titles)
                rows.append(("catalog title n-grams", evaluate(
                    test, lambda p: grams.get(p, []), {t for ts in grams.values() for t in ts}, returning,
                    unseen_queries=unseen)))
        if args.ablations:
            variants = [
                ("ours, no time decay", {"SUGGESTIONS_DECAY_HALF_LIFE_DAYS": 1e9}),
                ("ours, no fuzzy", {"SUGGESTIONS_FUZZY_MIN_PREFIX_LENGTH": 10**6}),
                ("ours, no decay, no fuzzy", {"SUGGESTIONS_DECAY_HALF_LIFE_DAYS": 1e9,
                                              "SUGGESTIONS_FUZZY_MIN_PREFIX_LENGTH": 10**6}),
                # What the privacy gate costs: the same system with k=1.
                ("ours, k=1 (no privacy gate)", {"SUGGESTIONS_MIN_DISTINCT_USERS": 1}),
            ]
            with clock.phase("ablations"):
                for name, overrides in variants:
                    with override_settings(**overrides):
                        services.build_suggestions(include_catalog=bool(sku_file))
                        rows.append((name, evaluate(test, _our_answer, _served_texts(), returning, unseen_queries=unseen)))
                services.build_suggestions(include_catalog=bool(sku_file))
        generated = None
        if args.generated:
            generated, approved = _generate(args, train, clock)
            if approved:
                with clock.phase("eval ours + generated"):
                    rows.insert(0, ("ours + generated refinements (suggest)",
                                    evaluate(test, _our_answer, _served_texts(), returning, unseen_queries=unseen)))
            generated["approved"] = approved
        if args.ranker:
            # Last: the promoted ranker's order stays in place for what follows.
            with clock.phase("retrain"), override_settings(SUGGESTIONS_RANKER_LABEL_SPLIT=label_split):
                retrained = services.retrain("suggestion_ranker", log=lambda line: print(f"  loop: {line}"))
            with clock.phase("eval ours + ranker"):
                name = ("ours + ranker (suggest)" if retrained.promoted
                        else "ours after the loop (ranker rejected: popularity order)")
                rows.insert(0, (name, evaluate(test, _our_answer, _served_texts(), returning, unseen_queries=unseen)))

    train_users = len({s.user for s in train})
    test_users = len({s.user for s in test})
    print("# Query auto-completion: Best Buy search log (Xbox 360 games, Aug–Oct 2011)\n")
    print(f"command: {command_line('bench.qac', argv)}")
    print(f"data: {data_file}")
    print(f"searches: {len(searches):,} distinct (dropped: "
          + (", ".join(f"{n:,} {why}" for why, n in dropped.items()) or "none") + ")")
    how = (f"time, earliest {args.train_share:g} of searches (test from {test[0].time:%Y-%m-%d %H:%M})"
           if args.split == "time" and test else
           f"seed {args.seed}, train share {args.train_share:g} of users by SHA-1 bucket")
    print(f"split: {how} -> "
          f"train {len(train):,} searches / {train_users:,} users, test {len(test):,} searches / "
          f"{test_users:,} users")
    print(f"ours: imported {report.imported:,} searches, {build.history:,} suggestions pass the gate "
          f"(k={k} distinct users, half-life {app_settings.DECAY_HALF_LIFE_DAYS:g} days, fuzzy from "
          f"{app_settings.FUZZY_MIN_PREFIX_LENGTH} chars); MPC candidates {len(counts):,} queries")
    print(f"catalog: {products:,} products from {sku_file}, {build.catalog:,} catalog phrases "
          f"(product names: {app_settings.CATALOG_PRODUCT_NAMES}); {report.clicks:,} product clicks imported"
          if sku_file else "catalog: none (--no-catalog)")
    if retrained is not None:
        print(f"ranker: {retrained.version.version} ({retrained.version.status}), label split {label_split}; "
              f"gate: {retrained.gate.reason}")
    print(f"pairs (prefix, target): {len(pairs):,}, distinct prefixes {len({p for p, _ in pairs}):,}; "
          f"returning-shopper searches {sum(1 for s in test if s.user in returning):,}\n")
    if generated is not None:
        print(f"generator ({args.generator_model}, {generated['steps']} steps): version {generated['version']}, "
              f"{'promoted' if generated['promoted'] else 'not promoted'} ({generated['gate']}); "
              + (f"seeds {generated.get('seeds')}, {generated.get('generated', 0):,} generated, "
                 f"stopped by the gates (results gate: ≥ {generated.get('min_results')} products) "
                 f"{generated.get('stopped')}, {generated['approved']:,} stored and approved "
                 f"in {generated.get('seconds', 0)} s" if generated["promoted"] else "nothing generated"))
    unseen_searches = [s for s in test if s.normalized in unseen]
    reachable = ""
    if titles:
        runs = title_word_runs(titles)
        reachable = (f"; {sum(1 for s in unseen_searches if s.normalized in runs):,} of them are a run of up to "
                     f"{RUN_WORDS} consecutive words of a product title (what text grounded in the catalog can "
                     f"match exactly)")
    print(f"unseen-query test searches: {len(unseen_searches):,} ({len(unseen):,} distinct queries){reachable}\n")
    print(results_tables(rows, len(pairs)))
    if generated is not None and generated["approved"]:
        print("\n" + generated_comparison(rows, test, unseen))
    print(f"\nwall time: {clock.summary()}")
    return 0
