"""Simulated shoppers for the demo shop: realistic, learnable search traffic
through the suggestions app's real HTTP API.

Each :class:`Shopper` is one browser: its own client and cookie jar (so its
own session and actor hash), landing on the storefront, typing judged Icecat
queries keystroke by keystroke into the typeahead (``GET suggest/``),
reporting the lists it was shown (``impression``), sometimes choosing a
suggestion (``suggestion_click``, then ``GET search/?origin=suggestion`` or
``origin=history`` for one of its own recent searches), otherwise finishing
the query and searching it (``origin=typed``), then clicking results
(``product_click``) by their relevance grade for what it wanted. The events
have the shapes the typeahead widget and storefront script send
(``suggestions/static/suggestions/typeahead.js``, ``catalog/static/catalog/storefront.js``).

The behaviour is driven by two click models, both exposed as pure functions
so that learning code (position-bias debiasing, click models) can be tested
on the same assumptions:

* Results (:func:`decide_clicks`): a position-based model. A result at
  0-based position ``p`` is examined with probability
  ``1 / (1 + p) ** position_bias`` and clicked, once examined, with the
  attractiveness of its grade (``ClickModel.attractiveness``, default
  0.01 / 0.05 / 0.15 / 0.45 for grades 0..3; unjudged results count as
  ``unjudged_grade``, 0). Clicks are independent given examination, so
  ``P(click) = examination(p) * attractiveness(grade)`` holds exactly.
* Suggestions (:func:`choose_suggestion`): at each keystroke, the list is
  scanned top-down; a suggestion at position ``p`` is taken with probability
  ``attention * min(1, typed / len(intended)) * 1 / (1 + p) ** position_bias *
  appeal``, where ``appeal`` is 1 for the intended query, ``refinement_appeal``
  (0.3) for a suggestion that extends it ("laptop" → "laptop bag") and 0
  otherwise. The first one taken is chosen.

Contracts:

* Only loopback servers are targeted: :func:`check_loopback_url` (and so
  :class:`HttpTransport`) refuses any base URL whose host is not in
  127.0.0.0/8, ``localhost`` or ``::1`` (:class:`NotLoopbackError`). No name
  is resolved.
* Deterministic for a seed: what each shopper plans (queries, typos, visits)
  comes from ``Random(f"{seed}:plan:{index}")`` and what it decides from the
  answers it gets from ``Random(f"{seed}:act:{index}")``. A shopper's visits
  run in order, never at the same time, so with the same server state the
  same seed gives the same actions whatever ``concurrency`` is; a run cut
  short by ``duration`` or ``max_requests`` is not reproducible.
* Never raises on an HTTP answer: non-2xx answers and connection failures
  during the run are counted in :attr:`SimulationStats.http_errors` (by
  status, ``"connection"`` for no answer). Only the pre-flight check
  (:meth:`HttpTransport.check`) raises, :class:`ServerUnreachable`, when
  nothing answers at the base URL.
* Query popularity is Zipf-like (:func:`zipf_popularity`) over a seeded
  order of the judged queries, so the most popular queries are searched by
  many distinct shoppers (and pass ``SUGGESTIONS_MIN_DISTINCT_USERS``) and
  the rarest by few or none.
* Needs no Django: judgments are keyed by the product id as the search API
  returns it; the management command ``catalog_simulate_traffic`` maps Icecat
  ids to those with the database.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

#: The judgments shipped with the demo (Chorus project, Apache-2.0; see the NOTICE beside it).
DEFAULT_JUDGMENTS_PATH = Path(__file__).resolve().parent / "data" / "judgments" / "dev.csv"

#: Where the demo project mounts the suggestions API.
DEFAULT_API_PREFIX = "/api/suggestions/"

#: Events per ``POST events/``, as the widget sends them (the server accepts 50).
EVENTS_PER_POST = 20

#: Highest grade of the judgments (0 = irrelevant … 3 = perfect).
MAX_GRADE = 3

# Neighbouring keys on a QWERTY keyboard, for substitution typos.
_KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


class NotLoopbackError(ValueError):
    """The base URL names a host other than this machine."""


class ServerUnreachable(ConnectionError):
    """Nothing answered at the base URL."""


def normalize(text: str) -> str:
    """Lower-case and collapse whitespace: close enough to the app's own
    normalisation to compare a suggestion with the query a shopper wants."""
    return " ".join(text.casefold().split())


# -- loopback guard -------------------------------------------------------------------


def check_loopback_url(url: str) -> str:
    """Refuse base URLs that do not point at this machine.

    Args:
        url: An ``http://`` or ``https://`` URL.

    Returns:
        The URL, with a trailing slash.

    Raises:
        NotLoopbackError: When the scheme is not HTTP(S) or the host is not
            in 127.0.0.0/8, ``localhost`` or ``::1``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotLoopbackError(f"{url!r} is not an http:// or https:// URL with a host.")
    host = parts.hostname
    if host.lower() != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise NotLoopbackError(
                f"Refusing to send simulated traffic to {host!r}: only loopback servers "
                "(127.0.0.0/8, localhost, ::1) may be targeted."
            )
    return url if url.endswith("/") else url + "/"


# -- judgments and popularity -------------------------------------------------------------


def load_judgments(path: Path | str = DEFAULT_JUDGMENTS_PATH) -> dict[str, dict[str, int]]:
    """Read a ``query,docid,rating`` file.

    Args:
        path: The CSV file (header ``query,docid,rating``).

    Returns:
        Grades by normalised query, then by document id, in file order.

    Raises:
        ValueError: When a column is missing or a rating is not 0..3.
    """
    judgments: dict[str, dict[str, int]] = {}
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"query", "docid", "rating"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        for line, row in enumerate(reader, start=2):
            try:
                grade = int(row["rating"])
            except (TypeError, ValueError):
                grade = -1
            if not 0 <= grade <= MAX_GRADE:
                raise ValueError(f"{path}:{line}: rating must be 0..{MAX_GRADE}, got {row['rating']!r}.")
            query = normalize(row["query"] or "")
            if query:
                judgments.setdefault(query, {})[str(row["docid"]).strip()] = grade
    return judgments


def judgments_by_product(
    judgments: Mapping[str, Mapping[str, int]], product_ids: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """Re-key judgments from document ids to the product ids the search API returns.

    Args:
        judgments: Grades by query, then by document (Icecat) id.
        product_ids: Product id by document id; documents missing here are dropped.

    Returns:
        Grades by query, then by product id. Every query is kept, even with no product left.
    """
    return {
        query: {product_ids[doc]: grade for doc, grade in grades.items() if doc in product_ids}
        for query, grades in judgments.items()
    }


def zipf_popularity(queries: Sequence[str], *, exponent: float = 1.0, seed: int = 0) -> list[tuple[str, float]]:
    """Zipf-like popularity over the queries, in a seeded order.

    The queries are shuffled with ``seed``; the one at rank ``r`` (1-based)
    gets a share proportional to ``1 / r ** exponent``.

    Args:
        queries: Distinct queries.
        exponent: Skew; 0 makes all equally popular.
        seed: Order of popularity.

    Returns:
        ``(query, share)`` pairs, most popular first; shares sum to 1.
    """
    order = sorted(dict.fromkeys(queries))
    random.Random(f"{seed}:popularity").shuffle(order)
    weights = [1.0 / rank**exponent for rank in range(1, len(order) + 1)]
    total = sum(weights)
    return [(query, weight / total) for query, weight in zip(order, weights, strict=True)]


# -- click models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickModel:
    """Position-based model of clicks on a result list.

    Attributes:
        position_bias: η; a result at 0-based position ``p`` is examined with
            probability ``1 / (1 + p) ** η`` (0: every result is examined).
        attractiveness: Probability of clicking an examined result, by grade 0..3.
        unjudged_grade: Grade of results without a judgment.
    """

    position_bias: float = 1.0
    attractiveness: tuple[float, ...] = (0.01, 0.05, 0.15, 0.45)
    unjudged_grade: int = 0

    def __post_init__(self) -> None:
        if self.position_bias < 0:
            raise ValueError("position_bias must not be negative.")
        if len(self.attractiveness) != MAX_GRADE + 1 or not all(0 <= a <= 1 for a in self.attractiveness):
            raise ValueError(f"attractiveness needs {MAX_GRADE + 1} probabilities, one per grade.")
        if not 0 <= self.unjudged_grade <= MAX_GRADE:
            raise ValueError(f"unjudged_grade must be 0..{MAX_GRADE}.")

    def examination(self, position: int) -> float:
        """Probability that the result at 0-based ``position`` is looked at."""
        return (1.0 + position) ** -self.position_bias

    def click_probability(self, position: int, grade: int | None) -> float:
        """``examination(position) * attractiveness(grade)``; ``None`` is unjudged."""
        grade = self.unjudged_grade if grade is None else grade
        return self.examination(position) * self.attractiveness[grade]


def decide_clicks(model: ClickModel, grades: Sequence[int | None], rng: random.Random) -> list[bool]:
    """Which results of a ranked list a shopper clicks.

    One draw per result, top-down, so the same ``rng`` state gives the same
    decisions.

    Args:
        model: The click model.
        grades: Grade of the result at each position (``None``: unjudged).
        rng: Source of randomness.

    Returns:
        One flag per position, True where the result is clicked.
    """
    return [rng.random() < model.click_probability(pos, grade) for pos, grade in enumerate(grades)]


@dataclass(frozen=True)
class SuggestionModel:
    """How shoppers choose among shown suggestions.

    Attributes:
        position_bias: η of the list, as in :class:`ClickModel`.
        attention: Probability of taking the intended query at the top of the
            list once the whole query is typed; less for shorter prefixes.
        refinement_appeal: Appeal of a suggestion that extends the intended
            query by more words (the intended query itself has appeal 1).
    """

    position_bias: float = 1.0
    attention: float = 0.2
    refinement_appeal: float = 0.3

    def appeal(self, suggestion: str, intended: str) -> float:
        """1 for the intended query, ``refinement_appeal`` for a longer one that starts with it, else 0."""
        text, want = normalize(suggestion), normalize(intended)
        if text == want:
            return 1.0
        if want and text.startswith(want + " "):
            return self.refinement_appeal
        return 0.0

    def choice_probability(self, position: int, suggestion: str, intended: str, typed: int) -> float:
        """Probability of taking ``suggestion`` at ``position`` after ``typed`` characters."""
        progress = min(1.0, typed / max(1, len(intended)))
        return (
            self.attention
            * progress
            * (1.0 + position) ** -self.position_bias
            * self.appeal(suggestion, intended)
        )


def choose_suggestion(
    model: SuggestionModel, shown: Sequence[str], intended: str, typed: int, rng: random.Random
) -> int | None:
    """Position of the suggestion the shopper takes, if any.

    Scans top-down with one draw per suggestion that has any appeal; the
    first one taken wins.

    Args:
        model: The suggestion model.
        shown: Suggestion texts in the order shown.
        intended: What the shopper wants to search.
        typed: Characters typed so far.
        rng: Source of randomness.

    Returns:
        The 0-based position taken, or ``None``.
    """
    for position, text in enumerate(shown):
        probability = model.choice_probability(position, text, intended, typed)
        if probability > 0 and rng.random() < probability:
            return position
    return None


# -- typing -------------------------------------------------------------------------------


def _neighbours(char: str) -> str:
    for row in _KEYBOARD_ROWS:
        index = row.find(char)
        if index >= 0:
            return row[max(0, index - 1) : index] + row[index + 1 : index + 2]
    return ""


def make_typo(query: str, rng: random.Random) -> tuple[str, int] | None:
    """One edit a typist makes: a neighbouring key, a dropped, doubled or swapped letter.

    Never touches the first character (people rarely get that wrong) and
    only edits letters or digits.

    Args:
        query: The correct text.
        rng: Source of randomness.

    Returns:
        ``(misspelt, position)`` where ``position`` is the first character
        that differs, or ``None`` when the query is too short.
    """
    positions = [i for i in range(1, len(query)) if query[i].isalnum()]
    if len(query) < 3 or not positions:
        return None
    i = rng.choice(positions)
    kind = rng.choice(("substitute", "delete", "double", "swap"))
    if kind == "substitute" and _neighbours(query[i]):
        misspelt = query[:i] + rng.choice(_neighbours(query[i])) + query[i + 1 :]
    elif kind == "swap" and i + 1 < len(query) and query[i + 1].isalnum() and query[i] != query[i + 1]:
        misspelt = query[:i] + query[i + 1] + query[i] + query[i + 2 :]
    elif kind == "double":
        misspelt = query[: i + 1] + query[i] + query[i + 1 :]
        i += 1
    else:
        misspelt = query[:i] + query[i + 1 :]
    return misspelt, i


def plan_keystrokes(query: str, typo: tuple[str, int] | None = None, fix_after: int | None = None) -> list[str]:
    """What the search box holds after each keystroke.

    Args:
        query: The correct text.
        typo: ``(misspelt, position)`` from :func:`make_typo`, or ``None``.
        fix_after: With a typo, notice it after this many more characters,
            delete back to it and type the rest correctly; ``None`` keeps the
            typo to the end.

    Returns:
        Box contents, one per keystroke (backspaces included); the last is
        what is submitted when no suggestion is chosen.
    """
    if typo is None:
        return [query[:n] for n in range(1, len(query) + 1)]
    misspelt, position = typo
    if fix_after is None:
        return [misspelt[:n] for n in range(1, len(misspelt) + 1)]
    noticed = min(len(misspelt), position + 1 + fix_after)
    typed = [misspelt[:n] for n in range(1, noticed + 1)]
    deleted = [misspelt[:n] for n in range(noticed - 1, position - 1, -1) if n > 0]
    retyped = [query[:n] for n in range(max(position, 0) + 1, len(query) + 1)]
    return typed + deleted + retyped


# -- transport ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status (0 when none came) and the decoded JSON body, if any."""

    status: int
    data: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Client(Protocol):
    """One shopper's browser: keeps its own cookies across requests."""

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Answer: ...

    def post_json(self, path: str, body: Any) -> Answer: ...


class Transport(Protocol):
    """Makes clients; tests plug in their own."""

    def client(self) -> Client: ...


class HttpClient:
    """A :class:`Client` over ``urllib`` with its own cookie jar.

    Like the widget, it sends the ``csrftoken`` cookie (when it has one) back
    as ``X-CSRFToken`` on POSTs; anonymous shoppers need none.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.cookies = CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Answer:
        query = "?" + urlencode(params, doseq=True) if params else ""
        return self._send(urllib.request.Request(urljoin(self.base_url, path.lstrip("/")) + query))

    def post_json(self, path: str, body: Any) -> Answer:
        headers = {"Content-Type": "application/json"}
        token = next((c.value for c in self.cookies if c.name == "csrftoken" and c.value), None)
        if token:
            headers["X-CSRFToken"] = token
        request = urllib.request.Request(
            urljoin(self.base_url, path.lstrip("/")),
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> Answer:
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "catalog-simulator")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Answer(response.status, _json(response.read(), response.headers.get_content_type()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _json(exc.read(), exc.headers.get_content_type()))
        except (urllib.error.URLError, OSError):
            return Answer(0)


def _json(raw: bytes, content_type: str) -> Any:
    if content_type != "application/json":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class HttpTransport:
    """:class:`HttpClient` factory for a loopback base URL.

    Raises:
        NotLoopbackError: From the constructor, for a non-loopback base URL.
    """

    def __init__(self, base_url: str, *, api_prefix: str = DEFAULT_API_PREFIX, timeout: float = 10.0) -> None:
        self.base_url = check_loopback_url(base_url)
        self.api_prefix = api_prefix
        self.timeout = timeout

    def client(self) -> HttpClient:
        return HttpClient(self.base_url, self.timeout)

    def check(self) -> None:
        """Ask the suggest endpoint once (it records nothing).

        Raises:
            ServerUnreachable: When nothing answers, or no suggestions API does.
        """
        answer = self.client().get(self.api_prefix + "suggest/", {"q": "a", "limit": 1})
        if answer.status == 0:
            raise ServerUnreachable(f"Nothing answered at {self.base_url}: is the server running at {self.base_url}?")
        if answer.status == 404:
            raise ServerUnreachable(
                f"No suggestions API at {urljoin(self.base_url, self.api_prefix.lstrip('/'))} (HTTP 404)."
            )


# -- plans, stats, shoppers -----------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSearch:
    """One search a shopper means to make: what it wants and what it will type."""

    intended: str
    keystrokes: tuple[str, ...]
    repeat: bool = False
    typo: bool = False


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a simulation; defaults give ordinary demo traffic.

    Attributes:
        shoppers: Number of shoppers (browsers).
        searches_per_shopper: Average searches per shopper (1 + Poisson).
        seed: Seed of everything random.
        zipf_exponent: Skew of query popularity.
        return_rate: Share of shoppers with 2+ searches who split them over 2–3 visits.
        repeat_rate: Chance that a search after the first repeats an earlier one.
        typo_rate: Chance that a search is typed with one edit.
        typo_fix_rate: Chance that a typo is noticed and corrected with backspaces.
        uses_suggestions_rate: Share of shoppers who look at suggestions at all.
        page_size: Results asked for (the storefront's grid shows 12).
        suggestion_limit: Suggestions asked for (the widget's default, 8).
        concurrency: Shoppers simulated at once (threads).
        duration: Stop after this many seconds (``None``: no limit).
        max_requests: Stop after this many requests (``None``: no limit).
        api_prefix: Where the suggestions API is mounted.
        home_path: Page a visit starts on (it starts a session); ``None`` skips it.
        click_model: How results are clicked.
        suggestion_model: How suggestions are chosen.
    """

    shoppers: int = 100
    searches_per_shopper: float = 3.0
    seed: int = 0
    zipf_exponent: float = 1.0
    return_rate: float = 0.3
    repeat_rate: float = 0.25
    typo_rate: float = 0.1
    typo_fix_rate: float = 0.5
    uses_suggestions_rate: float = 0.85
    page_size: int = 12
    suggestion_limit: int = 8
    concurrency: int = 4
    duration: float | None = None
    max_requests: int | None = None
    api_prefix: str = DEFAULT_API_PREFIX
    home_path: str | None = "/"
    click_model: ClickModel = field(default_factory=ClickModel)
    suggestion_model: SuggestionModel = field(default_factory=SuggestionModel)

    def __post_init__(self) -> None:
        if self.shoppers < 0:
            raise ValueError("shoppers must not be negative.")
        if self.searches_per_shopper < 1:
            raise ValueError("searches_per_shopper must be at least 1.")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1.")
        for name in ("return_rate", "repeat_rate", "typo_rate", "typo_fix_rate", "uses_suggestions_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1.")


@dataclass
class SimulationStats:
    """What a run did. Events are counted when the server accepted them."""

    shoppers: int = 0
    visits: int = 0
    searches: Counter = field(default_factory=Counter)
    impressions: int = 0
    suggestion_clicks: int = 0
    product_clicks: int = 0
    product_clicks_by_grade: Counter = field(default_factory=Counter)
    requests: int = 0
    http_errors: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    stopped_early: bool = False

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def merge(self, other: SimulationStats) -> None:
        """Add another's counts to these (not ``elapsed`` nor ``stopped_early``)."""
        for name in ("shoppers", "visits", "impressions", "suggestion_clicks", "product_clicks", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.searches.update(other.searches)
        self.product_clicks_by_grade.update(other.product_clicks_by_grade)
        self.http_errors.update(other.http_errors)

    def summary_lines(self) -> list[str]:
        """The run's figures, one per line, for people."""
        searches = sum(self.searches.values())
        origins = ", ".join(f"{origin} {n}" for origin, n in sorted(self.searches.items())) or "none"
        grades = ", ".join(
            f"{grade} {n}" for grade, n in sorted(self.product_clicks_by_grade.items(), key=lambda i: str(i[0]))
        )
        errors = ", ".join(f"{status}: {n}" for status, n in sorted(self.http_errors.items(), key=lambda i: str(i[0])))
        lines = [
            f"shoppers: {self.shoppers} ({self.visits} visits)",
            f"searches: {searches} ({origins})",
            f"impressions: {self.impressions}",
            f"suggestion clicks: {self.suggestion_clicks}",
            f"product clicks: {self.product_clicks}" + (f" (by grade: {grades})" if grades else ""),
            f"HTTP errors: {sum(self.http_errors.values())}" + (f" ({errors})" if errors else ""),
            f"requests: {self.requests} in {self.elapsed:.1f}s ({self.requests_per_second:.1f}/s)",
        ]
        if self.stopped_early:
            lines.append("stopped early: the duration or request limit was reached")
        return lines


class _Budget:
    """Requests left and the deadline, shared by all shoppers."""

    def __init__(self, max_requests: int | None, duration: float | None) -> None:
        self._left = max_requests
        self._deadline = None if duration is None else time.monotonic() + duration
        self._lock = threading.Lock()
        self.exhausted = False

    def take(self) -> bool:
        with self._lock:
            if self.exhausted:
                return False
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.exhausted = True
                return False
            if self._left is not None:
                if self._left <= 0:
                    self.exhausted = True
                    return False
                self._left -= 1
            return True


class _Stop(Exception):
    """The budget ran out in the middle of a visit."""


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


class Shopper:
    """One simulated shopper: a plan made up front, decisions made on the answers.

    Args:
        index: Number of the shopper in its simulation.
        config: The simulation's parameters.
        popularity: ``(query, share)`` pairs from :func:`zipf_popularity`.
        judgments: Grades by query, then by product id as the search API returns it.
    """

    def __init__(
        self,
        index: int,
        config: SimulationConfig,
        popularity: Sequence[tuple[str, float]],
        judgments: Mapping[str, Mapping[str, int]],
    ) -> None:
        self.index = index
        self.config = config
        self.judgments = judgments
        plan_rng = random.Random(f"{config.seed}:plan:{index}")
        self.rng = random.Random(f"{config.seed}:act:{index}")
        self.uses_suggestions = plan_rng.random() < config.uses_suggestions_rate
        self.visits = self._plan(plan_rng, popularity)
        self.trace: list[tuple[Any, ...]] = []
        self.client: Client | None = None

    def _plan(self, rng: random.Random, popularity: Sequence[tuple[str, float]]) -> list[list[PlannedSearch]]:
        config = self.config
        queries = [q for q, _ in popularity]
        cumulative, total = [], 0.0
        for _, share in popularity:
            total += share
            cumulative.append(total)
        count = 1 + _poisson(rng, config.searches_per_shopper - 1)
        searches: list[PlannedSearch] = []
        for _ in range(count):
            earlier = [s.intended for s in searches]
            repeat = bool(earlier) and rng.random() < config.repeat_rate
            if repeat:
                intended = rng.choice(earlier)
            else:
                intended = rng.choices(queries, cum_weights=cumulative)[0]
                if earlier and intended == earlier[-1]:  # nobody searches the same thing twice running
                    intended = rng.choices(queries, cum_weights=cumulative)[0]
            typo = make_typo(intended, rng) if rng.random() < config.typo_rate else None
            fix_after = rng.randint(0, 2) if typo and rng.random() < config.typo_fix_rate else None
            keystrokes = tuple(plan_keystrokes(intended, typo, fix_after))
            searches.append(PlannedSearch(intended, keystrokes, repeat=repeat, typo=typo is not None))
        visits = 1
        if count >= 2 and rng.random() < config.return_rate:
            visits = rng.randint(2, min(3, count))
        cuts = sorted(rng.sample(range(1, count), visits - 1)) if visits > 1 else []
        bounds = [0, *cuts, count]
        return [searches[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    @property
    def planned_searches(self) -> int:
        return sum(len(visit) for visit in self.visits)

    def run_visit(
        self,
        number: int,
        transport: Transport,
        budget: _Budget,
        on_search: Callable[[], None] | None = None,
    ) -> SimulationStats:
        """Make the planned searches of visit ``number`` (0-based).

        Returns:
            What this visit did; it ends early (``stopped_early``) when the budget runs out.
        """
        stats = SimulationStats()
        if self.client is None:
            self.client = transport.client()
            stats.shoppers = 1
        stats.visits = 1
        try:
            if self.config.home_path is not None:
                self._request(stats, budget, "get", self.config.home_path)
            for planned in self.visits[number]:
                self._search(planned, stats, budget)
                if on_search is not None:
                    on_search()
        except _Stop:
            stats.stopped_early = True
        return stats

    # -- one search ------------------------------------------------------------------------

    def _request(self, stats: SimulationStats, budget: _Budget, method: str, path: str, payload: Any = None) -> Answer:
        if not budget.take():
            raise _Stop
        stats.requests += 1
        assert self.client is not None
        answer = self.client.get(path, payload) if method == "get" else self.client.post_json(path, payload)
        if not answer.ok:
            stats.http_errors["connection" if answer.status == 0 else answer.status] += 1
        return answer

    def _api(self, name: str) -> str:
        return self.config.api_prefix + name

    def _send_events(
        self, events: list[dict[str, Any]], stats: SimulationStats, budget: _Budget, grade: int | str | None = None
    ) -> None:
        # ``grade``: of the clicked product, when ``events`` is one product click.
        for start in range(0, len(events), EVENTS_PER_POST):
            chunk = events[start : start + EVENTS_PER_POST]
            if self._request(stats, budget, "post", self._api("events/"), {"events": chunk}).ok:
                for event in chunk:
                    if event["type"] == "impression":
                        stats.impressions += 1
                    elif event["type"] == "suggestion_click":
                        stats.suggestion_clicks += 1
                    else:
                        stats.product_clicks += 1
                        stats.product_clicks_by_grade[grade] += 1

    def _search(self, planned: PlannedSearch, stats: SimulationStats, budget: _Budget) -> None:
        config, rng = self.config, self.rng
        events: list[dict[str, Any]] = []
        text, origin = planned.keystrokes[-1], "typed"
        try:
            for typed in planned.keystrokes:
                if not typed.strip():  # the widget asks from the first non-blank character
                    continue
                self.trace.append(("suggest", typed))
                answer = self._request(
                    stats, budget, "get", self._api("suggest/"), {"q": typed, "limit": config.suggestion_limit}
                )
                items = _suggestions(answer)
                if not items:
                    continue
                request_id = str(answer.data.get("request_id") or "")
                shown = [item["text"] for item in items]
                if request_id:
                    events.append({"type": "impression", "request_id": request_id, "prefix": typed, "suggestions": shown})
                if not self.uses_suggestions:
                    continue
                position = choose_suggestion(config.suggestion_model, shown, planned.intended, len(typed), rng)
                if position is None:
                    continue
                text = shown[position]
                origin = "history" if items[position].get("kind") == "recent" else "suggestion"
                self.trace.append(("suggestion_click", typed, text, position))
                if request_id:
                    events.append({
                        "type": "suggestion_click",
                        "request_id": request_id,
                        "prefix": typed,
                        "suggestion": text,
                        "position": position,
                    })
                break
        finally:
            # Sent on submit as the widget does (and when the budget ran out mid-typing).
            if events:
                try:
                    self._send_events(events, stats, budget)
                except _Stop:
                    pass

        self.trace.append(("search", text, origin))
        answer = self._request(
            stats, budget, "get", self._api("search/"), {"q": text, "origin": origin, "page_size": config.page_size}
        )
        if not answer.ok:
            return
        stats.searches[origin] += 1
        data = answer.data if isinstance(answer.data, dict) else {}
        results = [r for r in data.get("results") or [] if isinstance(r, dict) and "id" in r]
        grades_of = self.judgments.get(normalize(text)) or self.judgments.get(planned.intended) or {}
        grades = [grades_of.get(str(r["id"])) for r in results]
        clicks = decide_clicks(config.click_model, grades, rng)
        for result, grade, clicked in zip(results, grades, clicks, strict=True):
            if not clicked:
                continue
            position = int(result.get("position", results.index(result)))
            self.trace.append(("product_click", str(result["id"]), position))
            # One beacon per click: each navigates to the product page and back.
            self._send_events(
                [{
                    "type": "product_click",
                    "request_id": str(data.get("request_id") or ""),
                    "query": str(data.get("query") or ""),
                    "product_id": str(result["id"]),
                    "position": position,
                }],
                stats,
                budget,
                grade="unjudged" if grade is None else grade,
            )


def _suggestions(answer: Answer) -> list[dict[str, Any]]:
    """Shown suggestions, recent searches first as the widget lists them."""
    if not answer.ok or not isinstance(answer.data, dict):
        return []
    items = [i for i in answer.data.get("suggestions") or [] if isinstance(i, dict) and i.get("text")]
    return [i for i in items if i.get("kind") == "recent"] + [i for i in items if i.get("kind") != "recent"]


# -- the simulation -------------------------------------------------------------------------


class Simulation:
    """Shoppers run against one transport, ``concurrency`` at a time.

    Args:
        config: Parameters.
        judgments: Grades by query, then by product id as the search API
            returns it; its queries are what shoppers search.
        transport: Makes each shopper's client (:class:`HttpTransport` for a server).
    """

    def __init__(
        self,
        config: SimulationConfig,
        judgments: Mapping[str, Mapping[str, int]],
        transport: Transport,
    ) -> None:
        if not judgments:
            raise ValueError("No judged queries to search.")
        self.config = config
        self.judgments = {normalize(q): dict(grades) for q, grades in judgments.items()}
        self.transport = transport
        self.popularity = zipf_popularity(list(self.judgments), exponent=config.zipf_exponent, seed=config.seed)
        self.shoppers = [Shopper(i, config, self.popularity, self.judgments) for i in range(config.shoppers)]

    @property
    def planned_searches(self) -> int:
        return sum(shopper.planned_searches for shopper in self.shoppers)

    def schedule(self) -> list[tuple[int, int]]:
        """``(shopper, visit)`` pairs in the order they start.

        First visits go in shopper order; a returning shopper's next visit
        comes about half the shoppers later, so others search in between.
        """
        gap = max(1, len(self.shoppers) // 2)
        visits = [(s.index, v) for s in self.shoppers for v in range(len(s.visits))]
        return sorted(visits, key=lambda sv: (sv[0] + sv[1] * gap, sv[1], sv[0]))

    def run(self, on_search: Callable[[], None] | None = None) -> SimulationStats:
        """Run every visit (or until the budget runs out).

        Args:
            on_search: Called after each search (a progress bar), from worker threads.

        Returns:
            The run's figures.
        """
        budget = _Budget(self.config.max_requests, self.config.duration)
        total = SimulationStats()
        lock = threading.Lock()
        done = {(s.index, v): threading.Event() for s in self.shoppers for v in range(len(s.visits))}

        def visit(shopper_index: int, number: int) -> None:
            try:
                if number:
                    # Started in schedule order, so the earlier visit is running or done.
                    done[(shopper_index, number - 1)].wait()
                if budget.exhausted:
                    return
                stats = self.shoppers[shopper_index].run_visit(number, self.transport, budget, on_search)
                with lock:
                    total.merge(stats)
            finally:
                done[(shopper_index, number)].set()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="shopper") as pool:
            futures = [pool.submit(visit, s, v) for s, v in self.schedule()]
            for future in futures:
                future.result()
        total.elapsed = time.monotonic() - started
        total.stopped_early = budget.exhausted
        return total

    def traces(self) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
        """Each shopper's actions so far, by shopper: ``("suggest", prefix)``,
        ``("suggestion_click", prefix, text, position)``, ``("search", text, origin)``,
        ``("product_click", product_id, position)``."""
        for shopper in self.shoppers:
            yield shopper.index, list(shopper.trace)
