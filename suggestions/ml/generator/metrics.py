"""Refinement Hit@k: whether the query a shopper refined into is among the
first k refinements offered for the query they started from. Texts match
as searches do: the same words in any order, plurals folded
(:func:`~.pairs.word_key`): "toner cartridge black" is "black toner cartridges"."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .pairs import word_key


def hit_units(propose: Callable[[list[str]], list[list[str]]], pairs: Sequence[tuple[str, str]],
              ks: Sequence[int] = (10, 5)) -> list[list[float]]:
    """One row per held-out ``(seed, target)`` pair: 1.0 / 0.0 per ``k`` of ``ks``.

    ``propose`` takes the distinct seeds and returns each one's ranked refinements.
    """
    seeds = sorted({seed for seed, _t in pairs})
    offered = dict(zip(seeds, propose(seeds), strict=True))
    keys = {seed: [word_key(t) for t in texts] for seed, texts in offered.items()}
    return [[1.0 if word_key(target) in keys[seed][:k] else 0.0 for k in ks] for seed, target in pairs]


def merged(first: Sequence[str], then: Sequence[str], k: int = 10) -> list[str]:
    """``first`` then ``then`` without repeats, at most ``k`` (the served list:
    mined refinements, then generated ones)."""
    out: list[str] = []
    for text in list(first) + list(then):
        if text not in out:
            out.append(text)
        if len(out) == k:
            break
    return out
