"""Training examples and the public NER corpora's file formats, read once.

Pure Python (no torch): the dictionary-tagger baseline, the benchmark and the model's
training read the same files through the same parsers.

Contracts:

* :func:`read_queryner` / :func:`read_jie2019` return ``(tokens, BIO labels)`` pairs of
  equal-length lists, as the files have them (for Chinese, Jie et al. 2019, a token is one
  character), optionally with the entity types renamed; they raise :class:`ValueError`
  naming the file and line on a malformed row.
* :func:`queryner_examples` / :func:`jie2019_examples` turn the same rows into
  :class:`Example` objects with character spans (lenient BIO decoding,
  :func:`~suggestions.ml.understanding.bio.decode_bio`) over the shop's labels: types the
  shop does not use are dropped. QueryNER text is its tokens joined by one space; Jie2019
  text is its characters, whitespace characters (the file has a few ideographic spaces)
  kept as plain spaces so that offsets stay one per line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...nlp.labels import JIE2019_TO_LABEL, QUERYNER_TO_LABEL
from ...nlp.segment import Token
from .bio import Span, decode_bio

#: A labelled sentence as the files have it: ``(tokens, BIO labels)``.
TaggedTokens = tuple[list[str], list[str]]

#: Train and dev files of each public corpus, relative to the shared data folder.
PUBLIC_FILES = {
    "queryner": ("queryner/train.jsonl", "queryner/dev.jsonl"),
    "jie2019": ("zh/ecom_ner_jie2019/train.txt", "zh/ecom_ner_jie2019/dev.txt"),
}


@dataclass
class Example:
    """One training or evaluation query.

    Attributes:
        text: the text the spans index.
        spans: gold or distant entity spans; None means "no entity supervision"
            (the tag loss ignores the example).
        intent: intent label, or None.
        source: data source name.
        weight: weight of the example's tag loss.
        intent_weight: weight of its intent loss (0: none).
        key: normalised form (dedup, split, override by corrections).
        heldout_ok: may go to the held-out split (False for corrections).
        words: the words the model tags (:func:`~suggestions.ml.understanding.words.model_words`),
            set when the data is assembled.
    """

    text: str
    spans: list[Span] | None
    intent: str | None = None
    source: str = ""
    weight: float = 1.0
    intent_weight: float = 1.0
    key: str = ""
    heldout_ok: bool = True
    words: list[Token] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.key:
            from ...text import normalize_query

            self.key = normalize_query(self.text)


def resolve_data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """The shared data folder: the option, else ``$SHOP_DATA_DIR``, else ``../shared/data``
    relative to the project (``settings.BASE_DIR``, else the working directory)."""
    if value:
        return Path(value)
    env = os.environ.get("SHOP_DATA_DIR")
    if env:
        return Path(env)
    try:
        from django.conf import settings

        base = Path(getattr(settings, "BASE_DIR", "."))
    except Exception:  # noqa: BLE001 - outside Django
        base = Path(".")
    return base.resolve().parent / "shared" / "data"


# -- file formats ----------------------------------------------------------------------------


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


def read_queryner(path: str | os.PathLike[str], label_map: Mapping[str, str] | None = None) -> list[TaggedTokens]:
    """Read QueryNER (Amazon ESCI queries) JSON lines.

    Each line is an object with ``tokens`` and ``labels`` (BIO strings); other
    keys (``query``, ``example_id``) are ignored, as are blank lines.

    Args:
        path: A ``.jsonl`` file.
        label_map: Optional entity-type mapping (e.g.
            :data:`~suggestions.nlp.labels.QUERYNER_TO_LABEL`); unmapped types are kept.

    Returns:
        ``(tokens, labels)`` pairs.

    Raises:
        ValueError: On a line that is not an object with aligned tokens and labels.
    """
    examples: list[TaggedTokens] = []
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


def read_jie2019(path: str | os.PathLike[str], label_map: Mapping[str, str] | None = None) -> list[TaggedTokens]:
    """Read the Chinese e-commerce NER data of Jie et al. (2019).

    One character and its tag per line, separated by whitespace; a blank line
    ends a sentence. CRLF line ends, a UTF-8 BOM and characters that are
    themselves spaces (e.g. the ideographic space "\\u3000") are handled.

    Args:
        path: A ``train.txt`` / ``dev.txt`` file.
        label_map: Optional entity-type mapping (e.g.
            :data:`~suggestions.nlp.labels.JIE2019_TO_LABEL`); unmapped types are kept.

    Returns:
        ``(characters, labels)`` pairs.

    Raises:
        ValueError: On a non-blank line without a tag.
    """
    examples: list[TaggedTokens] = []
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


# -- as training examples --------------------------------------------------------------------


def _as_examples(rows: list[TaggedTokens], corpus_to_label: Mapping[str, str], labels: Sequence[str],
                 source: str, layout: Callable[[list[str]], tuple[str, list[tuple[int, int]]]]) -> list[Example]:
    """Rows as examples over the shop's labels; ``layout`` gives a row's text and token offsets."""
    known = set(labels)
    mapping = {k: v for k, v in corpus_to_label.items() if v in known}
    out = []
    for tokens, tags in rows:
        text, offsets = layout(tokens)
        out.append(Example(text=text, spans=decode_bio(tags, offsets, mapping), source=source))
    return out


def _spaced(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), offsets


def _per_character(chars: list[str]) -> tuple[str, list[tuple[int, int]]]:
    text = "".join(" " if char.isspace() else char[:1] for char in chars)
    return text, [(i, i + 1) for i in range(len(chars))]


def queryner_examples(path: str | os.PathLike[str], labels: Sequence[str]) -> list[Example]:
    """QueryNER rows as examples: text = tokens joined by one space.

    Args:
        path: ``train.jsonl`` or ``dev.jsonl``.
        labels: The shop's entity labels (others are dropped).
    """
    return _as_examples(read_queryner(path), QUERYNER_TO_LABEL, labels, "queryner", _spaced)


def jie2019_examples(path: str | os.PathLike[str], labels: Sequence[str]) -> list[Example]:
    """Jie et al. (2019) sentences as examples, one character per line of the file.

    Args:
        path: ``train.txt`` or ``dev.txt``.
        labels: The shop's entity labels (others are dropped).
    """
    return _as_examples(read_jie2019(path), JIE2019_TO_LABEL, labels, "jie2019", _per_character)
