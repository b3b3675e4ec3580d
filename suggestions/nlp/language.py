"""Which script a query is written in: English (Latin), Chinese (Han) or both.

Contract: :func:`detect_language` returns ``"en"``, ``"zh"`` or ``"mixed"`` and
never raises. It counts Han characters and Latin letters only; digits,
punctuation and other scripts decide nothing, so a query of digits only (a
model number, "2024") or an empty one is ``"en"``. Pure Python, cheap enough
for the request path (one pass over the characters, no imports beyond the
standard library).
"""

from __future__ import annotations

import unicodedata

#: Code point ranges of Han ideographs: the unified block, extension A, the
#: compatibility ideographs and the supplementary planes (extensions B–G).
HAN_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DBF),    # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0x20000, 0x2EBEF),  # Extensions B–F
    (0x30000, 0x3134F),  # Extension G
)


def is_han(char: str) -> bool:
    """Tell whether ``char`` (one character) is a Han ideograph.

    Args:
        char: A single character.

    Returns:
        True for Chinese characters (hanzi), False for everything else,
        including CJK punctuation such as "，" and "（".
    """
    code = ord(char)
    if code < 0x3400:  # fast path: ASCII and every other script below the CJK blocks
        return False
    return any(lo <= code <= hi for lo, hi in HAN_RANGES)


def is_latin_letter(char: str) -> bool:
    """Tell whether ``char`` is a letter of the Latin script (ASCII or accented,
    half- or full-width).

    Args:
        char: A single character.

    Returns:
        True for "a", "É", "Ｔ"; False for digits, punctuation, Han, Cyrillic …
    """
    if char.isascii():
        return char.isalpha()
    if not char.isalpha():
        return False
    # unicodedata names Latin letters "LATIN SMALL LETTER …" and full-width ones
    # "FULLWIDTH LATIN CAPITAL LETTER …".
    return "LATIN" in unicodedata.name(char, "")


def detect_language(text: str) -> str:
    """Classify ``text`` by script.

    Rules (in order): Han characters and Latin letters both present →
    ``"mixed"`` ("iphone 15 手机壳", "T恤"); Han only → ``"zh"``; otherwise
    ``"en"`` (Latin only, digits only, empty, or other scripts).

    Args:
        text: A query as typed.

    Returns:
        ``"en"``, ``"zh"`` or ``"mixed"``.
    """
    han = latin = False
    for char in text or "":
        if not han and is_han(char):
            han = True
        elif not latin and is_latin_letter(char):
            latin = True
        if han and latin:
            return "mixed"
    return "zh" if han else "en"
