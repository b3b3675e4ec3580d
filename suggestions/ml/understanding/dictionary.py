"""The dictionary-tagger baseline for query NER.

This is the classic baseline the trained models are benchmarked against: it
memorises the entity phrases of the training data and tags them wherever they
recur. The phrase memory (:mod:`suggestions.ml.understanding.phrases`) is this
tagger fitted on the model's training examples.

Contracts:
* Examples are ``(tokens, labels)`` pairs of equal-length lists; labels are
  BIO tags (``"B-brand"``, ``"I-brand"``, ``"O"``). For Chinese (Jie et al.
  2019) a token is one character. Read the public corpora with
  :mod:`suggestions.ml.understanding.corpora`.
* Labelled phrases are found with seqeval's default chunking
  (:func:`~suggestions.ml.understanding.bio.seqeval_chunks`) and the tagger is
  scored with :func:`~suggestions.ml.understanding.metrics.micro_f1`, as
  ``seqeval.metrics.f1_score`` reports it.
* Pure Python; no torch/transformers import.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from .bio import seqeval_chunks
from .metrics import micro_f1


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
            for start, end, kind in sorted(seqeval_chunks(labels)):
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
