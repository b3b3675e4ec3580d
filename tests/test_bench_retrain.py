"""bench/retrain: its log builder yields exactly the events asked, and its command line
rejects what it cannot run (the real log and the retrains run in the benchmark only)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from bench import retrain as bench
from bench.search_clicks import LoggedClick

WORDS = ["call of duty", "call of duty black ops", "gears of war", "gears of war 3", "halo reach", "halo 3",
         "madden 12", "mass effect", "minecraft", "fifa 12"]


def _clicks(n: int = 300) -> list[LoggedClick]:
    rng = random.Random(3)
    start = datetime(2011, 8, 1)
    out = []
    for i in range(n):
        q = rng.choice(WORDS)
        when = start + timedelta(hours=i)
        out.append(LoggedClick(f"u{rng.randrange(120)}", str(rng.randrange(20)), q, q.upper(), when,
                               when + timedelta(seconds=30)))
        if i % 7 == 0:  # a second click on the same search
            out.append(LoggedClick(out[-1].user, "99", q, q.upper(), when, when + timedelta(seconds=60)))
    return out


@pytest.mark.parametrize("events", [1, 2, 17, 500, 1000, 2500])
def test_the_log_has_exactly_the_events_asked(events):
    planned = bench.plan_log(_clicks(), events, seed=1)
    assert len(planned) == events
    counts = bench.event_counts(planned)
    assert sum(counts.values()) == events
    assert set(counts) == set(bench.EVENT_TYPES)


def test_a_log_longer_than_the_source_goes_round_with_renamed_shoppers():
    clicks = _clicks()
    planned = bench.plan_log(clicks, 2500, seed=1)
    searches = [e for e in planned if e.type == "search"]
    sessions = len(bench.group_searches(clicks))
    assert len(searches) > sessions  # more searches than the source holds: a second round
    assert any("~1" in e.user for e in searches)
    # No search is repeated (the importer would drop it as a duplicate).
    keys = [(e.user, e.query, e.time) for e in searches]
    assert len(keys) == len(set(keys))


def test_each_search_brings_its_lists_clicks_and_products():
    planned = bench.plan_log(_clicks(), 800, seed=1)
    by_search: dict[str, list] = {}
    for e in planned:
        by_search.setdefault(e.search_key, []).append(e)
    complete = [evs for evs in by_search.values() if any(e.type == "product_click" for e in evs)]
    assert complete
    for evs in complete:
        types = [e.type for e in evs]
        assert types[0] == "impression"
        search = next(e for e in evs if e.type == "search")
        for e in evs:
            if e.type == "impression":
                assert e.time < search.time and search.normalized.startswith(e.prefix)
                assert 0 < len(e.suggestions) <= bench.LIST_SIZE
            if e.type == "suggestion_click":
                shown = [x for x in evs if x.type == "impression"][-1].suggestions
                assert shown[e.position] == search.normalized and search.prefix == "suggestion"
    assert any(e.type == "suggestion_click" for e in planned)
    # The same seed draws the same log.
    assert bench.plan_log(_clicks(), 800, seed=1) == planned


def test_the_log_builder_refuses_nothing_to_build():
    with pytest.raises(ValueError):
        bench.plan_log(_clicks(), 0)
    with pytest.raises(ValueError):
        bench.plan_log([], 10)


@pytest.mark.parametrize("argv", [
    ["--events", "0"], ["--events", "-5"], ["--events", "many"], ["--baseline-events", "-1"],
    ["--kinds", "ranker"], ["--kinds", ","], ["--device", "tpu"], ["--understanding", "huge"],
    ["--generator-steps", "0"],
])
def test_bad_arguments_are_rejected(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_arguments_parse():
    args = bench.build_parser().parse_args(["--events", "100_000", "--kinds", "generator,suggestion_ranker",
                                            "--baseline-events", "0"])
    assert args.events == 100_000 and args.baseline_events == 0
    assert args.kinds == ["suggestion_ranker", "generator"]  # the beat schedule's order
    defaults = bench.build_parser().parse_args([])
    assert defaults.events == 100_000 and defaults.kinds == list(bench.KIND_ORDER) and defaults.device == "cpu"
    assert bench.kind_options("suggestion_ranker", defaults) == {}
    assert bench.kind_options("generator", defaults) == {}  # the nightly configuration
    assert bench.kind_options("understanding", defaults) == {"params": {"device": "cpu"}}
    small = bench.build_parser().parse_args(["--understanding", "tiny", "--understanding-epochs", "1",
                                             "--generator", "tiny", "--generator-steps", "50", "--device", "auto"])
    assert bench.kind_options("understanding", small) == {"tiny": True, "params": {"epochs": 1}}
    assert bench.kind_options("generator", small) == {"tiny": True, "steps": 50}


def test_phases_come_from_the_loops_lines():
    lines = [(1.0, "retraining x: snapshot"), (3.0, "snapshot: {}"), (4.0, "trained"),
             (7.0, "evaluating the challenger and the active version on the same held-out window"),
             (8.5, "metric 0.5 vs 0.4 …: better"), (9.0, "promoted v1")]
    phases = bench.phases_from_log(lines, 0.5, 12.0)
    assert phases == {"snapshot": 2.5, "train": 4.0, "evaluate": 1.5, "promote": 0.5, "activate": 3.0}
    failed = bench.phases_from_log(lines[:2], 0.5, 5.0)
    assert failed == {"snapshot": 2.5, "rest": 2.0}
