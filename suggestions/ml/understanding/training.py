"""Training the understanding model: the training loop, evaluation, one whole training run.

Imported only by :mod:`suggestions.learning` (through the ``suggestions_train`` command and
Celery GPU workers), the benchmark and tests: it imports torch.

It knows nothing of the database: :func:`train_understanding` receives assembled
:class:`~suggestions.ml.understanding.dataset.TrainingData` and a version label, and returns
the trained model, saved where it is told, with its metrics; :mod:`suggestions.learning`
registers the version and decides whether to promote it.

Loss weights: an example's tag loss is weighted by its ``weight`` and its intent loss by its
``intent_weight`` (merchandisers' corrections: ``SUGGESTIONS_CORRECTION_WEIGHT``); corrections
are also seen :data:`CORRECTION_REPEAT` times per epoch, so that even one correction among
thousands of examples is learnt.

Metrics (:func:`evaluate`): entity micro-F1 on exact character spans, overall and per source,
intent agreement with the (weak) held-out intents, and accuracy on held-out reviewed intents
(confirmed/imported labels) when there are any.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...nlp.types import Understanding
from .bio import spans_to_word_tags
from .corpora import Example
from .dataset import TrainingData
from .metrics import span_f1
from .model import (
    IGNORE_INDEX,
    SCHEDULES,
    EnsembleModel,
    UnderstandingModel,
    build_tiny_base,
    count_parameters,
    pad_batch,
    transition_prior,
)
from .words import has_han, model_words

logger = logging.getLogger(__name__)

#: Times a correction is repeated per epoch (on top of its loss weight), so that even one
#: correction among thousands of examples is learnt.
CORRECTION_REPEAT = 3


@dataclass
class TrainParams:
    """Hyper-parameters of one training run (stored in the version's notes)."""

    epochs: int = 4
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    label_smoothing: float = 0.0
    intent_loss_weight: float = 0.5
    dropout: float = 0.1
    max_length: int = 128
    freeze_embeddings: str = "auto"  # "auto" | "yes" | "no"
    seed: int = 13
    device: str | None = None
    grad_clip: float = 1.0
    #: Phrase-memory input features (:mod:`suggestions.ml.understanding.phrases`); on by
    #: default: +5.8 entity F1 points on Jie2019 dev with multilingual-e5-small,
    #: -0.1 to +0.9 on QueryNER dev (bench/understanding/README.md).
    phrase_features: bool = True
    #: Folds of the jackknifed phrase-memory features (phrase-feature models only).
    phrase_folds: int = 5

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- training ------------------------------------------------------------------------------


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within windows of 50 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for first in range(0, len(order), window):
        chunk = sorted(order[first:first + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fit(
    model: UnderstandingModel,
    train: Sequence[Example],
    params: TrainParams,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    progress_file: Any = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on ``train`` (in place).

    Tag loss: cross-entropy on each word's first sub-token, weighted by the
    example's ``weight``; intent loss: cross-entropy weighted by
    ``intent_weight``; total = tag + ``intent_loss_weight`` × intent.

    Returns:
        ``{"steps", "seconds", "final_loss", "trainable_parameters"}``.
    """
    from tqdm import tqdm

    say = log or (lambda _m: None)
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)
    network = model.network
    embeddings = network.encoder.get_input_embeddings()
    freeze = params.freeze_embeddings == "yes" or (
        params.freeze_embeddings == "auto" and embeddings.weight.numel() > 20_000_000)
    embeddings.weight.requires_grad_(not freeze)
    model.meta["frozen_embeddings"] = bool(freeze)

    examples: list[Example] = []
    for ex in train:
        examples += [ex] * (CORRECTION_REPEAT if ex.source == "corrections" else 1)
    encoded = model.encoder.encode_many([ex.words for ex in examples])
    tag_ids = []
    word_tags: list[list[str] | None] = []
    for ex in examples:
        if ex.spans is None:
            tag_ids.append([IGNORE_INDEX] * len(ex.words))
            word_tags.append(None)
        else:
            tags = spans_to_word_tags(ex.words, ex.spans, model.entity_labels)
            tag_ids.append([model.tag_to_id[t] for t in tags])
            word_tags.append(tags)
    model.set_transition_prior(transition_prior(
        [t for ex, t in zip(examples, word_tags, strict=True) if t is not None and not has_han(ex.words)],
        model.tags))
    if model.reads_phrases:
        from .phrases import jackknife_tags

        texts = [[w.text for w in ex.words] for ex in examples]
        features, model.phrases = jackknife_tags(texts, word_tags, [ex.key for ex in examples],
                                                 folds=params.phrase_folds)
        encoded = [enc.with_features(model.feature_ids(words, tags))
                   for enc, words, tags in zip(encoded, texts, features, strict=True)]
        say(f"phrase memory: {len(model.phrases)} phrases ({params.phrase_folds}-fold features for training)")
    intent_ids = [model.intents.index(ex.intent) if ex.intent in model.intents else 0 for ex in examples]
    weights = [ex.weight for ex in examples]
    intent_weights = [ex.intent_weight if ex.intent in model.intents else 0.0 for ex in examples]

    head_lr = params.head_lr or params.lr
    decay, no_decay, heads = [], [], []
    for name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        if not name.startswith("encoder."):
            heads.append(p)
        elif p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    optimizer = torch.optim.AdamW([
        {"params": decay, "weight_decay": params.weight_decay, "lr": params.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": params.lr},
        {"params": heads, "weight_decay": 0.0, "lr": head_lr},
    ])
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = math.ceil(len(examples) / params.batch_size)
    total = max(1, steps_per_epoch * params.epochs)
    warmup = int(total * params.warmup_ratio)
    schedule = SCHEDULES[params.schedule]
    tag_loss_fn = torch.nn.CrossEntropyLoss(reduction="none", ignore_index=IGNORE_INDEX,
                                            label_smoothing=params.label_smoothing)
    intent_loss_fn = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=params.label_smoothing)
    device = model.device
    say(f"training on {len(train)} examples ({len(examples)} with repeats), {params.epochs} epochs, "
        f"{total} steps, device {device}, {count_parameters(network, True) / 1e6:.1f}M trainable parameters"
        f"{' (word embeddings frozen)' if freeze else ''}")
    started = time.perf_counter()
    step = 0
    running = None
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, file=progress_file,
               mininterval=1.0)
    network.train()
    try:
        lengths = [len(e.input_ids) for e in encoded]
        for _epoch in range(params.epochs):
            for batch_idx in _batches(lengths, params.batch_size, rng):
                batch = pad_batch([encoded[i] for i in batch_idx], model.encoder.pad_id,
                                  tags=[tag_ids[i] for i in batch_idx])
                ids = batch["input_ids"].to(device)
                mask = batch["attention_mask"].to(device)
                labels = batch["labels"].to(device)
                features = batch.get("feature_ids")
                tag_logits, intent_logits = network(ids, mask,
                                                    features.to(device) if features is not None else None)
                per_token = tag_loss_fn(tag_logits.reshape(-1, tag_logits.shape[-1]), labels.reshape(-1))
                w = torch.tensor([weights[i] for i in batch_idx], device=device).unsqueeze(1)
                w = (w * (labels != IGNORE_INDEX)).reshape(-1)
                tag_loss = (per_token * w).sum() / w.sum().clamp(min=1e-6)
                iw = torch.tensor([intent_weights[i] for i in batch_idx], device=device)
                loss = tag_loss
                if params.intent_loss_weight > 0 and float(iw.sum()) > 0:
                    it = torch.tensor([intent_ids[i] for i in batch_idx], device=device)
                    intent_loss = (intent_loss_fn(intent_logits, it) * iw).sum() / iw.sum()
                    loss = loss + params.intent_loss_weight * intent_loss
                factor = schedule(step, total, warmup)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if params.grad_clip:
                    torch.nn.utils.clip_grad_norm_([p for p in network.parameters() if p.requires_grad],
                                                   params.grad_clip)
                optimizer.step()
                step += 1
                value = float(loss.detach())
                running = value if running is None else 0.95 * running + 0.05 * value
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{running:.3f}")
                if step % max(1, total // 10) == 0 and step < total:
                    # Progress for logs without a terminal (a worker's retrain run in the admin).
                    say(f"step {step}/{total} ({100 * step // total}%), loss {running:.3f}")
    finally:
        bar.close()
        network.eval()
    seconds = time.perf_counter() - started
    say(f"trained {step} steps in {seconds:.0f} s (loss {running:.3f})" if running is not None else "no steps")
    return {"steps": step, "seconds": round(seconds, 1), "final_loss": round(running or 0.0, 4),
            "trainable_parameters": count_parameters(network, True)}



# -- evaluation ------------------------------------------------------------------------------


def evaluate(model: Any, examples: Sequence[Example], *, batch_size: int = 64) -> dict[str, Any]:
    """Entity F1 (exact character spans) overall and per source, intent agreement.

    Args:
        model: An :class:`UnderstandingModel` (or anything with ``predict_words``).
        examples: Held-out examples (their ``words`` set).

    Returns:
        ``{"entity": {...}, "per_source": {...}, "intent_accuracy_weak",
        "intent_accuracy_labelled", "n"}``.
    """
    if not examples:
        return {"entity": None, "per_source": {}, "intent_accuracy_weak": None,
                "intent_accuracy_labelled": None, "n": 0}
    words = [ex.words or model_words(ex.text) for ex in examples]
    predicted = model.predict_words([ex.text for ex in examples], words, batch_size)
    supervised = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.spans is not None]
    per_source: dict[str, Any] = {}
    for source in sorted({ex.source for ex, _ in supervised}):
        pairs = [(ex, u) for ex, u in supervised if ex.source == source]
        per_source[source] = span_f1([ex.spans for ex, _ in pairs],
                                     [[(e.label, e.start, e.end) for e in u.entities] for _, u in pairs])
    overall = span_f1([ex.spans for ex, _ in supervised],
                      [[(e.label, e.start, e.end) for e in u.entities] for _, u in supervised]) if supervised else None
    weak = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.intent and ex.source != "corrections"]
    labelled = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.intent and ex.source == "corrections"]

    def accuracy(pairs: list[tuple[Example, Understanding]]) -> float | None:
        return round(sum(ex.intent == u.intent for ex, u in pairs) / len(pairs), 4) if pairs else None

    return {"entity": overall, "per_source": per_source, "intent_accuracy_weak": accuracy(weak),
            "intent_accuracy_labelled": accuracy(labelled), "n": len(examples)}


# -- one whole training run --------------------------------------------------------------------


def train_understanding(
    data: TrainingData,
    *,
    entity_labels: Sequence[str],
    intents: Sequence[str],
    version: str,
    artefact: str | os.PathLike[str],
    sources: Sequence[str],
    base: str | None = None,
    tiny: bool = False,
    params: TrainParams | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    progress_file: Any = None,
) -> dict[str, Any]:
    """Train a model (or an ensemble) on ``data``, evaluate it and save it into ``artefact``.

    Args:
        data: Assembled examples (:func:`~suggestions.ml.understanding.dataset.assemble`).
        entity_labels: The shop's entity labels.
        intents: The shop's intents.
        version: Version label, stored in the model's metadata.
        artefact: Folder the model is saved into.
        sources: Names of the data sources (stored in the metadata).
        base: Encoder specs (``en``, ``multilingual``, folder, hub name), separated by
            commas: one member each, trained on the same data, saved as their
            :class:`~suggestions.ml.understanding.model.EnsembleModel`. Ignored with ``tiny``.
        tiny: Train a tiny BERT whose tokenizer is learnt from the training texts (tests,
            smoke runs).
        params: Hyper-parameters.
        progress: Show a tqdm bar.
        log: Receives progress lines.
        progress_file: Stream of the progress bar.

    Returns:
        ``model``, ``metrics`` (``entity_f1``, ``heldout``, ``dev``, ``counts``, ``train``),
        ``base`` (the specs trained, comma-separated) and ``base_paths`` (what they resolved
        to, or ``"tiny (in-process)"``).
    """
    from ..encoders import resolve_encoder

    say = log or (lambda _m: None)
    params = params or TrainParams()
    tmp_base = None
    if tiny:
        tmp_base = tempfile.mkdtemp(prefix="tiny-base-")
        bases = [("tiny", build_tiny_base([ex.text for ex in data.train], tmp_base, seed=params.seed))]
    else:
        specs = [b.strip() for b in (base or "").split(",") if b.strip()]
        bases = [(spec, resolve_encoder(spec)) for spec in specs]
    members = []
    fit_reports = []
    try:
        for spec, path in bases:
            say(f"base encoder: {spec} ({path})")
            member = UnderstandingModel.from_base(path, entity_labels, intents, device=params.device,
                                                  max_length=params.max_length, dropout=params.dropout,
                                                  phrase_features=params.phrase_features,
                                                  meta={"version": version, "base": spec})
            member_train = data.train
            if len(bases) > 1 and not member.handles_han:
                # In an ensemble, Chinese queries skip a member whose tokenizer reads
                # Han characters as [UNK] (EnsembleModel): it learns nothing from them.
                member_train = [ex for ex in data.train if not has_han(ex.words)]
                say(f"{spec}: {len(data.train) - len(member_train)} examples with Han characters left to "
                    f"the members that read them")
            fit_reports.append(fit(member, member_train, params, progress=progress, log=say,
                                   progress_file=progress_file))
            members.append(member)
    finally:
        if tmp_base:
            shutil.rmtree(tmp_base, ignore_errors=True)
    base_spec = ",".join(spec for spec, _ in bases)
    model: Any = members[0] if len(members) == 1 else EnsembleModel(
        members, meta={"version": version, "base": base_spec})
    fit_report = fit_reports[0] if len(fit_reports) == 1 else {
        "members": fit_reports, "seconds": round(sum(r["seconds"] for r in fit_reports), 1)}
    say("evaluating on the held-out split")
    heldout = evaluate(model, data.heldout)
    metrics: dict[str, Any] = {
        "entity_f1": heldout["entity"]["f1"] if heldout["entity"] else None,
        "heldout": heldout,
        "dev": {name: evaluate(model, examples)["entity"] for name, examples in data.dev.items()},
        "counts": data.counts,
        "train": fit_report,
    }
    model.meta.update({"metrics": metrics, "params": params.as_dict(), "sources": list(sources)})
    model.save(Path(artefact))
    return {"model": model, "metrics": metrics, "base": base_spec,
            "base_paths": [p for _, p in bases] if not tiny else "tiny (in-process)"}
