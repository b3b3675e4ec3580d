"""Phrase memory: what the training data says a phrase is, as a model input feature.

A fine-tuned encoder learns frequent brands and product types, but in a few
epochs it half-forgets the phrases it saw once or twice, and it knows nothing
of the catalog's brands that no training query mentions. The phrase memory is
the dictionary tagger of :mod:`suggestions.ml.understanding.dictionary` fitted on the
training examples (public data, the catalog's distant examples, merchandisers'
corrections): its BIO tag for each word is embedded and added to the word's
sub-token embeddings, so the encoder reads "this phrase was labelled *brand*
elsewhere" together with the words themselves (a gazetteer feature, as in
gazetteer-enhanced NER for short, low-context queries).

The memory must be as reliable on training queries as it will be on unseen
ones, or the model learns to trust it blindly: a query's training-time
features come from a memory fitted on the *other* folds only
(:func:`jackknife_tags`). The memory saved with the model, used at inference,
is fitted on all training examples.

Pure Python (no torch), so tests and tools can use it anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .dictionary import DictionaryTagger

#: File name of the memory inside a saved model folder.
PHRASES_FILE = "phrases.json"


class PhraseMemory:
    """A :class:`DictionaryTagger` over model words, serialisable to JSON.

    Args:
        min_count: Phrases labelled fewer times than this are not remembered.
    """

    def __init__(self, *, min_count: int = 1) -> None:
        self.tagger = DictionaryTagger(min_count=min_count)

    def __len__(self) -> int:
        return len(self.tagger.phrases)

    def fit(self, examples: Sequence[tuple[Sequence[str], Sequence[str]]]) -> PhraseMemory:
        """Learn from ``(word texts, BIO tags)`` pairs."""
        self.tagger.fit(examples)
        return self

    def tags(self, words: Sequence[str]) -> list[str]:
        """BIO tags of ``words`` (leftmost-longest remembered phrases, else ``O``)."""
        if not self.tagger.phrases:
            return ["O"] * len(words)
        return self.tagger.predict(words)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "min_count": self.tagger.min_count,
            "lowercase": self.tagger.lowercase,
            "phrases": [[list(key), label] for key, label in sorted(self.tagger.phrases.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhraseMemory:
        """Rebuild a memory written by :meth:`to_json`.

        Raises:
            ValueError: not a phrase memory of a known format.
        """
        if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("phrases"), list):
            raise ValueError("not a phrase memory (format 1)")
        memory = cls(min_count=int(data.get("min_count", 1)))
        memory.tagger.lowercase = bool(data.get("lowercase", True))
        memory.tagger.phrases = {tuple(str(t) for t in key): str(label) for key, label in data["phrases"]}
        memory.tagger.max_len = max((len(k) for k in memory.tagger.phrases), default=0)
        return memory


def fold_of(key: str, folds: int) -> int:
    """Stable fold of an example key (duplicates of a query share their fold)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big") % folds


def jackknife_tags(
    words: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str] | None],
    keys: Sequence[str],
    *,
    folds: int = 5,
    min_count: int = 1,
) -> tuple[list[list[str]], PhraseMemory]:
    """Phrase-memory tags for training examples, each from a memory that never saw it.

    Args:
        words: Per example, its word texts.
        tags: Per example, its gold BIO tags, or None (no entity supervision:
            it teaches the memory nothing and is tagged by the full memory).
        keys: Per example, the key that assigns its fold (the normalised
            query, so repeated queries fall in one fold).
        folds: Number of folds (≥ 2).
        min_count: See :class:`PhraseMemory`.

    Returns:
        The per-example feature tags, and the memory fitted on all labelled
        examples (the one to save with the model).
    """
    if folds < 2:
        raise ValueError("jackknife needs at least 2 folds")
    if not (len(words) == len(tags) == len(keys)):
        raise ValueError("words, tags and keys must have one entry per example")
    fold = [fold_of(k, folds) for k in keys]
    labelled = [i for i, t in enumerate(tags) if t is not None]
    full = PhraseMemory(min_count=min_count).fit([(words[i], tags[i]) for i in labelled])  # type: ignore[misc]
    out: list[list[str]] = [[] for _ in words]
    for f in range(folds):
        members = [i for i in range(len(words)) if fold[i] == f]
        if not members:
            continue
        memory = PhraseMemory(min_count=min_count).fit(
            [(words[i], tags[i]) for i in labelled if fold[i] != f])  # type: ignore[misc]
        for i in members:
            out[i] = (memory if tags[i] is not None else full).tags(words[i])
    return out, full
