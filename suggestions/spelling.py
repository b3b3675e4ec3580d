"""Did-you-mean: spelling correction of queries from the shop's own vocabulary.

Contracts:
* **Vocabulary.** The dictionary holds the words of the catalog (titles, brands
  and product types; a word counts the products it appears in) and the words
  of history queries that pass the k-anonymity gate of mining
  (``SUGGESTIONS_MIN_DISTINCT_USERS`` distinct identified shoppers, and the
  text filter :func:`~suggestions.mining.history_text_allowed`; a word counts
  the searches of those queries). A query searched by a single shopper never
  adds a word, so no shopper's rare text can come back as a "did you mean".
* **Build and load.** :func:`build_dictionary` runs on the worker (as part of
  ``suggestions_build``) and writes ``<SUGGESTIONS_DATA_DIR>/spelling.json``
  atomically (temp file + rename). :func:`get_corrector` loads it once per
  process into a symspellpy index and reloads it when the file's mtime or size
  changes (one ``stat`` per call). Without a file nothing is corrected.
* **What is corrected.** Only words of ASCII letters of at least
  ``MIN_WORD_LENGTH`` characters that are not in the dictionary; words with
  digits (model codes), non-Latin words (Chinese) and known words are left
  alone. Up to ``MAX_EDITS`` edits (one for words of up to four letters), the
  closest dictionary word wins, the most frequent among equally close ones.
  :mod:`suggestions.services` decides *when* a correction is shown: only for a
  query with few results whose corrected form finds more.

No torch here: the web process imports it. symspellpy is a base dependency.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .conf import app_settings

logger = logging.getLogger(__name__)

FILENAME = "spelling.json"
_FORMAT = "shop_suggestions.spelling"
_VERSION = 1
MIN_WORD_LENGTH = 3
MAX_EDITS = 2
#: symspellpy's prefix length: the usual 7 keeps the index small with no loss
#: on words as short as shop queries' words.
PREFIX_LENGTH = 7
_TOKEN_RE = re.compile(r"[^\W_]+")
_CORRECTABLE_RE = re.compile(r"^[a-z]+$")


def dictionary_path() -> str:
    """Where the dictionary lives: ``<SUGGESTIONS_DATA_DIR>/spelling.json``."""
    return os.path.join(app_settings.DATA_DIR, FILENAME)


def words_of(text: str) -> list[str]:
    """Lower-cased words of ``text`` (split on anything that is not a letter or digit)."""
    return _TOKEN_RE.findall((text or "").lower())


def _dictionary_word(word: str) -> bool:
    return len(word) >= 2 and _CORRECTABLE_RE.match(word) is not None


def catalog_vocabulary(documents: Iterable, progress: Callable[[int], None] | None = None) -> Counter:
    """Words of titles, brands and product types, each counting the products it appears in."""
    counts: Counter = Counter()
    for doc in documents:
        words = {w for field in (doc.title, doc.brand, doc.product_type) for w in words_of(field or "")}
        counts.update(w for w in words if _dictionary_word(w))
        if progress:
            progress(1)
    return counts


def history_vocabulary(stats: dict[str, dict], *, min_users: int | None = None) -> Counter:
    """Words of the history queries that pass the k-gate and the text filter,
    each counting those queries' searches.

    Args:
        stats: :func:`~suggestions.mining.query_stats`.
        min_users: The gate (default ``SUGGESTIONS_MIN_DISTINCT_USERS``).
    """
    from .mining import history_text_allowed

    k = app_settings.MIN_DISTINCT_USERS if min_users is None else min_users
    counts: Counter = Counter()
    for text, row in stats.items():
        if row["users"] >= k and history_text_allowed(text):
            for word in set(words_of(text)):
                if _dictionary_word(word):
                    counts[word] += int(row["searches"])
    return counts


def build_dictionary(documents: Iterable, stats: dict[str, dict], *, save: bool = True,
                     progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """The dictionary of catalog and gated history words; written to
    :func:`dictionary_path` when ``save``. Returns word → count."""
    words = catalog_vocabulary(documents, progress=progress)
    words.update(history_vocabulary(stats))
    result = dict(sorted(words.items()))
    if save:
        path = dictionary_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".spelling-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": _FORMAT, "version": _VERSION, "words": result}, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return result


@dataclass(frozen=True)
class Correction:
    """A corrected query: ``text`` with ``words`` (original → replacement) replaced."""

    text: str
    words: dict[str, str]


class Corrector:
    """A symspellpy index over a word → count dictionary."""

    def __init__(self, words: dict[str, int]):
        from symspellpy import SymSpell

        self._sym = SymSpell(max_dictionary_edit_distance=MAX_EDITS, prefix_length=PREFIX_LENGTH)
        for word, count in words.items():
            if _dictionary_word(word) and count > 0:
                self._sym.create_dictionary_entry(word, int(count))
        self.size = len(self._sym.words)

    def __contains__(self, word: str) -> bool:
        return word in self._sym.words

    def correct_word(self, word: str) -> str | None:
        """The closest dictionary word to an unknown ``word``, or None (known
        word, not correctable, nothing close enough)."""
        if len(word) < MIN_WORD_LENGTH or not _CORRECTABLE_RE.match(word) or word in self._sym.words:
            return None
        from symspellpy import Verbosity

        edits = 1 if len(word) <= 4 else MAX_EDITS
        found = self._sym.lookup(word, Verbosity.CLOSEST, max_edit_distance=edits)
        if not found:
            return None
        # CLOSEST gives the smallest distance first, by count within it.
        best = max((s for s in found if s.distance == found[0].distance), key=lambda s: (s.count, s.term))
        return best.term if best.term != word else None

    def correct(self, text: str) -> Correction | None:
        """``text`` with each unknown word replaced by its correction, or None
        when no word changes."""
        changes: dict[str, str] = {}
        for word in words_of(text):
            if word not in changes:
                fixed = self.correct_word(word)
                if fixed:
                    changes[word] = fixed
        if not changes:
            return None
        return Correction(replace_words(text, changes), changes)


def replace_words(text: str, changes: dict[str, str]) -> str:
    """``text`` with whole words replaced (case-insensitively) by ``changes``."""
    if not changes:
        return text
    pattern = re.compile(r"(?<![^\W_])(" + "|".join(map(re.escape, sorted(changes, key=len, reverse=True)))
                         + r")(?![^\W_])", re.IGNORECASE)
    return pattern.sub(lambda m: changes[m.group(1).lower()], text)


# (path, (mtime_ns, size) or None, corrector or None)
_loaded: tuple[str, tuple[int, int] | None, Corrector | None] | None = None
_lock = threading.Lock()


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def get_corrector() -> Corrector | None:
    """The corrector of the current dictionary file (None without one), loaded
    once per process and reloaded when the file changes."""
    global _loaded
    path = dictionary_path()
    stamp = _stamp(path)
    current = _loaded
    if current is not None and current[0] == path and current[1] == stamp:
        return current[2]
    with _lock:
        current = _loaded
        if current is not None and current[0] == path and current[1] == stamp:
            return current[2]
        corrector = None
        if stamp is not None:
            try:
                with open(path, encoding="utf-8") as fh:
                    data = json.load(fh)
                if data.get("format") != _FORMAT:
                    raise ValueError("not a spelling dictionary")
                corrector = Corrector(data.get("words") or {})
            except (OSError, ValueError) as exc:
                logger.warning("suggestions: spelling dictionary %s unusable: %s", path, exc)
        _loaded = (path, stamp, corrector)
        return corrector


def reset() -> None:
    """Forget the loaded dictionary (tests)."""
    global _loaded
    with _lock:
        _loaded = None


def correct(text: str) -> Correction | None:
    """Correction of ``text`` from the current dictionary, or None."""
    corrector = get_corrector()
    return corrector.correct(text) if corrector is not None else None
