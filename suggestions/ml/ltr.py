"""Learning to rank, written once for the suggestion ranker and the search ranker.

Pure numpy and LightGBM (no torch): the search ranker loads it in web processes
when a version is active.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def fit_lambdarank(x: np.ndarray, y: np.ndarray, groups: Sequence[int], params: Any,
                   feature_names: Sequence[str], *, top_k: int) -> Any:
    """A LightGBM LambdaRank booster trained on learning-to-rank groups.

    ``params`` has ``n_estimators``, ``learning_rate``, ``num_leaves``,
    ``min_child_samples`` and ``seed`` (each ranker's ``TrainParams``).
    """
    import lightgbm

    model = lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=params.n_estimators, learning_rate=params.learning_rate,
        num_leaves=params.num_leaves, min_child_samples=params.min_child_samples,
        lambdarank_truncation_level=top_k, random_state=params.seed, n_jobs=min(os.cpu_count() or 1, 4),
        verbose=-1,
    )
    model.fit(x, y, group=list(groups), feature_name=list(feature_names))
    return model.booster_


def shuffled_labels(labels: np.ndarray, groups: Sequence[int], *, seed: int = 0) -> np.ndarray:
    """The labels with the positive moved to a random candidate of its group
    (a challenger trained on them has learnt nothing: the gate must reject it)."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(labels)
    start = 0
    for size in groups:
        out[start:start + size] = rng.permutation(labels[start:start + size])
        start += size
    return out
