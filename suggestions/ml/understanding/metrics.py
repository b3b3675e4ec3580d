"""Entity metrics, written once: micro precision / recall / F1 over exact spans.

Pure Python (no torch).

* :func:`span_f1` scores spans ``(label, start, end)`` per document, as the model's
  evaluation reports them (rounded to 4 places, with the span counts).
* :func:`micro_f1` and :func:`per_type_f1` score BIO tag sequences chunked the way
  seqeval does by default (:func:`~suggestions.ml.understanding.bio.seqeval_chunks`), as
  ``seqeval.metrics.f1_score`` reports them (unrounded; 0.0 where undefined). The
  dictionary-tagger baseline is scored with these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .bio import Span, seqeval_chunks


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _counts(gold: Iterable[set[Any]], pred: Iterable[set[Any]]) -> tuple[int, int, int]:
    """``(true positives, predicted, gold)`` over aligned documents' span sets."""
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, pred, strict=True):
        tp += len(g & p)
        n_pred += len(p)
        n_gold += len(g)
    return tp, n_pred, n_gold


def span_f1(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict[str, float]:
    """Micro precision/recall/F1 over exact ``(label, start, end)`` spans, per document.

    Returns:
        ``{"precision", "recall", "f1"}`` rounded to 4 places, ``"gold"`` and
        ``"predicted"`` span counts.
    """
    tp, n_pred, n_gold = _counts((set(g) for g in gold), (set(p) for p in pred))
    scores = {name: round(value, 4) for name, value in _prf(tp, n_pred, n_gold).items()}
    return {**scores, "gold": n_gold, "predicted": n_pred}


def _check(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> None:
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted")
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted")


def micro_f1(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged precision, recall and F1 over exact entity chunks of tag sequences.

    Args:
        gold_seqs: Gold tag sequences.
        pred_seqs: Predicted tag sequences, aligned with ``gold_seqs``.

    Returns:
        ``{"precision", "recall", "f1"}`` (0.0 where undefined, as seqeval).

    Raises:
        ValueError: When the sequences are not aligned.
    """
    _check(gold_seqs, pred_seqs)
    return _prf(*_counts(map(seqeval_chunks, gold_seqs), map(seqeval_chunks, pred_seqs)))


def per_type_f1(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and gold support of each entity type.

    Args:
        gold_seqs: Gold tag sequences.
        pred_seqs: Predicted tag sequences, aligned with ``gold_seqs``.

    Returns:
        Type → ``{"precision", "recall", "f1", "support"}``.
    """
    _check(gold_seqs, pred_seqs)
    tp: Counter[str] = Counter()
    npred: Counter[str] = Counter()
    ngold: Counter[str] = Counter()
    for gold, pred in zip(gold_seqs, pred_seqs, strict=True):
        g, p = seqeval_chunks(gold), seqeval_chunks(pred)
        for s in g & p:
            tp[s[2]] += 1
        for s in p:
            npred[s[2]] += 1
        for s in g:
            ngold[s[2]] += 1
    return {
        t: {**_prf(tp[t], npred[t], ngold[t]), "support": float(ngold[t])}
        for t in sorted(set(npred) | set(ngold))
    }
