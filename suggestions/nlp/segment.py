"""Word segmentation of queries with character offsets, for English and Chinese.

Contracts:
* :func:`tokenize` returns :class:`Token` objects whose ``start``/``end`` are
  character offsets into the text as given (``text[start:end] == token.text``),
  in order and non-overlapping. Whitespace and separator punctuation make no
  tokens.
* Latin-script text (and digits, other alphabetic scripts) is split on
  whitespace and punctuation, keeping the connectors that live inside product
  words: "3.5mm", "usb-c", "startech.com", "at&t", "men's", "c++", and a
  currency sign glued to a number ("$100").
* Runs of Han characters are segmented with jieba. jieba is imported lazily on
  the first Chinese query (its dictionary load takes most of a second; see
  :func:`warm_up`) so that English-only processes never pay for it.
* :func:`add_words` extends jieba's dictionary (the catalog's brands and product
  types); words given before jieba is loaded are kept and added when it loads.
* Thread safety: jieba's initialisation and ``add_word`` mutate global state;
  both happen under the module-level lock. Cutting after initialisation only
  reads jieba's dictionary.

No torch or transformers import happens here: the web process imports it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .language import is_han

__all__ = ["Token", "tokenize", "add_words", "warm_up", "jieba_loaded", "added_words"]

# Character class of Han ideographs (kept in step with language.HAN_RANGES).
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef\U00030000-\U0003134f"

# One alternation: a run of Han characters (segmented further by jieba), or a
# Latin-style word. A word is letters/digits joined by the connectors that occur
# inside product words (. - / + & ' ’), optionally led by a currency sign that
# is glued to a number and followed by "+"/"#" (c++, c#) or "%" after a digit.
_TOKEN_RE = re.compile(
    rf"""
    (?P<han>[{_HAN}]+)
    |
    (?P<word>
        (?:[$€£¥￥](?=\d))?
        [^\W_{_HAN}]+
        (?:[.\-/+&'’][^\W_{_HAN}]+)*
        (?:[+#]+|(?<=\d)%)?
    )
    """,
    re.VERBOSE,
)

_lock = threading.Lock()
_jieba: Any = None  # the jieba module once initialised
_pending: set[str] = set()  # words given to add_words before jieba was loaded
_added: set[str] = set()  # every word given to add_words (for inspection and tests)
_init_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """A word of a query.

    Attributes:
        text: the word as it appears in the query (``query[start:end]``).
        start: character offset of its first character.
        end: character offset just past it.
    """

    text: str
    start: int
    end: int


def _load_jieba() -> Any:
    """Import and initialise jieba once per process (thread-safe)."""
    global _jieba, _init_seconds
    if _jieba is not None:
        return _jieba
    with _lock:
        if _jieba is None:
            started = time.perf_counter()
            import jieba

            # jieba logs "Building prefix dict …" at DEBUG/INFO on stderr.
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            for word in sorted(_pending):
                jieba.add_word(word)
            _pending.clear()
            _init_seconds = time.perf_counter() - started
            _jieba = jieba
    return _jieba


def warm_up() -> float:
    """Load jieba now (e.g. at worker start) instead of on the first Chinese query.

    Returns:
        Seconds the first load took (import, dictionary, pending user words);
        the same figure on later calls, which do nothing.
    """
    _load_jieba()
    return float(_init_seconds or 0.0)


def jieba_loaded() -> bool:
    """Whether jieba has been imported and initialised in this process."""
    return _jieba is not None


def added_words() -> frozenset[str]:
    """Every word given to :func:`add_words` so far in this process."""
    return frozenset(_added)


def add_words(words: Iterable[str]) -> int:
    """Add words (brands, product types) to jieba's dictionary as user words.

    Only words that contain a Han character matter: Latin text never reaches
    jieba. Words with whitespace are skipped (jieba's default mode never cuts
    across a space, so they could not match). A word is given a frequency just
    high enough that jieba cuts it as one piece (jieba's ``suggest_freq``).

    Args:
        words: Words to add; duplicates and already added words are ignored.

    Returns:
        How many new words were accepted.
    """
    fresh: dict[str, None] = {}  # ordered and without repeats: a word twice is one new word
    for word in words:
        word = (word or "").strip()
        if not word or word in _added or any(ch.isspace() for ch in word):
            continue
        if not any(is_han(ch) for ch in word):
            continue
        fresh[word] = None
    if not fresh:
        return 0
    added = 0
    with _lock:
        for word in fresh:
            if word in _added:  # added by another thread meanwhile
                continue
            _added.add(word)
            added += 1
            if _jieba is None:
                _pending.add(word)
            else:
                _jieba.add_word(word)
    return added


def _segment_han(run: str, offset: int) -> list[Token]:
    jieba = _load_jieba()
    return [Token(word, offset + start, offset + end) for word, start, end in jieba.tokenize(run)]


def tokenize(text: str) -> list[Token]:
    """Split a query into words with character offsets into ``text``.

    Examples:
        >>> [t.text for t in tokenize("StarTech.com USB-C to 3.5mm, $100")]
        ['StarTech.com', 'USB-C', 'to', '3.5mm', '$100']

    Args:
        text: A query as typed (not normalised).

    Returns:
        Tokens in order; ``text[t.start:t.end] == t.text`` for each.
    """
    tokens: list[Token] = []
    for match in _TOKEN_RE.finditer(text or ""):
        if match.lastgroup == "han":
            tokens.extend(_segment_han(match.group(), match.start()))
        else:
            tokens.append(Token(match.group(), match.start(), match.end()))
    return tokens
