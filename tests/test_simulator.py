"""The demo's traffic simulator (catalog/simulator.py, ``catalog_simulate_traffic``).

Simulated shoppers drive a live server through the real HTTP API, and what
they did must land in the database exactly as a browser's events would:
searches with their origins, impressions for successive keystrokes,
suggestion clicks at the shown positions, product clicks favouring relevant
products, one actor per shopper. The click models, the planning (Zipf
popularity, typos) and the loopback guard are checked without a server.
"""

from __future__ import annotations

import random
import socket
from collections import Counter
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from catalog.simulator import (
    DEFAULT_JUDGMENTS_PATH,
    Answer,
    ClickModel,
    HttpTransport,
    NotLoopbackError,
    Simulation,
    SimulationConfig,
    SuggestionModel,
    check_loopback_url,
    choose_suggestion,
    decide_clicks,
    judgments_by_product,
    load_judgments,
    make_typo,
    normalize,
    plan_keystrokes,
    zipf_popularity,
)
from suggestions import services
from suggestions.models import (
    ProductClick,
    QueryDailyStat,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)
from tests.factories import ProductFactory

#: Judged queries the live shop sells; short, so a run stays fast.
SHOP_QUERIES = ["cd drive", "ssd", "radio"]

EVENT_MODELS = [SearchEvent, SuggestionImpression, SuggestionClick, ProductClick, QueryDailyStat]


# -- a live shop ---------------------------------------------------------------------------


@pytest.fixture
def judged_shop() -> dict[str, dict[str, int]]:
    """For each of SHOP_QUERIES, four grade-3 and four grade-0 products (their
    real Icecat ids as source ids, all matching the query), indexed, and the
    queries published as suggestions. Returns the judgments by product id."""
    judged = load_judgments()
    product_ids: dict[str, str] = {}
    for query in SHOP_QUERIES:
        grades = judged[query]
        relevant = [doc for doc, grade in grades.items() if grade == 3][:4]
        irrelevant = [doc for doc, grade in grades.items() if grade == 0][:4]
        assert len(relevant) == len(irrelevant) == 4
        # Alternated, with titles alike, so neither grade owns the top positions.
        for n, doc in enumerate(d for pair in zip(relevant, irrelevant, strict=True) for d in pair):
            product = ProductFactory(
                source_id=doc,
                title=f"Acme {query} model {n}",
                product_type=query,
                description="",
            )
            product_ids[doc] = str(product.pk)
    for weight, query in enumerate(reversed(SHOP_QUERIES), start=1):
        Suggestion.objects.create(text=query, source="history", status="approved", weight=weight * 10)
    services.rebuild_index()
    services.publish_suggestions()
    return judgments_by_product({q: judged[q] for q in SHOP_QUERIES}, product_ids)


def live_config(**overrides: Any) -> SimulationConfig:
    options: dict[str, Any] = {
        "shoppers": 6,
        "searches_per_shopper": 3,
        "seed": 3,
        "typo_rate": 0.0,  # every keystroke then matches a published suggestion
        "uses_suggestions_rate": 0.6,
        "concurrency": 2,
        "suggestion_model": SuggestionModel(attention=0.5),
        # Grade 0 is rarely clicked at all; make it visible enough to compare.
        "click_model": ClickModel(attractiveness=(0.1, 0.2, 0.5, 0.9)),
    }
    options.update(overrides)
    return SimulationConfig(**options)


def event_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in EVENT_MODELS}


@pytest.mark.django_db(transaction=True)  # the live server must see the test's rows
def test_simulated_shoppers_are_recorded_like_browsers(server, judged_shop):
    simulation = Simulation(live_config(), judged_shop, HttpTransport(server.url))

    stats = simulation.run()

    assert stats.http_errors == Counter()
    assert not stats.stopped_early
    assert stats.shoppers == 6

    # Searches, with how they started.
    searches = list(SearchEvent.objects.all())
    assert len(searches) == sum(stats.searches.values()) == simulation.planned_searches
    origins = Counter(s.origin for s in searches)
    assert origins == stats.searches
    assert origins["typed"] > 0 and origins["suggestion"] > 0
    assert {s.normalized_query for s in searches if s.origin != "typed"} <= set(SHOP_QUERIES)

    # One actor per shopper, never empty.
    actors = {s.actor_hash for s in searches}
    assert "" not in actors
    assert len(actors) == 6

    # Impressions: every keystroke's list, per shopper in typing order.
    impressions = list(SuggestionImpression.objects.order_by("id"))
    assert len(impressions) == stats.impressions
    assert all(i.actor_hash in actors for i in impressions)
    stored = Counter(
        tuple(i.prefix for i in impressions if i.actor_hash == actor) for actor in actors
    )
    planned = Counter(
        tuple(normalize(a[1]) for a in trace if a[0] == "suggest")
        for _, trace in simulation.traces()
    )
    assert stored == planned
    # Successive keystrokes: within one search each prefix extends the one before.
    for sequence in stored:
        assert len(sequence[0]) == 1
        for before, after in zip(sequence, sequence[1:], strict=False):
            assert after.startswith(before) or len(after) == 1

    # Suggestion clicks: at the position the clicked text was shown.
    clicks = list(SuggestionClick.objects.all())
    assert len(clicks) == stats.suggestion_clicks == origins["suggestion"] + origins["history"]
    shown = {i.request_id: i.suggestions for i in impressions}
    for click in clicks:
        assert shown[click.request_id][click.position] == click.suggestion
        assert click.actor_hash in actors

    # Product clicks: on judged products of the search they came from, relevant ones more often.
    product_clicks = list(ProductClick.objects.all())
    assert len(product_clicks) == stats.product_clicks > 0
    search_ids = {s.request_id for s in searches}
    assert all(c.request_id in search_ids for c in product_clicks)
    grade_of = {pk: grade for grades in judged_shop.values() for pk, grade in grades.items()}
    by_grade = Counter(grade_of[c.object_id] for c in product_clicks)
    assert by_grade == stats.product_clicks_by_grade
    assert by_grade[3] > by_grade[0]


@pytest.mark.django_db(transaction=True)
def test_a_seed_gives_the_same_run_twice(server, judged_shop):
    def run(seed: int) -> tuple[dict[str, int], list]:
        for model in EVENT_MODELS:
            model.objects.all().delete()
        simulation = Simulation(live_config(seed=seed, shoppers=4), judged_shop, HttpTransport(server.url))
        stats = simulation.run()
        assert stats.http_errors == Counter()
        return event_counts(), list(simulation.traces())

    first, again, other = run(11), run(11), run(12)

    assert first == again
    assert first[1] != other[1]


# -- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://example.com", "http://10.0.0.1:8000", "http://127.0.0.1.example.com/", "ftp://127.0.0.1/", "http://[::2]/"],
)
def test_non_loopback_base_urls_are_refused(url):
    with pytest.raises(NotLoopbackError, match="loopback|http"):
        HttpTransport(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.1.2.3/", "http://localhost:8765", "http://[::1]:8000/", "https://LOCALHOST"]
)
def test_loopback_base_urls_are_accepted(url):
    assert check_loopback_url(url).endswith("/")


def test_command_refuses_a_remote_server():
    with pytest.raises(CommandError, match="Refusing to send simulated traffic to '192.168.1.20'"):
        call_command("catalog_simulate_traffic", "--base-url", "http://192.168.1.20:8000", "--quiet")


@pytest.mark.django_db
def test_command_says_when_no_server_runs():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CommandError, match=f"is the server running at http://127.0.0.1:{port}/"):
        call_command("catalog_simulate_traffic", "--base-url", f"http://127.0.0.1:{port}", "--quiet")


@pytest.mark.django_db(transaction=True)
def test_command_runs_shoppers_and_prints_a_summary(server, judged_shop, capsys):
    # The catalog's Icecat ids map to the products' ids through the database.
    call_command(
        "catalog_simulate_traffic", "--base-url", server.url, "--shoppers", "2",
        "--searches-per-shopper", "1", "--quiet", "--max-requests", "200",
    )

    out = capsys.readouterr().out
    assert "shoppers: 2" in out
    assert "HTTP errors: 0" in out
    assert "requests:" in out
    assert SearchEvent.objects.values("actor_hash").distinct().count() == 2


# -- without a server ----------------------------------------------------------------------


class FakeClient:
    """Answers like the API: every judged query that starts with what was typed,
    and a fixed ranked list per query."""

    def __init__(self, log: list) -> None:
        self.log = log

    def get(self, path: str, params: dict | None = None) -> Answer:
        params = params or {}
        self.log.append(path)
        if path.endswith("suggest/"):
            typed = normalize(params["q"])
            texts = [q for q in FAKE_JUDGMENTS if q.startswith(typed)]
            return Answer(200, {"request_id": "0" * 32, "suggestions": [{"text": t, "kind": "suggestion"} for t in texts]})
        if path.endswith("search/"):
            results = [{"id": str(n), "position": n} for n in range(10)]
            return Answer(200, {"request_id": "1" * 32, "query": params["q"], "results": results})
        return Answer(200)

    def post_json(self, path: str, body: Any) -> Answer:
        self.log.append(path)
        return Answer(202, {"accepted": len(body["events"])})


class FakeTransport:
    def __init__(self) -> None:
        self.log: list = []

    def client(self) -> FakeClient:
        return FakeClient(self.log)


FAKE_JUDGMENTS = {
    "laptop": {"0": 3, "1": 0, "2": 3},
    "laptop bag": {"0": 0, "1": 3},
    "mouse": {"3": 2},
    "mouse pad": {},
}


def fake_run(**overrides: Any) -> tuple[Any, list]:
    config = SimulationConfig(**{"shoppers": 20, "seed": 5, "typo_rate": 0.3, **overrides})
    simulation = Simulation(config, FAKE_JUDGMENTS, FakeTransport())
    stats = simulation.run()
    return stats, list(simulation.traces())


def test_actions_depend_on_the_seed_only_not_on_concurrency():
    stats, traces = fake_run(concurrency=1)
    stats_again, traces_again = fake_run(concurrency=4)

    assert traces == traces_again
    assert stats.searches == stats_again.searches and stats.requests == stats_again.requests
    assert fake_run(seed=6)[1] != traces


def test_max_requests_stops_the_run():
    stats, _ = fake_run(max_requests=50, concurrency=3)

    assert stats.requests == 50
    assert stats.stopped_early


def test_popular_queries_reach_the_distinct_shopper_gate_and_rare_ones_do_not():
    judged = load_judgments(DEFAULT_JUDGMENTS_PATH)
    assert len(judged) == 89
    simulation = Simulation(SimulationConfig(shoppers=200, seed=1), judged, FakeTransport())

    shoppers_of: dict[str, set[int]] = {q: set() for q in judged}
    for shopper in simulation.shoppers:
        for visit in shopper.visits:
            for planned in visit:
                shoppers_of[planned.intended].add(shopper.index)
    ranked = [query for query, _ in simulation.popularity]
    assert len(shoppers_of[ranked[0]]) >= 20
    assert all(len(shoppers_of[q]) >= 3 for q in ranked[:10])
    assert sum(len(shoppers_of[q]) < 3 for q in ranked[-30:]) >= 10
    # Some shoppers come back, some repeat themselves, some mistype.
    planned = [p for s in simulation.shoppers for v in s.visits for p in v]
    assert sum(len(s.visits) > 1 for s in simulation.shoppers) > 20
    assert any(p.repeat for p in planned) and any(p.typo for p in planned)


def test_zipf_popularity_is_skewed_and_seeded():
    queries = [f"q{n}" for n in range(50)]

    shares = zipf_popularity(queries, exponent=1.0, seed=2)

    assert sorted(q for q, _ in shares) == sorted(queries)
    assert sum(s for _, s in shares) == pytest.approx(1.0)
    assert shares[0][1] == pytest.approx(shares[1][1] * 2)
    assert zipf_popularity(queries, seed=2) == shares
    assert [q for q, _ in zipf_popularity(queries, seed=3)] != [q for q, _ in shares]


# -- click models --------------------------------------------------------------------------


def click_rates(model: ClickModel, grades: list[int | None], draws: int = 20_000) -> list[float]:
    rng = random.Random(42)
    totals = [0] * len(grades)
    for _ in range(draws):
        for position, clicked in enumerate(decide_clicks(model, grades, rng)):
            totals[position] += clicked
    return [t / draws for t in totals]


def test_result_clicks_decay_with_position_for_equal_grades():
    model = ClickModel(position_bias=1.0)

    rates = click_rates(model, [3] * 6)

    assert rates == sorted(rates, reverse=True)
    assert rates[0] > 1.5 * rates[1] > 1.5 * 1.2 * rates[3]
    for position, rate in enumerate(rates):
        assert rate == pytest.approx(0.45 / (1 + position), abs=0.015)


def test_without_position_bias_every_position_is_alike():
    rates = click_rates(ClickModel(position_bias=0.0), [3] * 5)

    assert max(rates) - min(rates) < 0.03


def test_relevant_results_are_clicked_more_at_the_same_position():
    model = ClickModel()

    by_grade = [click_rates(model, [grade], draws=30_000)[0] for grade in (0, 1, 2, 3)]

    assert by_grade == sorted(by_grade)
    assert by_grade[3] > 5 * by_grade[1]
    assert model.click_probability(0, None) == model.click_probability(0, 0)


def test_suggestions_are_chosen_by_position_and_prefix_length():
    model = SuggestionModel(attention=0.6)
    rng = random.Random(1)

    def rate(shown: list[str], typed: int, draws: int = 10_000) -> float:
        return sum(choose_suggestion(model, shown, "usb hub", typed, rng) is not None for _ in range(draws)) / draws

    top, third = rate(["usb hub", "x", "y"], 7), rate(["x", "y", "usb hub"], 7)
    assert top == pytest.approx(0.6, abs=0.03)
    assert third == pytest.approx(0.6 / 3, abs=0.03)
    assert rate(["usb hub"], 2) < rate(["usb hub"], 5) < top
    assert rate(["usb hub 4 port"], 7) == pytest.approx(0.6 * 0.3, abs=0.03)
    assert rate(["usb cable", "usb"], 7) == 0


# -- typing --------------------------------------------------------------------------------


def test_keystrokes_with_and_without_typos():
    assert plan_keystrokes("ssd") == ["s", "ss", "ssd"]
    typo = ("dekk", 2)  # "desk" with a neighbouring key
    assert plan_keystrokes("desk", typo) == ["d", "de", "dek", "dekk"]
    # Noticed one character later: deleted back to the typo, then typed right.
    assert plan_keystrokes("desk", typo, fix_after=1) == ["d", "de", "dek", "dekk", "dek", "de", "des", "desk"]


def test_a_typo_is_one_edit_after_the_first_character():
    rng = random.Random(0)
    for _ in range(200):
        misspelt, position = make_typo("keyboard", rng)
        assert misspelt != "keyboard" and misspelt[0] == "k"
        assert misspelt[:position] == "keyboard"[:position]
        assert abs(len(misspelt) - len("keyboard")) <= 1
    assert make_typo("tv", rng) is None
