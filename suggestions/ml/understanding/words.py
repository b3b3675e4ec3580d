"""The words the understanding model tags, with character offsets into the query.

Pure Python (no torch): the training data, the phrase memory and the benchmark segment
text exactly as the model does.

Words are those of :func:`suggestions.nlp.segment.tokenize`, except that in text
containing Han characters every Han character is a word and Latin/digit tokens are split
into letter runs, digit runs and single symbols. Chinese NER data (Jie et al. 2019) is
labelled per character, and its entities often start inside such tokens ("epson2180");
with this segmentation 99.7% of its gold spans stay reachable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...nlp.language import is_han
from ...nlp.segment import Token, tokenize

_FINE_RE = re.compile(r"[^\W\d_]+|\d+|\S")


def model_words(text: str) -> list[Token]:
    """The words the model tags, with character offsets into ``text``.

    Args:
        text: A query or title as given.

    Returns:
        Tokens in order (see the module docstring for the segmentation).
    """
    tokens = tokenize(text)
    if not any(is_han(ch) for ch in text):
        return tokens
    words: list[Token] = []
    for tok in tokens:
        if any(is_han(ch) for ch in tok.text):
            words.extend(Token(ch, tok.start + i, tok.start + i + 1) for i, ch in enumerate(tok.text)
                         if not ch.isspace())
        else:
            words.extend(Token(m.group(), tok.start + m.start(), tok.start + m.end())
                         for m in _FINE_RE.finditer(tok.text))
    return words


def has_han(words: Sequence[Token]) -> bool:
    """Whether any word starts with a Han character (Han text is one word per character)."""
    return any(w.text and is_han(w.text[0]) for w in words)
