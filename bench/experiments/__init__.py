"""Online experiments simulated on the real Best Buy search log.

Two questions, answered with the product's own statistics
(:mod:`suggestions.experiment_stats`: sticky assignment, team-draft
interleaving, delta-method test over shoppers, sign test):

1. **Is the A/B test honest?** Many A/A experiments (the same ranker in both
   arms, a fresh random split of the real shoppers and fresh simulated clicks
   each time): the share declared significant at alpha 0.05 must be at most 5%.
   The interleaving sign test gets the same A/A check (identical rankings).
2. **How many searches does each method need?** Two rankers whose offline
   MRR@K differs by 0.01: Most-Popular-Completion (MPC) and a perturbed MPC
   (for a share of prefixes, chosen by a hash and calibrated by bisection so
   that the difference is 0.010, the first two completions are swapped).
   For growing numbers of searches (shoppers resampled with replacement),
   the share of simulated experiments that detect the better ranker (p < 0.05
   in the right direction) is the power; the searches needed for 80% power are
   printed for the A/B test and for interleaving, side by side.

How the log becomes experiments:

* ``bestbuy/train.csv`` read as :mod:`bench.qac` reads it; shoppers split by
  a hash: half build MPC (query counts), the other half's searches are the
  impressions. Each search shows the suggestions of one prefix of its query
  (1..10 characters, drawn once per search with the seed).
* Clicks come from the logged query: a shopper clicks the suggestion equal to
  the query they then searched, with position bias ``P(click | rank r) =
  CLICK_TOP / (r + 1) ** CLICK_DECAY`` (0-based ``r``), and nothing when it is
  not shown. A list's MRR is ``1 / (r + 1)`` of its click (0 without one), its
  CTR whether it had one: the admin's definitions.
* A/B: each shopper is in one arm (half and half); MRR and CTR are ratios over
  shoppers with delta-method z-tests (:func:`~suggestions.experiment_stats.ratio_difference`).
* Interleaving: every list is the team draft of both rankings with one of
  :data:`~suggestions.experiment_stats.INTERLEAVING_SLOTS` coin-flip seeds (as a
  shopper's slot gives); the click credits the team that contributed it;
  the sign test over lists with a credited click decides.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import time
from collections import Counter
from pathlib import Path

from bench.common import (
    add_common_arguments,
    command_line,
    fail,
    markdown_table,
    require_file,
    resolve_data_dir,
)

#: Suggestions shown per list.
TOP_K = 8
#: Longest prefix shown.
MAX_PREFIX = 10
#: Position bias of the simulated clicks (see the module docstring).
CLICK_TOP = 0.85
CLICK_DECAY = 0.8
#: Offline MRR@K difference of the two rankers of the power analysis.
TARGET_DIFFERENCE = 0.01
ALPHA = 0.05
POWER = 0.8


def _unit(text: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def mpc_rankings(train_queries: list[str], prefixes: set[str]) -> dict[str, list[str]]:
    """Most-Popular-Completion top :data:`TOP_K` of each prefix (count, then text)."""
    counts = Counter(train_queries)
    ordered = sorted(counts, key=lambda q: (-counts[q], q))
    out: dict[str, list[str]] = {p: [] for p in prefixes}
    for query in ordered:
        for n in range(1, min(MAX_PREFIX, len(query)) + 1):
            ranked = out.get(query[:n])
            if ranked is not None and len(ranked) < TOP_K:
                ranked.append(query)
    return out


def perturbed(rankings: dict[str, list[str]], share: float, seed: int) -> dict[str, list[str]]:
    """The rankings with the first two swapped for a hashed ``share`` of prefixes."""
    out = {}
    for prefix, ranked in rankings.items():
        if len(ranked) >= 2 and _unit(prefix, seed) < share:
            ranked = [ranked[1], ranked[0], *ranked[2:]]
        out[prefix] = ranked
    return out


def rank_of(ranked: list[str], target: str) -> int:
    return ranked.index(target) if target in ranked else -1


def offline_mrr(ranks) -> float:
    import numpy as np

    ranks = np.asarray(ranks)
    return float(np.where(ranks >= 0, 1.0 / (np.maximum(ranks, 0) + 1), 0.0).mean())


class Log:
    """The test impressions: shopper index, prefix, target, ranks per ranker."""

    def __init__(self, data_dir: Path, seed: int, train_share: float) -> None:
        import numpy as np

        from bench.metrics import is_train_user
        from bench.qac import read_searches

        searches, _dropped = read_searches(require_file(data_dir / "bestbuy" / "train.csv", "the Best Buy log"))
        train = [s.normalized for s in searches if is_train_user(s.user, seed=seed, train_share=train_share)]
        test = [s for s in searches if not is_train_user(s.user, seed=seed, train_share=train_share)]
        rng = random.Random(seed)
        self.prefixes = [s.normalized[:rng.randint(1, min(MAX_PREFIX, len(s.normalized)))] for s in test]
        self.targets = [s.normalized for s in test]
        users: dict[str, int] = {}
        self.user = np.asarray([users.setdefault(s.user, len(users)) for s in test])
        self.n_users = len(users)
        self.n_searches = len(searches)
        self.train_searches = len(train)
        self.mpc = mpc_rankings(train, set(self.prefixes))
        # Impressions grouped by shopper (for resampling shoppers).
        order = np.argsort(self.user, kind="stable")
        self.by_user = order
        counts = np.bincount(self.user, minlength=self.n_users)
        self.user_counts = counts
        self.user_start = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def ranks(self, rankings: dict[str, list[str]]):
        import numpy as np

        return np.asarray([rank_of(rankings[p], t) for p, t in zip(self.prefixes, self.targets, strict=True)])


def click_probability(ranks):
    import numpy as np

    ranks = np.asarray(ranks)
    return np.where(ranks >= 0, CLICK_TOP / (np.maximum(ranks, 0) + 1.0) ** CLICK_DECAY, 0.0)


def calibrate(log: Log, seed: int) -> tuple[float, dict[str, list[str]]]:
    """The perturbation share whose offline MRR@K loss is :data:`TARGET_DIFFERENCE`."""
    base = offline_mrr(log.ranks(log.mpc))
    low, high = 0.0, 1.0
    if base - offline_mrr(log.ranks(perturbed(log.mpc, 1.0, seed))) < TARGET_DIFFERENCE:
        raise fail("swapping the first two completions everywhere costs less than the target difference")
    for _ in range(30):
        mid = (low + high) / 2
        if base - offline_mrr(log.ranks(perturbed(log.mpc, mid, seed))) < TARGET_DIFFERENCE:
            low = mid
        else:
            high = mid
    return high, perturbed(log.mpc, high, seed)


def interleavings(log: Log, control: dict[str, list[str]], treatment: dict[str, list[str]], slots: int, seed: int):
    """Per impression and slot: the target's rank in the team draft and its team (1 = treatment)."""
    import numpy as np

    from suggestions import experiment_stats as st

    cache: dict[tuple[str, int], tuple[list[str], dict[str, str]]] = {}
    ranks = np.full((len(log.targets), slots), -1, dtype=np.int64)
    teams = np.zeros((len(log.targets), slots), dtype=np.int8)
    for i, (prefix, target) in enumerate(zip(log.prefixes, log.targets, strict=True)):
        for s in range(slots):
            key = (prefix, s)
            if key not in cache:
                cache[key] = st.team_draft(control[prefix], treatment[prefix], limit=TOP_K,
                                           seed=st.interleaving_seed(f"bench{seed}", s, prefix))
            merged, team_of = cache[key]
            if target in team_of:
                ranks[i, s] = merged.index(target)
                teams[i, s] = 1 if team_of[target] == st.TREATMENT else 0
    return ranks, teams


def _per_user(values, users, n_users):
    import numpy as np

    return np.bincount(users, weights=values, minlength=n_users)


def aa_false_positives(log: Log, runs: int, seed: int) -> dict[str, float]:
    """Share of A/A experiments declared significant at :data:`ALPHA`."""
    import numpy as np

    from suggestions import experiment_stats as st

    rng = np.random.default_rng(seed)
    ranks = log.ranks(log.mpc)
    p_click = click_probability(ranks)
    rr = np.where(ranks >= 0, 1.0 / (np.maximum(ranks, 0) + 1), 0.0)
    lists = _per_user(np.ones(len(ranks)), log.user, log.n_users)
    pair = np.maximum(ranks, 0) // 2
    positives = {"ab_mrr": 0, "ab_ctr": 0, "interleaving": 0}
    for _run in range(runs):
        # A fresh sticky split of the real shoppers (as a new experiment id gives) and fresh clicks.
        arm = rng.random(log.n_users) < 0.5
        clicked = rng.random(len(ranks)) < p_click
        mrr = _per_user(np.where(clicked, rr, 0.0), log.user, log.n_users)
        ctr = _per_user(clicked.astype(float), log.user, log.n_users)
        for name, values in (("ab_mrr", mrr), ("ab_ctr", ctr)):
            diff = st.ratio_difference((values[~arm], lists[~arm]), (values[arm], lists[arm]))
            positives[name] += diff.p_value < ALPHA
        # Interleaving of a ranking with itself: each pair of positions has one
        # pick of each team, in coin-flip order (team draft with equal teams).
        coins = rng.random((len(ranks), TOP_K // 2)) < 0.5
        team = coins[np.arange(len(ranks)), pair] ^ (np.maximum(ranks, 0) % 2 == 1)
        wins = int((clicked & team).sum())
        losses = int((clicked & ~team).sum())
        positives["interleaving"] += st.sign_test(wins, losses) < ALPHA
    return {k: v / runs for k, v in positives.items()}


def _sample(log: Log, rng, n_users: int):
    """Impression indices of ``n_users`` shoppers drawn with replacement, and the draw each belongs to."""
    import numpy as np

    drawn = rng.integers(0, log.n_users, n_users)
    lengths = log.user_counts[drawn]
    starts = log.user_start[drawn]
    total = int(lengths.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return log.by_user[np.repeat(starts, lengths) + offsets], np.repeat(np.arange(n_users), lengths)


def power_ab(log: Log, ranks_a, ranks_b, n_users: int, runs: int, rng) -> tuple[float, int]:
    """Share of A/B experiments of ``n_users`` shoppers that find A better; mean searches."""
    import numpy as np

    from suggestions import experiment_stats as st

    detected, searches = 0, 0
    for _run in range(runs):
        idx, unit = _sample(log, rng, n_users)
        treatment = rng.random(n_users) < 0.5
        in_b = treatment[unit]
        ranks = np.where(in_b, ranks_b[idx], ranks_a[idx])
        clicked = rng.random(len(idx)) < click_probability(ranks)
        rr = np.where(clicked & (ranks >= 0), 1.0 / (np.maximum(ranks, 0) + 1), 0.0)
        mrr = np.bincount(unit, weights=rr, minlength=n_users)
        lists = np.bincount(unit, minlength=n_users).astype(float)
        diff = st.ratio_difference((mrr[~treatment], lists[~treatment]), (mrr[treatment], lists[treatment]))
        detected += diff.p_value < ALPHA and diff.value < 0
        searches += len(idx)
    return detected / runs, searches // runs


def power_interleaving(log: Log, ranks_i, teams_i, n_users: int, runs: int, rng) -> tuple[float, int]:
    """Share of interleaving experiments of ``n_users`` shoppers that prefer A; mean searches."""
    from suggestions import experiment_stats as st

    slots = ranks_i.shape[1]
    detected, searches = 0, 0
    for _run in range(runs):
        idx, unit = _sample(log, rng, n_users)
        slot = rng.integers(0, slots, n_users)[unit]
        ranks = ranks_i[idx, slot]
        clicked = rng.random(len(idx)) < click_probability(ranks)
        team = teams_i[idx, slot]
        wins_b = int((clicked & (team == 1)).sum())
        wins_a = int((clicked & (team == 0)).sum())
        detected += st.sign_test(wins_b, wins_a) < ALPHA and wins_a > wins_b
        searches += len(idx)
    return detected / runs, searches // runs


def searches_for_power(power_at, start: int, factor: float, limit: int) -> tuple[int | None, list[tuple[int, float]]]:
    """Shoppers grown by ``factor`` until the power reaches :data:`POWER`; the
    searches at 80% power interpolated (log-linear) between the last two points."""
    n = start
    points: list[tuple[int, float]] = []
    while n <= limit:
        power, searches = power_at(n)
        points.append((searches, power))
        if power >= POWER:
            if len(points) == 1:
                return searches, points
            (s0, p0), (s1, p1) = points[-2], points[-1]
            if p1 == p0:
                return s1, points
            frac = (POWER - p0) / (p1 - p0)
            return round(math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0)))), points
        n = int(n * factor) + 1
    return None, points


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from suggestions.experiment_stats import INTERLEAVING_SLOTS

    parser = argparse.ArgumentParser(prog="python -m bench.experiments", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split, prefixes and simulations.")
    parser.add_argument("--aa-runs", type=int, default=10_000, help="A/A experiments simulated.")
    parser.add_argument("--power-runs", type=int, default=300, help="Experiments simulated per sample size.")
    parser.add_argument("--train-share", type=float, default=0.5, help="Share of shoppers that build MPC.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data_dir = resolve_data_dir(args.data_dir)
    log = Log(data_dir, args.seed, args.train_share)
    print(f"# bench/experiments\n\n`{command_line('bench.experiments', argv)}`\n")
    print(f"Best Buy log: {log.n_searches:,} searches; MPC from {log.train_searches:,} searches of "
          f"{args.train_share:.0%} of the shoppers; {len(log.targets):,} test searches of {log.n_users:,} other "
          f"shoppers ({len(log.targets) / log.n_users:.2f} each) are the impressions. Clicks: "
          f"P(click | rank r) = {CLICK_TOP} / (r + 1)^{CLICK_DECAY} on the logged query, top {TOP_K} shown.\n")

    aa = aa_false_positives(log, args.aa_runs, args.seed)
    # A 95% interval of a false-positive rate estimated from the runs.
    half = 1.96 * math.sqrt(0.05 * 0.95 / args.aa_runs)
    print(f"## A/A experiments ({args.aa_runs:,} runs, alpha {ALPHA})\n")
    print(markdown_table(["test", "false-positive rate", "target"], [
        ["A/B, MRR (delta method over shoppers)", f"{aa['ab_mrr']:.3f}", "≤ 0.05"],
        ["A/B, CTR (delta method over shoppers)", f"{aa['ab_ctr']:.3f}", "≤ 0.05"],
        ["interleaving, sign test", f"{aa['interleaving']:.3f}", "≤ 0.05"],
    ]))
    print(f"\n(With {args.aa_runs:,} runs a true rate of 0.05 is measured within ±{half:.3f}.)\n")

    share, worse = calibrate(log, args.seed)
    ranks_a, ranks_b = log.ranks(log.mpc), log.ranks(worse)
    ranks_i, teams_i = interleavings(log, log.mpc, worse, INTERLEAVING_SLOTS, args.seed)
    mrr_a, mrr_b = offline_mrr(ranks_a), offline_mrr(ranks_b)
    online = [float((click_probability(r) * np.where(r >= 0, 1.0 / (np.maximum(r, 0) + 1), 0)).mean())
              for r in (ranks_a, ranks_b)]
    print(f"## Searches to detect an MRR difference of {TARGET_DIFFERENCE} ({args.power_runs} runs per size, "
          f"power {POWER:.0%}, alpha {ALPHA})\n")
    print(f"Rankers: MPC (offline MRR@{TOP_K} {mrr_a:.4f}) against MPC with the first two completions swapped "
          f"for {share:.1%} of prefixes ({mrr_b:.4f}; difference {mrr_a - mrr_b:.4f}). Online (clicked) MRR: "
          f"{online[0]:.4f} against {online[1]:.4f}.\n")
    rng = np.random.default_rng(args.seed + 1)
    ab_n, ab_points = searches_for_power(lambda n: power_ab(log, ranks_a, ranks_b, n, args.power_runs, rng),
                                         2000, 1.5, 3_000_000)
    il_n, il_points = searches_for_power(lambda n: power_interleaving(log, ranks_i, teams_i, n, args.power_runs, rng),
                                         100, 1.5, 3_000_000)
    ratio = f"{ab_n / il_n:.1f}×" if ab_n and il_n else "—"
    print(markdown_table(["method", f"searches for {POWER:.0%} power", "power curve (searches: power)"], [
        ["A/B test (MRR, delta method)", f"{ab_n:,}" if ab_n else "> limit",
         ", ".join(f"{s:,}: {p:.2f}" for s, p in ab_points[-4:])],
        ["team-draft interleaving (sign test)", f"{il_n:,}" if il_n else "> limit",
         ", ".join(f"{s:,}: {p:.2f}" for s, p in il_points[-4:])],
    ]))
    print(f"\nInterleaving needs {ratio} fewer searches than the A/B test for the same power.")
    print(f"\nRun time: {time.perf_counter() - started:.0f} s")
    return 0
