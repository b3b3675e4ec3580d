"""The reference reading of a held-out query: what a shopper is taken to type.

There is no log of what Taobao shoppers typed, so the typed pinyin of a query
comes from a second converter that shares neither dictionary nor segmenter
with the app's (:mod:`suggestions.nlp.pinyin`: pypinyin's phrases plus
CC-CEDICT, pypinyin's own segmentation): pypinyin with pypinyin-dict's
``large_pinyin`` phrase data, over words cut by jieba. Where the two disagree,
the app is measured against the reference, right or wrong.

Loading ``large_pinyin`` changes pypinyin's tables for the whole process, so
:func:`reference_tokens` runs in a separate (spawned) process.
"""

from __future__ import annotations

import re

_HANZI_RUN_RE = re.compile("([\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_LATIN_RE = re.compile(r"[a-z0-9]+")


def reference_tokens(queries: list[str]) -> list[list[tuple[str, bool]]]:
    """For each query, its syllables (toneless) and Latin words, in order.

    Args:
        queries: Normalised queries.

    Returns:
        One list per query of ``(token, is_latin)``, e.g. ``[("tasco", True),
        ("wang", False), ("yuan", False), ("jing", False)]``.
    """
    import jieba
    from pypinyin import lazy_pinyin
    from pypinyin_dict.phrase_pinyin_data import large_pinyin

    jieba.setLogLevel(60)
    large_pinyin.load()
    out = []
    for query in queries:
        tokens: list[tuple[str, bool]] = []
        for i, part in enumerate(_HANZI_RUN_RE.split(query.lower())):
            if not part:
                continue
            if i % 2:
                tokens += [(t, False) for t in lazy_pinyin(jieba.lcut(part), errors="ignore") if t]
            else:
                tokens += [(t, True) for t in _LATIN_RE.findall(part)]
        out.append(tokens)
    return out
