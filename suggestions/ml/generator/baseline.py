"""The co-occurrence baseline: the refinements of a query that shoppers
searched most after it in the training part (no model)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .pairs import Pair


class CooccurrenceBaseline:
    """Per seed, its training targets by weight (distinct shoppers), heaviest first."""

    def __init__(self, pairs: Iterable[Pair]):
        weights: dict[str, dict[str, float]] = defaultdict(dict)
        for pair in pairs:
            if pair.source == "history":
                weights[pair.seed][pair.target] = weights[pair.seed].get(pair.target, 0.0) + pair.weight
        self.table = {seed: [t for t, _w in sorted(targets.items(), key=lambda kv: (-kv[1], kv[0]))]
                      for seed, targets in weights.items()}

    def propose(self, seed: str, k: int = 10) -> list[str]:
        return self.table.get(seed, [])[:k]
