"""Statistics of online experiments: sticky assignment, team-draft
interleaving, per-arm metrics with confidence intervals, the sample-ratio
check and the interleaving sign test.

Django-free and model-free (numpy and scipy, imported when a figure is
computed, never by serving), so the admin, the workers
and ``bench/experiments`` compute every figure with the same code.

Contracts:

* :func:`assignment_point` maps ``(experiment, shopper)`` to a point of
  [0, 1) by a hash: the same shopper always gets the same arm of an
  experiment, and different experiments split shoppers independently.
* :func:`team_draft` is team-draft interleaving (Radlinski, Kurup and
  Joachims, *How does clickthrough data reflect retrieval quality?*, CIKM
  2008): in each round the team with fewer picks (a coin decides ties) adds
  its best result not yet shown. Each shown result belongs to one team;
  :func:`credit` counts a list's clicks per team and names the winner.
* A/B metrics are ratios over shoppers (the unit of assignment):
  ``sum(values) / sum(impressions)``. Their intervals use the delta method on
  per-shopper sums, so a shopper with many impressions does not count as
  many independent ones (Deng, Knoblich and Lu, KDD 2018).
* :func:`sample_ratio_check` is a chi-square goodness-of-fit test of the
  shoppers per arm against the configured split; ``p < 0.001`` flags a
  sample-ratio mismatch (the assignment or the logging is broken, and the
  metrics cannot be trusted).
* :func:`sign_test` is the two-sided binomial test of interleaving wins
  against losses (ties left out).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Significance level of every test shown.
ALPHA = 0.05
#: A sample-ratio mismatch is flagged below this p-value.
SRM_P = 0.001
#: Interleaving slots: shoppers of one slot see the same interleaving of a prefix
#: (so answers stay cacheable); slots differ in their coin flips.
INTERLEAVING_SLOTS = 64
#: Team names of interleaving.
CONTROL, TREATMENT = "control", "treatment"


def assignment_point(experiment_id: int | str, actor: str) -> float:
    """The shopper's point in [0, 1) for an experiment (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(f"{experiment_id}:{actor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose_arm(point: float, weights: Sequence[tuple[str, float]]) -> str:
    """The arm whose cumulative weight interval holds ``point``.

    Args:
        point: From :func:`assignment_point`.
        weights: ``(arm, weight)`` pairs; weights are normalised.

    Raises:
        ValueError: No arm has a positive weight.
    """
    total = sum(w for _a, w in weights if w > 0)
    if total <= 0:
        raise ValueError("at least one arm needs a positive weight")
    edge = 0.0
    for arm, weight in weights:
        if weight <= 0:
            continue
        edge += weight / total
        if point < edge:
            return arm
    return next(a for a, w in reversed(weights) if w > 0)


def interleaving_seed(experiment_id: int | str, slot: int, prefix: str) -> int:
    """Seed of the coin flips of one interleaved list (see :func:`team_draft`)."""
    digest = hashlib.blake2b(f"{experiment_id}:{slot}:{prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def team_draft(a: Sequence[str], b: Sequence[str], *, limit: int, seed: int | None = None,
               rng: random.Random | None = None) -> tuple[list[str], dict[str, str]]:
    """Team-draft interleaving of ranking ``a`` (the control) and ``b`` (the treatment).

    Args:
        a: Control order, best first.
        b: Treatment order, best first.
        limit: Length of the interleaved list.
        seed: Seed of the coin flips (the same seed gives the same list).
        rng: A random generator to use instead of ``seed``.

    Returns:
        ``(interleaved list, text → team)``; every text of the list has a team.
    """
    rng = rng or random.Random(seed)
    out: list[str] = []
    teams: dict[str, str] = {}
    picks = {CONTROL: 0, TREATMENT: 0}
    rest = {CONTROL: list(a), TREATMENT: list(b)}
    pos = {CONTROL: 0, TREATMENT: 0}
    limit = min(limit, len(set(a) | set(b)))

    def next_new(team: str) -> str | None:
        ranking = rest[team]
        while pos[team] < len(ranking) and ranking[pos[team]] in teams:
            pos[team] += 1
        return ranking[pos[team]] if pos[team] < len(ranking) else None

    while len(out) < limit:
        if picks[CONTROL] < picks[TREATMENT]:
            team = CONTROL
        elif picks[TREATMENT] < picks[CONTROL]:
            team = TREATMENT
        else:
            team = CONTROL if rng.random() < 0.5 else TREATMENT
        text = next_new(team)
        if text is None:  # this team has nothing new left: the other one picks
            team = TREATMENT if team == CONTROL else CONTROL
            text = next_new(team)
            if text is None:
                break
        out.append(text)
        teams[text] = team
        picks[team] += 1
    return out, teams


def credit(teams: Mapping[str, str], clicked: Sequence[str]) -> tuple[int, int, str]:
    """Clicks per team in one interleaved list, and the winner.

    Returns:
        ``(control clicks, treatment clicks, winner)``; the winner is
        ``"control"``, ``"treatment"``, ``"tie"`` (as many clicks each, at
        least one) or ``""`` (no credited click).
    """
    c = sum(1 for t in clicked if teams.get(t) == CONTROL)
    t = sum(1 for x in clicked if teams.get(x) == TREATMENT)
    return c, t, winner(c, t)


def winner(control_clicks: int, treatment_clicks: int) -> str:
    """``"control"``, ``"treatment"``, ``"tie"`` or ``""`` (no credited click), as :func:`credit`."""
    if control_clicks == treatment_clicks:
        return "tie" if control_clicks else ""
    return CONTROL if control_clicks > treatment_clicks else TREATMENT


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio metric of one arm: ``value`` with its 95% interval."""

    value: float
    low: float
    high: float
    units: int
    denominator: float


@dataclass(frozen=True)
class Difference:
    """Treatment minus control, with its 95% interval and two-sided p-value."""

    value: float
    low: float
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def _ratio_and_variance(numerators, denominators) -> tuple[float, float]:
    """Ratio of sums and its delta-method variance over units."""
    import numpy as np

    n = len(numerators)
    x, d = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    total = d.sum()
    if n == 0 or total <= 0:
        return 0.0, math.inf
    ratio = x.sum() / total
    if n < 2:
        return float(ratio), math.inf
    mean_d = total / n
    cov = np.cov(x, d, ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * mean_d**2)
    return float(ratio), float(max(var, 0.0))


def ratio_estimate(numerators: Sequence[float], denominators: Sequence[float]) -> RatioEstimate:
    """``sum(numerators) / sum(denominators)`` over units, with a delta-method 95% interval.

    Args:
        numerators: Per unit (shopper): e.g. clicked impressions, or summed reciprocal ranks.
        denominators: Per unit: impressions.
    """
    import numpy as np
    from scipy.stats import norm

    x, d = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    ratio, var = _ratio_and_variance(x, d)
    half = norm.ppf(1 - ALPHA / 2) * math.sqrt(var) if math.isfinite(var) else math.inf
    return RatioEstimate(ratio, max(ratio - half, 0.0) if math.isfinite(half) else 0.0,
                         ratio + half if math.isfinite(half) else math.inf, len(x), float(d.sum()))


def ratio_difference(control: tuple[Sequence[float], Sequence[float]],
                     treatment: tuple[Sequence[float], Sequence[float]]) -> Difference:
    """Treatment minus control of a ratio metric (independent arms, z-test).

    Args:
        control: ``(numerators, denominators)`` per control shopper.
        treatment: The same for treatment shoppers.
    """
    import numpy as np
    from scipy.stats import norm

    rc, vc = _ratio_and_variance(np.asarray(control[0]), np.asarray(control[1]))
    rt, vt = _ratio_and_variance(np.asarray(treatment[0]), np.asarray(treatment[1]))
    diff, var = rt - rc, vc + vt
    if not math.isfinite(var):
        return Difference(diff, -math.inf, math.inf, 1.0)
    se = math.sqrt(var)
    if se == 0:
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0)
    half = norm.ppf(1 - ALPHA / 2) * se
    return Difference(diff, diff - half, diff + half, float(2 * norm.sf(abs(diff) / se)))


@dataclass(frozen=True)
class SampleRatio:
    """The chi-square check of shoppers per arm against the configured split."""

    observed: dict[str, int]
    expected: dict[str, float]
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P


def sample_ratio_check(observed: Mapping[str, int], weights: Mapping[str, float]) -> SampleRatio:
    """Chi-square goodness of fit of ``observed`` units per arm to ``weights``.

    Raises:
        ValueError: An arm has no weight, or a weight is not positive.
    """
    import numpy as np
    from scipy.stats import chisquare

    arms = list(weights)
    if set(observed) - set(arms):
        raise ValueError(f"arms without a weight: {sorted(set(observed) - set(arms))}")
    if any(weights[a] <= 0 for a in arms):
        raise ValueError("every arm needs a positive weight")
    counts = np.asarray([observed.get(a, 0) for a in arms], dtype=np.float64)
    total = counts.sum()
    share = np.asarray([weights[a] for a in arms], dtype=np.float64)
    expected = share / share.sum() * total
    p = 1.0 if total == 0 else float(chisquare(counts, expected).pvalue)
    return SampleRatio({a: int(c) for a, c in zip(arms, counts, strict=True)},
                       {a: float(e) for a, e in zip(arms, expected, strict=True)}, p)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided binomial (sign) test p-value of ``wins`` against ``losses``."""
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5).pvalue)


def proportion_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of a proportion (``(0, 1)`` when ``n`` is 0)."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0
    ci = binomtest(successes, n).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return float(ci.low), float(ci.high)
