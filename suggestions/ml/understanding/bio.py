"""BIO tags ↔ entity spans, written once for the model, its training data and the baseline.

Pure Python (no torch), so readers, benchmarks and the dictionary tagger use it anywhere.

Two decoders, because two conventions are measured and each must stay exactly as it is:

* :func:`decode_bio`, the *lenient* decoder of the model, its training data and its
  evaluation: an ``I-x`` that does not continue an ``x`` span starts one; anything that is
  not ``B-``/``I-`` (``O``, a malformed tag) ends the current span. Spans are
  ``(label, start, end)`` over word indices, or over the character offsets given.
* :func:`seqeval_chunks`, seqeval's default (non-strict IOB2, BIOES-aware) chunking that
  the dictionary-tagger baseline is scored with, so that its figures are comparable with
  published ones: chunks are ``(start, end, type)`` sets. No dependency on seqeval.

On well-formed BIO the two find the same chunks.

Encoding: :func:`bio_tags` (the tag set of a label set) and :func:`spans_to_word_tags`
(character spans projected onto words).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ...nlp.segment import Token

#: An entity span: ``(label, start, end)``, ``end`` exclusive, in characters or words.
Span = tuple[str, int, int]


def bio_tags(labels: Sequence[str]) -> list[str]:
    """The tag set of a label set: ``O`` then ``B-x``/``I-x`` per label."""
    tags = ["O"]
    for label in labels:
        tags += [f"B-{label}", f"I-{label}"]
    return tags


def decode_bio(tags: Sequence[str], offsets: Sequence[tuple[int, int]] | None = None,
               mapping: Mapping[str, str] | None = None) -> list[Span]:
    """Spans of a BIO sequence (lenient decoding, see the module docstring).

    Examples:
        >>> decode_bio(["B-brand", "I-brand", "O", "I-color"])
        [('brand', 0, 2), ('color', 3, 4)]

    Args:
        tags: BIO tags, one per token.
        offsets: ``(start, end)`` per token; default: the token indices, so spans are
            ``(label, first word, last word + 1)``.
        mapping: Tag type → label; spans of unmapped types are dropped.

    Returns:
        Spans in order.
    """
    if offsets is None:
        offsets = [(i, i + 1) for i in range(len(tags))]
    spans: list[Span] = []
    current: list[Any] | None = None
    for tag, (start, end) in zip(tags, offsets, strict=True):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is not None and (tag.startswith("B-") or current is None or current[0] != kind):
            if current:
                spans.append(tuple(current))  # type: ignore[arg-type]
            current = [kind, start, end]
        elif kind is not None:
            current[2] = end  # type: ignore[index]
        else:
            if current:
                spans.append(tuple(current))  # type: ignore[arg-type]
            current = None
    if current:
        spans.append(tuple(current))  # type: ignore[arg-type]
    if mapping is not None:
        spans = [(mapping[k], s, e) for k, s, e in spans if k in mapping]
    return spans


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


def seqeval_chunks(labels: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entity chunks of one BIO (or BIOES) tag sequence, as seqeval's default mode finds them.

    An ``I-`` tag that does not continue a chunk of its type starts a new chunk, and a chunk
    ends at ``O``, ``B-`` or a change of type.

    Examples:
        >>> sorted(seqeval_chunks(["B-brand", "I-brand", "O", "I-color", "B-color"]))
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


def spans_to_word_tags(words: Sequence[Token], spans: Iterable[Span], labels: Iterable[str]) -> list[str]:
    """Project character spans ``(label, start, end)`` onto words as BIO tags.

    A word gets ``B-x`` when a span starts at it and ``I-x`` when it lies
    inside one; spans of labels not in ``labels`` are dropped. Spans that
    start inside a word cannot be represented and are dropped too.
    """
    known = set(labels)
    tags = ["O"] * len(words)
    for label, start, end in sorted(spans, key=lambda s: (s[1], -s[2])):
        if label not in known:
            continue
        inside = [i for i, w in enumerate(words) if w.start >= start and w.end <= end]
        if not inside or words[inside[0]].start != start or any(tags[i] != "O" for i in inside):
            continue
        tags[inside[0]] = f"B-{label}"
        for i in inside[1:]:
            tags[i] = f"I-{label}"
    return tags
