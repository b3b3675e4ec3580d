"""bench/experiments on a small synthetic log: it runs end to end and its
parts do what the module docstring says (the real log is read at run time only)."""

from __future__ import annotations

import csv
import random
import re
from datetime import datetime, timedelta

import pytest

from bench import experiments as bench


def _log(folder, searches: int = 3000) -> None:
    rng = random.Random(2)
    words = ["call of duty", "call of duty black ops", "gears of war", "gears of war 3", "halo reach", "halo 3",
             "madden 12", "mass effect", "minecraft", "fifa 12", "forza 4", "battlefield 3"]
    weights = [1 / (i + 1) for i in range(len(words))]
    (folder / "bestbuy").mkdir()
    with (folder / "bestbuy" / "train.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["user", "sku", "category", "query", "click_time", "query_time"])
        start = datetime(2011, 8, 1)
        for i in range(searches):
            when = start + timedelta(minutes=i)
            out.writerow([f"u{rng.randrange(searches)}", "1", "c", rng.choices(words, weights)[0], when, when])


def test_mpc_and_its_perturbation():
    rankings = bench.mpc_rankings(["b", "a", "a", "ab", "ab", "ab"], {"a", "b"})
    assert rankings == {"a": ["ab", "a"], "b": ["b"]}
    assert bench.perturbed(rankings, 1.0, seed=0) == {"a": ["a", "ab"], "b": ["b"]}
    assert bench.perturbed(rankings, 0.0, seed=0) == rankings


def test_searches_for_power_interpolates_between_the_last_two_sizes():
    powers = {100: (0.5, 1000), 151: (0.9, 2000)}
    found, points = bench.searches_for_power(lambda n: powers[n], 100, 1.5, 10_000)
    assert points == [(1000, 0.5), (2000, 0.9)]
    assert 1000 < found < 2000 and found == pytest.approx(2 ** 0.75 * 1000, rel=1e-3)
    assert bench.searches_for_power(lambda n: (0.1, n), 100, 1.5, 200)[0] is None


def test_the_bench_runs_end_to_end_on_a_small_log(tmp_path, capsys):
    _log(tmp_path)
    assert bench.main(["--data-dir", str(tmp_path), "--aa-runs", "40", "--power-runs", "10"]) == 0
    out = capsys.readouterr().out
    assert "## A/A experiments (40 runs" in out and "interleaving, sign test" in out
    assert "A/B test (MRR, delta method)" in out and "team-draft interleaving (sign test)" in out
    # The calibration takes the smallest perturbation that costs at least the
    # target (few prefixes here: it cannot hit 0.0100 exactly).
    difference = float(re.search(r"difference (\d\.\d+)\)", out).group(1))
    assert 0.01 <= difference < 0.05


def test_a_missing_log_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--data-dir", str(tmp_path)])
    assert exc.value.code == 2 and "Best Buy log" in capsys.readouterr().err
