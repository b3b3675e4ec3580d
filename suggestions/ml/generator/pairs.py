"""Refinement pairs: a query and a narrower one a shopper searched next.

Pure Python (no Django, no torch): the learning loop reads searches from the
database, ``bench/generation`` from the Best Buy log, and both mine pairs here.

* :func:`is_refinement`: ``q2`` refines ``q1`` when it holds every word of
  ``q1`` (plurals folded, any order) and more words, at most
  :data:`MAX_ADDED_WORDS` more; or, given a product-type reader, when both
  name the same product type, ``q2`` keeps ``q1``'s other words and adds
  words (a brand, an attribute).
* :func:`session_refinements`: per shopper, a search followed within
  ``gap_minutes`` by a refinement of it; evidence counts distinct shoppers,
  so the caller applies the k-anonymity gate on it. A search the shopper
  started from a refinement chip (:attr:`Search.chosen`) is never a pair's
  target: the shop offered that text, the shopper only accepted it. Counting
  it would feed the generator's own output back to it as shoppers' evidence
  (a self-reinforcing loop; the chip's click is recorded, and learnt from, as
  a suggestion click instead). It can still be a seed: what the shopper typed
  after it is their own refinement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: Most words a refinement adds to its seed.
MAX_ADDED_WORDS = 3
#: Searches after a search (within the gap) looked at for its refinements.
LOOKAHEAD = 4


@dataclass(frozen=True)
class Search:
    """One search: normalised query, shopper key ("" when not identified), time,
    and whether the shopper chose its text from refinements the shop offered
    (``origin="refinement"``) rather than typing it."""

    query: str
    actor: str
    time: datetime
    chosen: bool = False


@dataclass
class Evidence:
    """How often shoppers refined ``seed`` into ``target``."""

    shoppers: set[str] = field(default_factory=set)
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, actor: str, when: datetime) -> None:
        self.count += 1
        if actor:
            self.shoppers.add(actor)
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


@dataclass(frozen=True)
class Pair:
    """A training pair: ``seed`` → ``target``, where it came from and its weight."""

    seed: str
    target: str
    source: str  # "history", "catalog" or "approved"
    weight: float = 1.0
    shoppers: int = 0


def fold(word: str) -> str:
    """A word with its plural ending removed ("shoes" → "shoe", "boxes" → "box")."""
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def word_key(text: str) -> str:
    """Order- and plural-insensitive key of a text: near-duplicates share it."""
    return " ".join(sorted(fold(w) for w in text.split()))


def is_refinement(seed: str, target: str, product_type: Callable[[str], str] | None = None) -> bool:
    """Whether ``target`` is a narrower search than ``seed`` (see the module docstring)."""
    if not seed or not target or seed == target:
        return False
    a, b = [fold(w) for w in seed.split()], [fold(w) for w in target.split()]
    if len(b) <= len(a) or len(b) - len(a) > MAX_ADDED_WORDS:
        return False
    if set(a) <= set(b):
        return True
    if product_type is not None:
        kind = product_type(seed)
        if not kind or kind != product_type(target):
            return False
        # The same product type (however spelt), with the seed's other words kept.
        return set(a) - {fold(w) for w in kind.split()} <= set(b)
    return False


def session_refinements(searches: Iterable[Search], *, gap_minutes: float = 30.0,
                        product_type: Callable[[str], str] | None = None) -> dict[tuple[str, str], Evidence]:
    """Refinement pairs of every shopper's sessions, with their evidence.

    Args:
        searches: Normalised searches; those without an actor are skipped (no
            session can be told apart). A chosen search (a refinement chip)
            is a seed but never a target.
        gap_minutes: A later search counts when it follows within this many
            minutes.
        product_type: Optional reader of a query's product type (see
            :func:`is_refinement`).

    Returns:
        ``(seed, target)`` → :class:`Evidence` (distinct shoppers, count, times).
    """
    by_actor: dict[str, list[Search]] = defaultdict(list)
    for s in searches:
        if s.actor and s.query:
            by_actor[s.actor].append(s)
    gap = timedelta(minutes=gap_minutes)
    out: dict[tuple[str, str], Evidence] = defaultdict(Evidence)
    for actor, rows in by_actor.items():
        rows.sort(key=lambda s: s.time)
        for i, first in enumerate(rows):
            seen: set[str] = set()
            for later in rows[i + 1:i + 1 + LOOKAHEAD]:
                if later.time - first.time > gap:
                    break
                if later.query in seen:
                    continue
                seen.add(later.query)
                if later.chosen:  # offered by the shop, not the shopper's own refinement
                    continue
                if is_refinement(first.query, later.query, product_type):
                    out[(first.query, later.query)].add(actor, later.time)
    return dict(out)


def gated_pairs(evidence: dict[tuple[str, str], Evidence], *, min_shoppers: int,
                allowed: Callable[[str], bool] = lambda text: True) -> list[Pair]:
    """History pairs refined by at least ``min_shoppers`` distinct shoppers
    whose texts pass ``allowed`` (the privacy filter), heaviest first."""
    out = [Pair(seed, target, "history", weight=float(len(ev.shoppers)), shoppers=len(ev.shoppers))
           for (seed, target), ev in evidence.items()
           if len(ev.shoppers) >= min_shoppers and allowed(seed) and allowed(target)]
    out.sort(key=lambda p: (-p.weight, p.seed, p.target))
    return out


def catalog_phrase_pairs(phrases: dict[str, str]) -> list[Pair]:
    """Catalog pairs from mined catalog phrases (text → rule): product type →
    brand + type and attribute + type (the longest product type a
    ``brand_type`` / ``type_attribute`` phrase ends with)."""
    types = {t for t, rule in phrases.items() if rule == "product_type"}
    out: dict[tuple[str, str], Pair] = {}
    for text, rule in phrases.items():
        if rule not in ("brand_type", "type_attribute"):
            continue
        words = text.split()
        for n in range(1, len(words)):
            seed = " ".join(words[n:])
            if seed in types:
                out[(seed, text)] = Pair(seed, text, "catalog")
                break
    return sorted(out.values(), key=lambda p: (p.seed, p.target))


def title_pairs(titles: Iterable[str], seeds: Iterable[str]) -> list[Pair]:
    """Catalog pairs from product titles: a seed phrase (a catalog phrase, a
    gated query) found in a normalised title, as whole words → the seed and
    the title's next one to :data:`MAX_ADDED_WORDS` words ("dance central" →
    "dance central 2"; "modern warfare 3" → "modern warfare 3 hardened")."""
    seeds = set(seeds)
    longest = max((len(s.split()) for s in seeds), default=0)
    out: dict[tuple[str, str], Pair] = {}
    for title in titles:
        words = title.split()
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + longest) + 1):
                seed = " ".join(words[i:j])
                if seed not in seeds:
                    continue
                for m in range(1, MAX_ADDED_WORDS + 1):
                    if j + m <= len(words):
                        target = " ".join(words[i:j + m])
                        out.setdefault((seed, target), Pair(seed, target, "catalog"))
    return sorted(out.values(), key=lambda p: (p.seed, p.target))
