"""The understanding model's training data: sources, the held-out split, weak intents.

Pure Python (no torch, no database). The public corpora and the composed intent queries
are read here; the shop's own data (the ``catalog``, ``behaviour`` and ``corrections``
sources, read from the database) is loaded by :mod:`suggestions.learning` and handed to
:func:`assemble` as loaders, so that the benchmark assembles public data with the very
same code and no database.

Contracts of :func:`assemble`:

* Sources are read in the order given, and their examples keep that order.
* A merchandiser's correction replaces every other example of the same normalised
  query; distant sources (``catalog``, ``behaviour``, ``templates``) keep the first
  example of a repeated query.
* Held-out split: deterministic by a hash of the normalised query
  (:data:`HELDOUT_PERCENT` of each source by default), so the same query is on the same
  side in every run; examples with ``heldout_ok=False`` (``corrected`` labels) always
  train.
* Every example gets a (weak) intent unless it is a correction without one
  (:func:`~suggestions.ml.understanding.weak_labels.weak_intent`), and its model words.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .corpora import PUBLIC_FILES, Example, jie2019_examples, queryner_examples, resolve_data_dir
from .weak_labels import template_examples, weak_intent
from .words import model_words

ALL_SOURCES = ("queryner", "jie2019", "catalog", "behaviour", "corrections", "templates")
PUBLIC_SOURCES = ("queryner", "jie2019")
#: Sources read from the shop's database (:mod:`suggestions.learning`).
SHOP_SOURCES = ("catalog", "behaviour", "corrections")

#: Share of the non-correction examples held out for evaluation, in percent.
HELDOUT_PERCENT = 10

_READERS: dict[str, Callable[..., list[Example]]] = {
    "queryner": queryner_examples,
    "jie2019": jie2019_examples,
}


@dataclass
class TrainingData:
    """Assembled examples and what they came from.

    Attributes:
        train: training examples.
        heldout: held-out examples (evaluation, the promotion gate).
        counts: per source, ``{"train": n, "heldout": n}``.
        window_start: first event of the shop's data the examples came from (set by
            :mod:`suggestions.learning`), or None.
        window_end: last such event, or None.
        dev: the public dev sets by source (reporting only, never trained on).
    """

    train: list[Example]
    heldout: list[Example]
    counts: dict[str, dict[str, int]]
    window_start: datetime | None = None
    window_end: datetime | None = None
    dev: dict[str, list[Example]] = field(default_factory=dict)


def heldout_bucket(key: str) -> int:
    """Stable bucket 0..99 of a normalised query (same side of the split in every run)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % 100


def assemble(
    sources: Sequence[str],
    *,
    entity_labels: Sequence[str],
    intents: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    max_train: int | None = None,
    seed: int = 13,
    heldout_percent: int = HELDOUT_PERCENT,
    with_dev: bool = True,
    gazetteer: Any = None,
    shop_sources: Mapping[str, Callable[[], list[Example]]] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainingData:
    """Collect the examples of the named sources, split them, attach weak intents.

    Args:
        sources: Names from :data:`ALL_SOURCES`.
        entity_labels: The shop's entity labels.
        intents: The shop's intents.
        data_dir: Shared data folder (public sources); see
            :func:`~suggestions.ml.understanding.corpora.resolve_data_dir`.
        max_train: Cap on the training examples of each non-correction source.
        seed: Seed of the sampling under ``max_train``.
        heldout_percent: Share of each source held out.
        with_dev: Also load the public dev sets (for reporting only).
        gazetteer: Gazetteer of the rules' weak intents (default: the built-in lists).
        shop_sources: Loaders of the sources of :data:`SHOP_SOURCES`, by name, called in
            source order (:func:`suggestions.learning.understanding_training_data`).
        log: Receives progress lines.

    Raises:
        FileNotFoundError: a public source's file is missing.
        ValueError: an unknown source name, or a shop source without a loader.
    """
    say = log or (lambda _m: None)
    unknown = set(sources) - set(ALL_SOURCES)
    if unknown:
        raise ValueError(f"unknown data sources: {', '.join(sorted(unknown))} (known: {', '.join(ALL_SOURCES)})")
    shop_sources = shop_sources or {}
    root = resolve_data_dir(data_dir)
    by_source: dict[str, list[Example]] = {}
    dev: dict[str, list[Example]] = {}
    for name in sources:
        if name in PUBLIC_FILES:
            train_file, dev_file = PUBLIC_FILES[name]
            reader = _READERS[name]
            path = root / train_file
            if not path.is_file():
                raise FileNotFoundError(f"{name}: {path} not found (set --data-dir or SHOP_DATA_DIR)")
            by_source[name] = reader(path, entity_labels)
            if with_dev and (root / dev_file).is_file():
                dev[name] = reader(root / dev_file, entity_labels)
        elif name == "templates":
            by_source[name] = template_examples(intents, seed=seed)
        elif name in shop_sources:
            by_source[name] = shop_sources[name]()
        else:
            raise ValueError(f"{name}: the shop's own data is read from the database "
                             "(suggestions.learning.understanding_training_data)")
        say(f"{name}: {len(by_source[name])} examples")

    corrections = {ex.key: ex for ex in by_source.get("corrections", [])}
    rng = random.Random(seed)
    train: list[Example] = []
    heldout: list[Example] = []
    counts: dict[str, dict[str, int]] = {}
    for name, examples in by_source.items():
        # Corrections replace every other example of their query.
        if name != "corrections":
            examples = [ex for ex in examples if ex.key not in corrections]
        # Distant sources may repeat a query: keep its first example.
        if name in ("catalog", "behaviour", "templates"):
            seen: set[str] = set()
            examples = [ex for ex in examples if not (ex.key in seen or seen.add(ex.key))]
        tr = [ex for ex in examples if not ex.heldout_ok or heldout_bucket(ex.key) >= heldout_percent]
        ho = [ex for ex in examples if ex.heldout_ok and heldout_bucket(ex.key) < heldout_percent]
        if max_train is not None and name != "corrections" and len(tr) > max_train:
            tr = rng.sample(tr, max_train)
            ho = ho[: max(1, max_train // 9)] if ho else ho
        train += tr
        heldout += ho
        counts[name] = {"train": len(tr), "heldout": len(ho)}
    for ex in train + heldout + [e for d in dev.values() for e in d]:
        if ex.intent is None and ex.source != "corrections":
            ex.intent = weak_intent(ex.text, ex.spans, intents, gazetteer=gazetteer,
                                    entity_labels=entity_labels)
        if ex.intent is None:
            ex.intent_weight = 0.0
        ex.words = model_words(ex.text)
    return TrainingData(train=train, heldout=heldout, counts=counts, dev=dev)


def summarize_counts(examples: Iterable[Example]) -> dict[str, int]:
    """Examples per source."""
    return dict(Counter(ex.source for ex in examples))
