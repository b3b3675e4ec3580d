"""Synthetic but shop-like search events for the analytics benchmark and the
analytics page's screenshot.

* Queries: brand, product type and attribute combinations of an electronics
  shop, drawn from a Zipf distribution (a few queries make most searches); 3%
  of searches carry a typo, most of which find nothing.
* Sessions: a shopper (one of ``shoppers``) types a query: a suggestion list
  is shown for some of the prefixes typed (1 to 4 lists), the shopper chooses
  a suggestion in about a third of searches (positions near the top far more
  often), submits the search, and clicks a result in about half of them.
* Time: spread over ``days`` days ending today, more on weekends, growing a
  little day by day, busier in the evening.

Written with ``executemany`` in batches (``bulk_create`` spends most of its
time compiling SQL: ten times slower here); deterministic for a seed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import numpy as np

BRANDS = ["hp", "dell", "lenovo", "apple", "samsung", "logitech", "sony", "anker", "canon", "brother", "asus", "acer",
          "microsoft", "bose", "jbl", "sandisk", "kingston", "startech", "belkin", "epson"]
TYPES = ["laptop", "monitor", "mouse", "keyboard", "usb c cable", "hdmi cable", "ssd", "headphones", "webcam",
         "printer", "toner", "ink cartridge", "charger", "docking station", "tablet", "phone case", "speaker", "router",
         "memory card", "power bank"]
ATTRIBUTES = ["wireless", "27 inch", "1tb", "black", "gaming", "portable", "2m", "usb c", "bluetooth", "4k"]


def vocabulary(rng: np.random.Generator) -> list[str]:
    """Every query of the shop, most popular first (a seeded order)."""
    queries = list(TYPES)
    queries += [f"{b} {t}" for b in BRANDS for t in TYPES]
    queries += [f"{a} {t}" for a in ATTRIBUTES for t in TYPES]
    queries += [f"{b} {a} {t}" for b in BRANDS for a in ATTRIBUTES for t in TYPES]
    head, tail = queries[: len(TYPES)], queries[len(TYPES):]
    order = rng.permutation(len(tail))
    return head + [tail[i] for i in order]


def typo(text: str, rng: np.random.Generator) -> str:
    if len(text) < 4:
        return text + text[-1]
    i = int(rng.integers(1, len(text) - 2))
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


class _Writer:
    """Inserts rows of database-ready values into one model's table; the
    model's other fields get their defaults (a field added later needs no
    change here)."""

    def __init__(self, model, columns: list[str]) -> None:
        from django.db import connection

        quote = connection.ops.quote_name
        fields = [model._meta.get_field(c) for c in columns]
        others = [f for f in model._meta.concrete_fields if f not in fields and not f.primary_key]
        self.defaults = tuple(f.get_db_prep_save(f.get_default(), connection) for f in others)
        names = [f.column for f in fields + others]
        self.sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(n) for n in names)}) "
                    f"VALUES ({', '.join(['%s'] * len(names))})")

    def write(self, rows: list[tuple]) -> None:
        from django.db import connection, transaction

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(self.sql, [row + self.defaults for row in rows])


@dataclass(frozen=True)
class Generated:
    searches: int
    impressions: int
    suggestion_clicks: int
    product_clicks: int

    @property
    def events(self) -> int:
        return self.searches + self.impressions + self.suggestion_clicks + self.product_clicks


def generate(events: int, *, days: int = 30, shoppers: int = 20_000, seed: int = 7, batch_size: int = 20_000,
             progress: Callable[[int], None] | None = None) -> Generated:
    """Write about ``events`` events (searches, lists shown, suggestion and result clicks).

    Args:
        events: How many events to write (stops at the first session past it).
        days: Days of history, ending today (project time zone).
        shoppers: Distinct shoppers.
        seed: Seed of the generator.
        batch_size: Rows per ``bulk_create``.
        progress: Called with the number of events written so far.
    """
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.utils import timezone

    from suggestions.adapter import get_adapter
    from suggestions.models import ProductClick, SearchEvent, SuggestionClick, SuggestionImpression
    from suggestions.text import hash_identifier

    rng = np.random.default_rng(seed)
    queries = vocabulary(rng)
    weights = 1.0 / np.arange(1, len(queries) + 1) ** 1.07
    weights /= weights.sum()
    actors = [hash_identifier(f"session:bench-{i}", "bench") for i in range(shoppers)]
    product_type = ContentType.objects.get_for_model(get_adapter().get_model())
    today = timezone.localdate()
    # Sessions per day: weekends busier, a slow growth; evenings busier.
    day_weight = np.array([(1.25 if (today - timedelta(days=d)).weekday() >= 5 else 1.0) * (1 - 0.004 * d)
                           for d in range(days)])
    day_weight /= day_weight.sum()
    hour_weight = np.array([0.3] * 7 + [0.8] * 5 + [1.0] * 6 + [1.6] * 4 + [0.8] * 2)
    hour_weight /= hour_weight.sum()
    midnights = [timezone.make_aware(datetime.combine(today - timedelta(days=d), time.min)) for d in range(days)]

    writers = {model: _Writer(model, columns) for model, columns in (
        (SearchEvent, ["created_at", "query", "normalized_query", "results_count", "origin", "request_id",
                       "actor_hash", "identified", "filters"]),
        (SuggestionImpression, ["created_at", "request_id", "prefix", "suggestions", "actor_hash"]),
        (SuggestionClick, ["created_at", "request_id", "prefix", "suggestion", "position", "actor_hash"]),
        (ProductClick, ["created_at", "request_id", "query", "content_type", "object_id", "position", "actor_hash"]),
    )}
    rows: dict[type, list] = {model: [] for model in writers}
    counts = dict.fromkeys(rows, 0)
    written = 0
    ops, native_uuid = connection.ops, connection.features.has_native_uuid_field
    empty = ops.adapt_json_value({}, None)

    def flush(force: bool = False) -> None:
        nonlocal written
        for model, batch in rows.items():
            if batch and (force or len(batch) >= batch_size):
                writers[model].write(batch)
                written += len(batch)
                counts[model] += len(batch)
                batch.clear()
                if progress:
                    progress(written)

    made = 0
    block = 4096  # random draws are made in blocks (numpy is fast per block, slow per call)
    while made < events:
        picks = rng.choice(len(queries), size=block, p=weights)
        day_back = rng.choice(days, size=block, p=day_weight)
        hours = rng.choice(24, size=block, p=hour_weight)
        seconds = rng.integers(0, 3600, size=block)
        who = rng.integers(0, shoppers, size=block)
        u = rng.random((block, 6))
        lists = rng.integers(1, 5, size=block)
        for i in range(block):
            if made >= events:
                break
            query = queries[picks[i]]
            misspelt = u[i, 0] < 0.03
            if misspelt:
                query = typo(query, rng)
            when = ops.adapt_datetimefield_value(
                midnights[int(day_back[i])] + timedelta(hours=int(hours[i]), seconds=int(seconds[i])))
            actor = actors[who[i]]
            rid = uuid.uuid4() if native_uuid else uuid.uuid4().hex
            chosen = not misspelt and u[i, 1] < 0.34
            position = min(int(rng.geometric(0.55)) - 1, 7) if chosen else 0
            typed = 1
            for n in range(int(lists[i])):
                typed = min(len(query), n + 1 + (n > 1))
                # Longer prefixes have fewer completions; nothing completes a typo.
                size = 0 if misspelt and typed > 3 else max(2, 8 - max(0, typed - 2))
                shown = [queries[j] for j in range(9) if queries[j] != query][:size]
                if chosen and n == int(lists[i]) - 1:
                    shown.insert(min(position, len(shown)), query)
                    position = shown.index(query)
                rows[SuggestionImpression].append(
                    (when, rid, query[:typed], ops.adapt_json_value(shown[:8], None), actor))
                made += 1
            if chosen:
                rows[SuggestionClick].append((when, rid, query[:typed], query, position, actor))
                made += 1
            zero = (u[i, 2] < 0.85) if misspelt else (u[i, 2] < 0.03)
            rows[SearchEvent].append((
                when, query, query, 0 if zero else int(5 + 200 * u[i, 3]),
                "suggestion" if chosen else ("history" if u[i, 4] < 0.05 else "typed"),
                uuid.uuid4() if native_uuid else uuid.uuid4().hex, actor, True, empty))
            made += 1
            if not zero and u[i, 5] < 0.48:
                rows[ProductClick].append((when, rid, query, product_type.pk, str(int(picks[i]) % 437),
                                           min(int(rng.geometric(0.4)) - 1, 19), actor))
                made += 1
        flush()
    flush(force=True)
    return Generated(counts[SearchEvent], counts[SuggestionImpression], counts[SuggestionClick], counts[ProductClick])
