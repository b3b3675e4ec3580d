"""The fine-tuned model variants of the understanding benchmark, and how they are trained.

Each variant is trained by the product's own code
(:func:`suggestions.ml.understanding.dataset.assemble` and
:func:`~suggestions.ml.understanding.training.fit`)
on the public *train* splits only (never dev), with no held-out split (the
dev files are the test sets here), and saved under the models folder. The
settings are the best of the exploration reported in ``README.md`` that fit
the CPU bound of the brief (about 15 minutes on 2 cores per run); ``--device
cuda`` trains the same variants on a GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One model to train and evaluate.

    Attributes:
        name: Folder and table name.
        base: Encoder spec (``en``, ``multilingual``, folder or hub name).
        sources: Training data sources.
        params: :class:`~suggestions.ml.understanding.training.TrainParams` overrides.
        max_train: Cap on the training examples of each source (CPU bound).
        description: One line for the tables.
    """

    name: str
    base: str
    sources: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    max_train: int | None = None
    description: str = ""


_BASELINES = (
    Variant("minilm-en", "en", ("queryner", "templates"),
            {"lr": 1e-4, "head_lr": 1e-3, "epochs": 6, "phrase_features": False},
            description="all-MiniLM-L6-v2, QueryNER train + intent templates, 6 epochs"),
    Variant("e5-en", "multilingual", ("queryner", "templates"),
            {"lr": 1e-4, "head_lr": 1e-3, "epochs": 6, "phrase_features": False},
            description="multilingual-e5-small (word embeddings frozen), QueryNER train + templates, 6 epochs"),
    Variant("e5-multi", "multilingual", ("queryner", "jie2019", "templates"),
            {"lr": 1e-4, "head_lr": 1e-3, "epochs": 3, "phrase_features": False},
            description="multilingual-e5-small, QueryNER + Jie2019 train + templates, 3 epochs"),
)


def _with_phrases(variant: Variant) -> Variant:
    """The same variant with phrase-memory features (``<name>-ph``)."""
    return replace(variant, name=f"{variant.name}-ph", params={**variant.params, "phrase_features": True},
                   description=f"{variant.name} + phrase-memory features (5-fold jackknife on the train splits)")


VARIANTS: dict[str, Variant] = {v.name: v for v in (*_BASELINES, *map(_with_phrases, _BASELINES))}

#: Ensembles evaluated from trained variants (no extra training).
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "minilm-en+e5-en": ("minilm-en", "e5-en"),
    "minilm-en-ph+e5-en-ph": ("minilm-en-ph", "e5-en-ph"),
    "minilm-en-ph+e5-multi-ph": ("minilm-en-ph", "e5-multi-ph"),
}


def _training_data(variant: Variant, params: Any, data_dir: Path, log: Any) -> Any:
    """The variant's training examples (public train splits only, no held-out split)."""
    from suggestions.ml.understanding.dataset import assemble
    from suggestions.nlp.gazetteer import Gazetteer
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS

    return assemble(variant.sources, entity_labels=DEFAULT_ENTITY_LABELS, intents=DEFAULT_INTENTS,
                    data_dir=data_dir, max_train=variant.max_train, seed=params.seed,
                    heldout_percent=0, with_dev=False, gazetteer=Gazetteer(), log=log)


def train_variant(variant: Variant, folder: Path, *, data_dir: Path, device: str | None,
                  progress: bool = True, log: Any = print) -> dict[str, Any]:
    """Train ``variant`` and save it into ``folder``; returns the timing report."""
    from suggestions.ml.encoders import resolve_encoder
    from suggestions.ml.understanding.model import UnderstandingModel
    from suggestions.ml.understanding.training import TrainParams, fit
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS

    params = TrainParams(**{**variant.params, "device": device})
    started = time.perf_counter()
    data = _training_data(variant, params, data_dir, log)
    base_path = resolve_encoder(variant.base)
    model = UnderstandingModel.from_base(base_path, DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS, device=device,
                                         max_length=params.max_length, dropout=params.dropout,
                                         phrase_features=params.phrase_features,
                                         meta={"version": f"bench-{variant.name}", "base": variant.base})
    report = fit(model, data.train, params, progress=progress, log=log)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["examples"] = len(data.train)
    report["device"] = str(model.device)
    model.meta.update({"bench_variant": variant.name, "params": params.as_dict(), "train_report": report})
    model.save(folder)
    (folder / "bench_training.json").write_text(json.dumps(report, indent=2))
    return report


def add_missing_prior(variant: Variant, folder: Path, model: Any, *, data_dir: Path, log: Any = print) -> bool:
    """Give a variant trained before decoding used a transition prior (of the
    current :data:`~suggestions.ml.understanding.model.PRIOR_SCOPE`) its prior.

    The prior (:func:`suggestions.ml.understanding.model.transition_prior`) is counted from
    the training data, not learnt: computing it from the variant's training
    examples, assembled exactly as :func:`train_variant` assembles them, gives
    what training would have stored; the weights are untouched. It is written
    into the cached folder's metadata, marked as added afterwards.

    Returns:
        Whether a prior was added.
    """
    from suggestions.ml.understanding.bio import spans_to_word_tags
    from suggestions.ml.understanding.model import META_FILE, PRIOR_SCOPE, transition_prior
    from suggestions.ml.understanding.training import TrainParams
    from suggestions.ml.understanding.words import has_han

    if model.meta.get("transition_prior") and model.meta.get("transition_prior_scope") == PRIOR_SCOPE:
        return False
    data = _training_data(variant, TrainParams(**variant.params), data_dir, lambda _line: None)
    tags = [spans_to_word_tags(ex.words, ex.spans, model.entity_labels) for ex in data.train
            if ex.spans is not None and not has_han(ex.words)]
    model.set_transition_prior(transition_prior(tags, model.tags))
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["transition_prior"] = model.meta["transition_prior"]
    meta["transition_prior_scope"] = PRIOR_SCOPE
    meta["transition_prior_added"] = "after training, from the same training examples (bench cache upgrade)"
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str))
    log(f"{variant.name}: transition prior added to the cached model (counted from its training data)")
    return True
