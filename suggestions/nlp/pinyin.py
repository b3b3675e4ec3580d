"""Pinyin keys of suggestions, and the same conversion for typed input.

Chinese shoppers type the sound of what they want, in Latin letters, before
(or instead of) picking characters: "paoxie" or "pao x" for 跑鞋 (running
shoes), the initials "px", or a mix ("iphone手机k"). Backends that declare
``supports_pinyin`` index two extra keys for every suggestion that contains
Chinese characters and complete typed input on them.

Contracts:

* :func:`index_keys` gives a suggestion's **full pinyin** keys (toneless, no
  separators: 跑鞋 → ``paoxie``) and its **initials** keys (the first letter of
  each syllable: ``px``; zh/ch/sh count as z/c/s, as input methods do). Runs of
  Latin letters and digits are kept whole in both (``iphone手机壳`` →
  ``iphoneshoujike`` and ``iphonesjk``): shoppers type the brand or model,
  not its first letter. ü is written ``v`` (女 → ``nv``), as on every pinyin
  keyboard. Other characters (spaces, punctuation, symbols) are dropped.
* Readings come from pypinyin with its phrase dictionary plus CC-CEDICT's
  phrases (pypinyin-dict), loaded lazily once per process, so heteronyms get
  the reading of the phrase they are in (银行 ``yinhang``, 还款 ``huankuan``).
  Where the two dictionaries read a phrase differently, both readings are
  kept, pypinyin's first (each is wrong somewhere: CC-CEDICT reads 劲爆
  *jingbao*, pypinyin 还款 *haikuan*). Where a phrase has several readings,
  the keys hold the first and variants that change one character at a time,
  at most :data:`MAX_VARIANTS` keys of each kind. A character outside any
  phrase gets its usual reading only: its rare ones would be noise.
* :func:`typed_key` converts what the shopper typed the same way (characters
  to their first reading, Latin and digits kept, everything else dropped:
  "pao x" → ``paox``). It returns ``""`` when the input has no Latin letter:
  text typed in characters is matched as text, never by its sound, so 手机
  does not suggest its homophone 首级.
* Pure Python (pypinyin), no model: safe on the request path.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Most full-pinyin (and most initials) keys indexed per suggestion.
MAX_VARIANTS = 4

# CJK Unified Ideographs (with extension A and the compatibility block) and 〇.
_HANZI = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANZI_RE = re.compile(f"[{_HANZI}]")
_RUN_RE = re.compile(f"([{_HANZI}]+)")
_NOT_LATIN_RE = re.compile(r"[^a-z0-9]+")
_LATIN_LETTER_RE = re.compile(r"[a-z]")

_load_lock = threading.Lock()
_loaded = False


def has_hanzi(text: str) -> bool:
    """Whether ``text`` contains a Chinese character."""
    return bool(text) and not text.isascii() and _HANZI_RE.search(text) is not None


def _ensure_loaded() -> None:
    """Load CC-CEDICT's phrase readings into pypinyin, once per process."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        try:
            from pypinyin_dict.phrase_pinyin_data import cc_cedict
        except ImportError:  # pragma: no cover - a dependency, but degrade if absent
            logger.warning("suggestions: pypinyin-dict is not installed; pinyin uses pypinyin's own phrases only")
        else:
            _merge_phrases(cc_cedict.phrases_dict)
        _loaded = True


def _merge_phrases(extra: dict[str, list[list[str]]]) -> None:
    """Add phrase readings to pypinyin's, keeping its own reading first where
    both dictionaries know a phrase, and each character's usual reading as an
    alternative where only the added dictionary knows it."""
    from pypinyin import load_phrases_dict
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

    merged: dict[str, list[list[str]]] = {}
    for phrase, readings in extra.items():
        own = PHRASES_DICT.get(phrase)
        if len(phrase) != len(readings):
            if own is None:
                merged[phrase] = readings
        elif own is None:
            usual = [PINYIN_DICT.get(ord(ch), "").split(",")[0] for ch in phrase]
            merged[phrase] = [list(dict.fromkeys([*r, u] if u else r)) for r, u in zip(readings, usual, strict=True)]
        elif own != readings:
            merged[phrase] = [list(dict.fromkeys([*a, *b])) for a, b in zip(own, readings, strict=True)]
    load_phrases_dict(merged)


@functools.lru_cache(maxsize=65536)
def _readings(run: str) -> tuple[tuple[str, ...], ...]:
    """Toneless readings of each character of a run of Chinese characters,
    the most likely one (in context) first."""
    from pypinyin import Style, lazy_pinyin, pinyin
    from pypinyin.constants import PHRASES_DICT
    from pypinyin.seg.mmseg import seg

    _ensure_loaded()
    out = []
    for word in seg.cut(run):
        if len(word) > 1 and word in PHRASES_DICT:
            # A phrase: every reading the dictionaries give it.
            for options in pinyin(word, style=Style.NORMAL, heteronym=True, errors="ignore"):
                seen = tuple(dict.fromkeys(o for o in options if o and o.isascii()))
                out.append(seen or ("",))
        else:
            # A character on its own: its usual reading only. Its rare ones
            # (包 pao, 亨 peng) would make "px" suggest 包鞋 and 亨鲜.
            out.extend((syllable,) for syllable in lazy_pinyin(word, style=Style.NORMAL, errors="ignore"))
    return tuple(out)


def _pieces(text: str) -> list[tuple[str, tuple[tuple[str, ...], ...] | None]]:
    """``text`` cut into Chinese runs (with their readings) and Latin runs
    (letters and digits only, ``None`` readings)."""
    pieces: list[tuple[str, tuple[tuple[str, ...], ...] | None]] = []
    for i, part in enumerate(_RUN_RE.split(text.lower())):
        if not part:
            continue
        if i % 2:
            pieces.append((part, _readings(part)))
        else:
            latin = _NOT_LATIN_RE.sub("", part)
            if latin:
                pieces.append((latin, None))
    return pieces


@dataclass(frozen=True)
class PinyinKeys:
    """The extra keys of one suggestion; both empty when it has no Chinese."""

    full: tuple[str, ...] = ()
    initials: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.full)


def _spell(pieces, choice: dict[tuple[int, int], str]) -> tuple[str, str]:
    full, initials = [], []
    for p, (latin, readings) in enumerate(pieces):
        if readings is None:
            full.append(latin)
            initials.append(latin)
            continue
        for c, options in enumerate(readings):
            syllable = choice.get((p, c), options[0])
            full.append(syllable)
            initials.append(syllable[:1])
    return "".join(full), "".join(initials)


def index_keys(text: str, max_variants: int = MAX_VARIANTS) -> PinyinKeys:
    """Full-pinyin and initials keys of a suggestion (see the module contract).

    Args:
        text: The suggestion text (any form; it is lower-cased).
        max_variants: Most keys of each kind.

    Returns:
        The keys, first reading first; empty keys when ``text`` has no
        Chinese character.
    """
    if not has_hanzi(text):
        return PinyinKeys()
    pieces = _pieces(text)
    choices: list[dict[tuple[int, int], str]] = [{}]
    for p, (_latin, readings) in enumerate(pieces):
        for c, options in enumerate(readings or ()):
            for alternative in options[1:]:
                choices.append({(p, c): alternative})
    full: dict[str, None] = {}
    initials: dict[str, None] = {}
    for choice in choices:
        f, i = _spell(pieces, choice)
        if f and len(full) < max_variants:
            full.setdefault(f, None)
        if i and len(initials) < max_variants:
            initials.setdefault(i, None)
        if len(full) >= max_variants and len(initials) >= max_variants:
            break
    return PinyinKeys(tuple(full), tuple(initials))


def typed_key(prefix: str) -> str:
    """What the shopper typed, as a full-pinyin or initials key to complete
    (see the module contract): ``""`` when it has no Latin letter.

    Args:
        prefix: The typed text (normalised or not).

    Returns:
        The key, e.g. ``"paox"`` for "pao x" and ``"iphoneshoujik"`` for
        "iphone手机k".
    """
    text = (prefix or "").lower()
    if not _LATIN_LETTER_RE.search(text):
        return ""
    if not has_hanzi(text):
        return _NOT_LATIN_RE.sub("", text)
    return _spell(_pieces(text), {})[0]


def pinyin_enabled(backend) -> bool:
    """Whether ``backend`` indexes and matches pinyin keys now: it declares
    ``supports_pinyin`` and ``SUGGESTIONS_PINYIN`` is not ``"off"``."""
    from ..conf import app_settings

    return bool(getattr(backend, "supports_pinyin", False)) and app_settings.PINYIN != "off"
