"""The dictionary-tagger baseline for query NER, its data readers and metrics.

This is the classic baseline the trained models are benchmarked against: it
memorises the entity phrases of the training data and tags them wherever they
recur. The models/benchmark code imports these names; keep them stable:
:class:`DictionaryTagger`, :func:`read_queryner`, :func:`read_jie2019`,
:func:`spans`, :func:`micro_f1`.

Contracts:
* Examples are ``(tokens, labels)`` pairs of equal-length lists; labels are
  BIO tags (``"B-brand"``, ``"I-brand"``, ``"O"``). For Chinese (Jie et al.
  2019) a token is one character.
* :func:`spans` and :func:`micro_f1` follow seqeval's default (non-strict IOB2)
  chunking: an ``I-`` tag that does not continue a chunk of its type starts a
  new chunk, and a chunk ends at ``O``, ``B-`` or a change of type. Scores are
  micro-averaged over exact ``(start, end, type)`` matches, as
  ``seqeval.metrics.f1_score`` reports them. No dependency on seqeval.
* Pure Python; no torch/transformers import.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DictionaryTagger",
    "Example",
    "micro_f1",
    "per_type_f1",
    "read_jie2019",
    "read_queryner",
    "spans",
]

Example = tuple[list[str], list[str]]


# --------------------------------------------------------------------------------------
# Spans and metrics
# --------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    # seqeval: the prefix is the first character, the type whatever follows the
    # first "-" ("B-core_product_type" → ("B", "core_product_type")); "O" has
    # the placeholder type "_".
    tag = tag or "O"
    prefix = tag[0]
    kind = tag[1:].split("-", maxsplit=1)[-1] or "_"
    return prefix, kind


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def spans(labels: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entity chunks of one BIO (or BIOES) tag sequence.

    Examples:
        >>> sorted(spans(["B-brand", "I-brand", "O", "I-color", "B-color"]))
        [(0, 2, 'brand'), (3, 4, 'color'), (4, 5, 'color')]

    Args:
        labels: Tags of one sentence.

    Returns:
        ``(start, end, type)`` with ``end`` exclusive.
    """
    chunks: set[tuple[int, int, str]] = set()
    prev_tag, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*labels, "O"]):
        prefix, kind = _split_tag(tag)
        if _end_of_chunk(prev_tag, prefix, prev_type, kind):
            chunks.add((begin, i, prev_type))
        if _start_of_chunk(prev_tag, prefix, prev_type, kind):
            begin = i
        prev_tag, prev_type = prefix, kind
    return chunks


def _check(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> None:
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted")
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted")


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def micro_f1(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro-averaged precision, recall and F1 over exact entity spans.

    Args:
        gold_seqs: Gold tag sequences.
        pred_seqs: Predicted tag sequences, aligned with ``gold_seqs``.

    Returns:
        ``{"precision", "recall", "f1"}`` (0.0 where undefined, as seqeval).

    Raises:
        ValueError: When the sequences are not aligned.
    """
    _check(gold_seqs, pred_seqs)
    tp = n_pred = n_gold = 0
    for gold, pred in zip(gold_seqs, pred_seqs, strict=True):
        g, p = spans(gold), spans(pred)
        tp += len(g & p)
        n_pred += len(p)
        n_gold += len(g)
    return _prf(tp, n_pred, n_gold)


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
        g, p = spans(gold), spans(pred)
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


# --------------------------------------------------------------------------------------
# The tagger
# --------------------------------------------------------------------------------------


class DictionaryTagger:
    """Memorise labelled phrases, tag them leftmost-longest.

    Training (:meth:`fit`): every labelled span's lower-cased token sequence
    is remembered with the label it carries most often (ties: the label seen
    first). Then the **ambiguity rule**: a phrase is dropped when it occurs in
    the training data more often wholly unlabelled (all its tokens ``O``) than
    labelled as a whole span, because tagging it everywhere would then be
    wrong more often than right ("set" is a product type in a few queries and
    plain text in many). Occurrences that overlap other entities count as
    neither.

    Prediction (:meth:`predict`): at each position the longest remembered
    phrase wins; tagged tokens are skipped; everything else is ``O``.

    Args:
        min_count: Phrases labelled fewer times than this are not remembered.
        lowercase: Compare tokens case-insensitively (default True).
    """

    def __init__(self, *, min_count: int = 1, lowercase: bool = True) -> None:
        self.min_count = min_count
        self.lowercase = lowercase
        self.phrases: dict[tuple[str, ...], str] = {}
        self.max_len = 0
        self.dropped = 0

    def _norm(self, tokens: Sequence[str]) -> list[str]:
        return [t.lower() for t in tokens] if self.lowercase else list(tokens)

    def fit(self, examples: Iterable[tuple[Sequence[str], Sequence[str]]]) -> DictionaryTagger:
        """Learn phrases from ``(tokens, BIO labels)`` examples.

        Args:
            examples: Training examples.

        Returns:
            ``self``.
        """
        data = [(self._norm(tokens), list(labels)) for tokens, labels in examples]
        label_counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        first_seen: dict[tuple[tuple[str, ...], str], int] = {}
        order = 0
        for tokens, labels in data:
            if len(tokens) != len(labels):
                raise ValueError(f"{len(tokens)} tokens but {len(labels)} labels: {tokens!r}")
            for start, end, kind in sorted(spans(labels)):
                key = tuple(tokens[start:end])
                label_counts[key][kind] += 1
                first_seen.setdefault((key, kind), order)
                order += 1

        # Count wholly unlabelled occurrences of every candidate phrase.
        lengths = {len(k) for k in label_counts}
        unlabelled: Counter[tuple[str, ...]] = Counter()
        for tokens, labels in data:
            outside = [lab == "O" or not lab for lab in labels]
            for n in lengths:
                for i in range(len(tokens) - n + 1):
                    if all(outside[i:i + n]):
                        key = tuple(tokens[i:i + n])
                        if key in label_counts:
                            unlabelled[key] += 1

        self.phrases = {}
        self.dropped = 0
        for key, counts in label_counts.items():
            labelled = sum(counts.values())
            if labelled < self.min_count:
                continue
            if unlabelled[key] > labelled:
                self.dropped += 1
                continue
            kind = max(counts, key=lambda k: (counts[k], -first_seen[(key, k)]))
            self.phrases[key] = kind
        self.max_len = max((len(k) for k in self.phrases), default=0)
        return self

    def predict(self, tokens: Sequence[str]) -> list[str]:
        """Tag one token sequence.

        Args:
            tokens: The tokens (characters for Chinese).

        Returns:
            BIO labels, one per token.
        """
        norm = self._norm(tokens)
        out = ["O"] * len(norm)
        i = 0
        while i < len(norm):
            for n in range(min(self.max_len, len(norm) - i), 0, -1):
                kind = self.phrases.get(tuple(norm[i:i + n]))
                if kind is not None:
                    out[i] = f"B-{kind}"
                    for j in range(i + 1, i + n):
                        out[j] = f"I-{kind}"
                    i += n
                    break
            else:
                i += 1
        return out

    def predict_many(self, sequences: Iterable[Sequence[str]]) -> list[list[str]]:
        """:meth:`predict` over many sequences."""
        return [self.predict(tokens) for tokens in sequences]

    def evaluate(self, examples: Sequence[tuple[Sequence[str], Sequence[str]]]) -> dict[str, float]:
        """Micro-F1 of the tagger on labelled examples."""
        return micro_f1([labels for _, labels in examples], self.predict_many(t for t, _ in examples))


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def _map_labels(labels: Sequence[str], label_map: Mapping[str, str] | None) -> list[str]:
    if not label_map:
        return list(labels)
    out = []
    for tag in labels:
        if tag == "O" or "-" not in tag:
            out.append(tag)
            continue
        prefix, kind = tag.split("-", 1)
        out.append(f"{prefix}-{label_map.get(kind, kind)}")
    return out


def read_queryner(path: str | os.PathLike[str], label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Read QueryNER (Amazon ESCI queries) JSON lines.

    Each line is an object with ``tokens`` and ``labels`` (BIO strings); other
    keys (``query``, ``example_id``) are ignored, as are blank lines.

    Args:
        path: A ``.jsonl`` file.
        label_map: Optional entity-type mapping (e.g.
            :data:`~suggestions.nlp.labels.QUERYNER_TO_LABEL`).

    Returns:
        ``(tokens, labels)`` pairs.

    Raises:
        ValueError: On a line that is not an object with aligned tokens and labels.
    """
    examples: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                tokens, labels = [str(t) for t in row["tokens"]], [str(t) for t in row["labels"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not a QueryNER row ({exc})") from exc
            if len(tokens) != len(labels):
                raise ValueError(f"{path}:{lineno}: {len(tokens)} tokens but {len(labels)} labels")
            examples.append((tokens, _map_labels(labels, label_map)))
    return examples


_CHAR_TAG_RE = re.compile(r"^(?P<char>.+?)[ \t]+(?P<tag>\S+)$")


def read_jie2019(path: str | os.PathLike[str], label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Read the Chinese e-commerce NER data of Jie et al. (2019).

    One character and its tag per line, separated by whitespace; a blank line
    ends a sentence. CRLF line ends, a UTF-8 BOM and characters that are
    themselves spaces (e.g. the ideographic space "\\u3000") are handled.

    Args:
        path: A ``train.txt`` / ``dev.txt`` file.
        label_map: Optional entity-type mapping (e.g.
            :data:`~suggestions.nlp.labels.JIE2019_TO_LABEL`).

    Returns:
        ``(characters, labels)`` pairs.

    Raises:
        ValueError: On a non-blank line without a tag.
    """
    examples: list[Example] = []
    chars: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if chars:
                    examples.append((chars, _map_labels(tags, label_map)))
                    chars, tags = [], []
                continue
            m = _CHAR_TAG_RE.match(line)
            if m is None:
                raise ValueError(f"{path}:{lineno}: expected '<char> <tag>', got {line!r}")
            chars.append(m.group("char"))
            tags.append(m.group("tag"))
    if chars:
        examples.append((chars, _map_labels(tags, label_map)))
    return examples
