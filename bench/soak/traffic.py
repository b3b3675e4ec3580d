"""Mixed shopper traffic over HTTP, shared by ``tests/test_faults.py`` and ``python -m bench.soak``.

Contract:

* A :class:`Shopper` plays one visit at a time against a running server:
  it types a query (``suggest/`` for each of its first prefixes), reports the
  list it was shown and the suggestion it chose (``events/``), searches
  (``search/``) and reports a click on a result it got (``events/``, with a
  product id from that answer, never a made-up one). It keeps its cookies, as
  a browser does, and sends no CSRF token (anonymous shoppers need none).
* Every request becomes one :class:`Answer`: when it started and ended
  (``time.monotonic()``), its status (``None`` when no HTTP answer came:
  refused or reset connection, timeout), whether the body said
  ``"degraded": true``, and for ``events/`` how many events of each type the
  batch carried.
* :func:`event_totals` adds up the events the server accepted (202) and the
  ones sent without an answer (they may or may not be stored); with the rows
  counted in the database, that tells whether any accepted event was lost.
"""

from __future__ import annotations

import http.cookiejar
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

API = "/api/suggestions/"

#: What shoppers type: short queries a small electronics catalog answers.
QUERIES = (
    "usb cable", "laptop", "hp toner", "monitor 27", "wireless mouse", "keyboard", "ssd 1tb",
    "printer", "headphones", "webcam", "hdmi cable", "laptop bag", "router", "tablet",
)

#: Event model of each event type: one row per accepted event.
EVENT_MODELS = {
    "impression": "SuggestionImpression",
    "suggestion_click": "SuggestionClick",
    "product_click": "ProductClick",
}


@dataclass
class Answer:
    """One request and what came back."""

    kind: str
    started: float
    ended: float
    status: int | None
    degraded: bool | None = None
    events: Counter = field(default_factory=Counter)
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Shopper:
    """One anonymous shopper with its own cookies (see the module contract).

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        seed: Seed of the shopper's choices.
        timeout: Seconds to wait for one answer.
        record: Called with every :class:`Answer`.
    """

    def __init__(self, base_url: str, *, seed: int, timeout: float = 10.0,
                 record: Callable[[Answer], None], pace: Callable[[], None] | None = None) -> None:
        self.base = base_url.rstrip("/") + API
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.record = record
        self.pace = pace
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def _request(self, kind: str, path: str, *, body: dict | None = None,
                 events: Counter | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method="POST" if body is not None else "GET")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.pace is not None:
            self.pace()
        started = time.monotonic()
        status, payload, error = None, None, ""
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, ValueError) as exc:  # refused, reset, timed out: no HTTP answer
            raw, error = b"", f"{type(exc).__name__}: {exc}"
        ended = time.monotonic()
        if status is not None:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
        degraded = payload.get("degraded") if isinstance(payload, dict) else None
        self.record(Answer(kind, started, ended, status, degraded, events or Counter(), error))
        return payload if status is not None and 200 <= status < 300 else None

    def visit(self) -> None:
        """One visit: type, choose a suggestion, search, click a result."""
        query = self.rng.choice(QUERIES)
        shown = None
        for length in range(1, min(len(query), 3) + 1):
            shown = self._request("suggest", "suggest/?" + urllib.parse.urlencode({"q": query[:length]})) or shown
        if shown is not None:
            prefix = shown.get("query") or query[:3]
            texts = [s["text"] for s in shown.get("suggestions", [])][:10]
            batch = [{"type": "impression", "request_id": shown["request_id"], "prefix": prefix,
                      "suggestions": texts}]
            if texts:
                batch.append({"type": "suggestion_click", "request_id": shown["request_id"], "prefix": prefix,
                              "suggestion": texts[0], "position": 0})
            self._post_events(batch)
        page = self._request("search", "search/?" + urllib.parse.urlencode({"q": query}))
        if page is not None and page.get("results"):
            hit = self.rng.choice(page["results"])
            self._post_events([{"type": "product_click", "request_id": page["request_id"], "query": query,
                                "product_id": hit["id"], "position": hit["position"]}])

    def _post_events(self, batch: list[dict]) -> None:
        self._request("events", "events/", body={"events": batch},
                      events=Counter(event["type"] for event in batch))


class AnswerLog(list):
    """The :class:`Answer` list that many shopper threads record into."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def record(self, answer: Answer) -> None:
        """Append ``answer`` (thread-safe): pass this as ``record``."""
        with self._lock:
            self.append(answer)


def run_shoppers(base_url: str, *, threads: int, stop: threading.Event, record: Callable[[Answer], None],
                 seed: int = 1, pace: Callable[[], None] | None = None) -> list[threading.Thread]:
    """Start ``threads`` threads, each a stream of shoppers visiting until ``stop`` is set.

    Args:
        base_url: The server.
        threads: Concurrent shoppers.
        stop: Set it to end the traffic (each thread finishes its request).
        record: Called with every :class:`Answer` (must be thread-safe).
        seed: Seed of the first shopper; each new shopper takes the next.
        pace: Called before every request (e.g. a :class:`Pacer`); ``None``: as fast as answered.

    Returns:
        The started threads; join them after setting ``stop``.
    """
    counter = iter(range(10**9))
    lock = threading.Lock()

    def loop() -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            Shopper(base_url, seed=seed + n, record=record, pace=pace).visit()

    started = []
    for n in range(threads):
        thread = threading.Thread(target=loop, name=f"shopper-{n}", daemon=True)
        thread.start()
        started.append(thread)
    return started


class Pacer:
    """Spaces requests of all threads ``1 / rate`` seconds apart (an open-loop rate).

    Calling it blocks until the caller's slot. A server that falls behind
    makes the threads wait on answers, so the rate becomes a ceiling; slots
    missed while waiting are not made up in a burst afterwards.

    Args:
        rate: Requests per second over all threads.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            now = time.monotonic()
            self.next = max(self.next + self.interval, now - 10 * self.interval)
            slot = self.next
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def event_totals(answers: Iterable[Answer]) -> tuple[Counter, Counter]:
    """(events accepted with a 202, events sent without an HTTP answer), by type."""
    accepted, unanswered = Counter(), Counter()
    for answer in answers:
        if answer.kind != "events":
            continue
        if answer.status == 202:
            accepted.update(answer.events)
        elif answer.status is None:
            unanswered.update(answer.events)
    return accepted, unanswered


def p99_ms(answers: Sequence[Answer]) -> float | None:
    """99th percentile latency in milliseconds (nearest rank), ``None`` for no answers."""
    if not answers:
        return None
    seconds = sorted(a.seconds for a in answers)
    return 1000.0 * seconds[min(len(seconds) - 1, max(0, int(0.99 * len(seconds) + 0.5) - 1))]
