"""Dictionary and regex entity tagging: the cheap, synchronous half of query
understanding.

A :class:`Gazetteer` maps phrases to an entity label and a canonical value
("startech" → ``brand`` "StarTech.com", "黑色" → ``color`` "black"). Phrases
come from three sources, in increasing precedence when two name the same phrase:

1. built-in lists of colours, materials, audiences and a few Chinese product
   words (English and Chinese; values are English so they meet the catalog);
2. the catalog: brands, product types, model numbers, and colour / material
   attribute values (:meth:`Gazetteer.add_document`);
3. merchandisers' reviewed labels (:class:`~suggestions.models.QueryLabel`
   entity spans, :meth:`Gazetteer.add_query_label`).

Within one source the phrase seen on more products wins.

Contracts of :meth:`Gazetteer.tag`:
* Returns :class:`~suggestions.nlp.types.Entity` objects with character offsets
  into the text as given (``text[e.start:e.end] == e.text``), sorted by
  ``start`` and non-overlapping.
* Matching is case-insensitive and width-insensitive (full-width "ＨＰ" is "hp");
  runs of whitespace in the text match one space of a phrase.
* A phrase that starts (ends) with a Latin letter or digit only matches where
  the text has a word boundary there: "hp" is not found inside "hpe" or
  "hp15". Han characters match at any position ("华为手机" → 华为, 手机).
* Overlaps are resolved leftmost-longest across dictionary and regex matches;
  for the same span: label > regex rule > catalog > built-in.
* Regex rules tag ``price_range`` (values ``"<=100"``, ``">=500"``,
  ``"100-200"``, or ``"50"`` for an exact amount), ``quantity`` (value: the
  count, e.g. ``"6"``) and ``size`` (value: number and canonical unit, e.g.
  ``"15.6 inch"``, ``"1 tb"``, or a letter size ``"xl"``). Deal words such as
  "cheap"/"便宜" are not prices; intents deal with them (:mod:`.rules`).

Persistence: :meth:`Gazetteer.save` writes JSON atomically (temp file +
rename); :func:`get_gazetteer` loads ``<MODEL_DIR>/gazetteer.json`` once per
process and reloads it when the file's mtime or size changes, so a worker that
rebuilds it (:func:`build_gazetteer`) updates every web process without a
restart. Without a file, a gazetteer of the built-in lists is served.

No torch or transformers import happens here: the web process imports it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .language import is_han
from .types import Entity

logger = logging.getLogger(__name__)

__all__ = [
    "Gazetteer",
    "GazetteerEntry",
    "GAZETTEER_FILENAME",
    "build_gazetteer",
    "fold",
    "gazetteer_path",
    "get_gazetteer",
    "regex_entities",
]

GAZETTEER_FILENAME = "gazetteer.json"
_FORMAT = "shop_suggestions.gazetteer"
_VERSION = 1

SOURCE_BUILTIN = "builtin"
SOURCE_CATALOG = "catalog"
SOURCE_LABEL = "label"
#: Precedence of sources when two name the same phrase (higher wins).
_SOURCE_RANK = {SOURCE_BUILTIN: 0, SOURCE_CATALOG: 1, SOURCE_LABEL: 2}
#: Tie-break between labels of one source seen equally often (higher wins):
#: a brand name is a stronger signal than a generic word.
_LABEL_RANK = {"brand": 5, "model_number": 4, "product_type": 3, "color": 2, "material": 1}

#: Scores of tagged entities: how often such a match is right, roughly. A
#: reviewed label is near-certain; catalog names are sometimes ordinary words
#: ("jumbo", "chief"); built-in words and bare numbers are weaker still.
SCORE_LABEL = 0.95
SCORE_CATALOG = 0.9
SCORE_BUILTIN = 0.8
SCORE_PRICE = 0.95
SCORE_QUANTITY = 0.9
SCORE_SIZE = 0.85
SCORE_SIZE_WEAK = 0.6  # a bare half size such as "10.5"

# Priorities of candidate kinds for an identical span (higher wins).
_PRIO = {SOURCE_LABEL: 4, "price_range": 3.5, "quantity": 3, "size": 2.5, SOURCE_CATALOG: 2, SOURCE_BUILTIN: 1}
_SOURCE_SCORE = {SOURCE_LABEL: SCORE_LABEL, SOURCE_CATALOG: SCORE_CATALOG, SOURCE_BUILTIN: SCORE_BUILTIN}

_END = ""  # key of a trie node's payload; never a character of a phrase

# --------------------------------------------------------------------------------------
# Folding: case- and width-insensitive text of the same length as the original, so
# offsets found in the folded text are offsets into the original.
# --------------------------------------------------------------------------------------

_EXTRA_FOLD = {"’": "'", "‘": "'", "`": "'", "´": "'", "“": '"', "”": '"', "″": '"', "–": "-", "—": "-"}


def _fold_char(char: str) -> str:
    if char.isascii():
        return char.lower()
    if char in _EXTRA_FOLD:
        return _EXTRA_FOLD[char]
    folded = unicodedata.normalize("NFKC", char).lower()
    # Keep one character per character: "ﬁ" → "fi" or "İ".lower() (two code
    # points) would shift every later offset.
    return folded if len(folded) == 1 else char.lower() if len(char.lower()) == 1 else char


def fold(text: str) -> str:
    """Case- and width-fold ``text`` character by character.

    Args:
        text: Any text.

    Returns:
        A string of the same length (so offsets carry over), lower-cased and
        NFKC-folded where a character folds to one character ("Ｔ" → "t",
        "ＵＳＢ" → "usb"), with typographic quotes and dashes made ASCII.
    """
    if text.isascii():  # the common case, and what _fold_char does to each ASCII character
        return text.lower()
    return "".join(_fold_char(c) for c in text)


def _fold_phrase(phrase: str) -> str:
    return " ".join(fold(phrase).split())


def _is_word(char: str) -> bool:
    """A character of a Latin-style word (letters and digits, not Han)."""
    return char.isalnum() and not is_han(char)


# --------------------------------------------------------------------------------------
# Built-in lists (phrase → canonical value)
# --------------------------------------------------------------------------------------

BUILTIN_COLORS: dict[str, str] = {
    **{c: c for c in (
        "black white red green blue yellow orange pink purple brown grey silver gold beige "
        "navy teal turquoise violet cyan magenta maroon burgundy khaki ivory cream coral "
        "lavender mint olive charcoal multicolour"
    ).split()},
    "gray": "grey", "multicolor": "multicolour", "multi color": "multicolour", "multi colour": "multicolour",
    "navy blue": "navy", "rose gold": "rose gold", "space gray": "space grey", "space grey": "space grey",
    "dark blue": "dark blue", "light blue": "light blue", "sky blue": "sky blue", "royal blue": "royal blue",
    "dark green": "dark green", "light green": "light green", "dark grey": "dark grey", "dark gray": "dark grey",
    "light grey": "light grey", "light gray": "light grey", "hot pink": "hot pink", "off white": "off white",
    "黑色": "black", "白色": "white", "红色": "red", "绿色": "green", "蓝色": "blue", "黄色": "yellow",
    "橙色": "orange", "橘色": "orange", "粉色": "pink", "粉红色": "pink", "紫色": "purple", "棕色": "brown",
    "咖啡色": "brown", "灰色": "grey", "银色": "silver", "金色": "gold", "米色": "beige", "米白色": "off white",
    "玫瑰金": "rose gold", "透明": "transparent", "藏青色": "navy", "深蓝色": "dark blue", "浅蓝色": "light blue",
    "天蓝色": "sky blue", "卡其色": "khaki", "酒红色": "burgundy", "深灰色": "dark grey", "浅灰色": "light grey",
    "彩色": "multicolour",
}

BUILTIN_MATERIALS: dict[str, str] = {
    **{m: m for m in (
        "leather cotton wool cashmere silk linen polyester nylon plastic metal steel aluminium wood "
        "bamboo glass ceramic porcelain rubber silicone titanium denim suede canvas velvet fleece "
        "acrylic pvc spandex"
    ).split()},
    "genuine leather": "leather", "faux leather": "faux leather", "vegan leather": "faux leather",
    "merino wool": "merino wool", "stainless steel": "stainless steel", "aluminum": "aluminium",
    "wooden": "wood", "solid wood": "solid wood", "carbon fiber": "carbon fibre", "carbon fibre": "carbon fibre",
    "真皮": "leather", "皮革": "leather", "牛皮": "cowhide", "羊皮": "sheepskin", "纯棉": "cotton",
    "全棉": "cotton", "棉质": "cotton", "羊毛": "wool", "羊绒": "cashmere", "真丝": "silk", "丝绸": "silk",
    "亚麻": "linen", "涤纶": "polyester", "尼龙": "nylon", "塑料": "plastic", "金属": "metal",
    "不锈钢": "stainless steel", "铝合金": "aluminium", "实木": "solid wood", "木质": "wood", "玻璃": "glass",
    "陶瓷": "ceramic", "橡胶": "rubber", "硅胶": "silicone", "碳纤维": "carbon fibre", "钛合金": "titanium",
    "帆布": "canvas", "丝绒": "velvet",
}

BUILTIN_AUDIENCES: dict[str, str] = {
    "men": "men", "mens": "men", "men's": "men", "male": "men",
    "women": "women", "womens": "women", "women's": "women", "female": "women", "ladies": "women",
    "ladies'": "women",
    "boys": "boys", "boys'": "boys", "boy's": "boys", "girls": "girls", "girls'": "girls", "girl's": "girls",
    "kids": "kids", "kid's": "kids", "kids'": "kids", "children": "kids", "childrens": "kids",
    "children's": "kids", "child": "kids",
    "baby": "baby", "babies": "baby", "infant": "baby", "infants": "baby", "toddler": "toddler",
    "toddlers": "toddler", "teen": "teen", "teens": "teen", "teenager": "teen", "unisex": "unisex",
    "adult": "adults", "adults": "adults", "seniors": "seniors",
    "男": "men", "男士": "men", "男款": "men", "男式": "men", "男装": "men", "男性": "men", "男生": "men",
    "女": "women", "女士": "women", "女款": "women", "女式": "women", "女装": "women", "女性": "women",
    "女生": "women", "儿童": "kids", "童装": "kids", "孩子": "kids", "小孩": "kids", "男童": "boys",
    "女童": "girls", "宝宝": "baby", "婴儿": "baby", "婴幼儿": "baby", "中老年": "seniors", "老人": "seniors",
    "学生": "students", "情侣": "couples", "孕妇": "maternity",
}

#: Chinese words for product types the demo catalog sells, with the catalog's
#: (English) type as value, so that Chinese queries meet an English catalog.
BUILTIN_PRODUCT_TYPES_ZH: dict[str, str] = {
    "笔记本电脑": "notebook", "笔记本": "notebook", "鼠标": "mouse", "键盘": "keyboard", "耳机": "headphones",
    "打印机": "printer", "显示器": "monitor", "硒鼓": "toner cartridge", "墨盒": "ink cartridge",
    "数据线": "cable", "网线": "networking cable", "路由器": "router", "交换机": "network switch",
    "投影仪": "projector", "内存条": "memory module", "硬盘": "hard disk drive", "移动硬盘": "external hard drive",
    "显卡": "graphics card", "主板": "motherboard", "处理器": "processor", "电池": "battery",
    "充电器": "power adapter", "电源": "power supply", "音箱": "speaker", "摄像头": "webcam", "手机": "mobile phone",
    "平板电脑": "tablet", "电视": "tv", "咖啡机": "coffee maker", "电脑包": "notebook case", "相纸": "photo paper",
}

# --------------------------------------------------------------------------------------
# Regex rules (run on folded text)
# --------------------------------------------------------------------------------------

# A number: "1,299.99", "15.6", "2k" (thousands). The left boundary keeps numbers
# inside model codes ("wa860", "v7") and decimals ("3.5") from being cut.
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:k(?![a-z]))?"
_LB = r"(?<![a-z0-9.,/\-_$€£¥])"
_RB = r"(?![a-z0-9%])"
_CUR = r"[$€£¥]"
_CUR_POST = r"(?:\s?(?:dollars?|bucks|usd|eur|euros?|rmb|yuan|元|块钱|块|€)(?![a-z]))"
_AMT = rf"(?P<c1{{i}}>{_CUR}\s?)?(?P<n{{i}}>{_NUM})(?P<c2{{i}}>{_CUR_POST})?"
_ZH_CUR = r"(?:元|块钱|块)"

_UPPER_WORDS = (r"under|below|less\s+than|cheaper\s+than|lower\s+than|up\s+to|no\s+more\s+than|"
                r"not\s+more\s+than|at\s+most|<=|<|≤")
_LOWER_WORDS = r"over|above|more\s+than|greater\s+than|higher\s+than|at\s+least|starting\s+at|>=|>|≥"


def _amt(i: int, boundary: bool = True) -> str:
    # The second amount of a range follows its separator ("100-200"), so it
    # takes no left boundary (which refuses a "-" before the number).
    return (_LB if boundary else "") + _AMT.replace("{i}", str(i))


_PRICE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("range", re.compile(rf"(?<![a-z])between\s+{_amt(1)}\s+and\s+{_amt(2, False)}{_RB}")),
    ("range", re.compile(rf"{_amt(1)}\s*(?:-|~|to|到|至)\s*{_amt(2, False)}{_RB}")),
    ("upper", re.compile(rf"(?<![a-z])(?:{_UPPER_WORDS})\s*{_amt(1)}{_RB}")),
    ("lower", re.compile(rf"(?<![a-z])(?:{_LOWER_WORDS})\s*{_amt(1)}{_RB}")),
    ("upper", re.compile(rf"{_amt(1)}\s+(?:and|or)\s+(?:under|below|less)(?![a-z])")),
    ("lower", re.compile(rf"{_amt(1)}\s+(?:and|or)\s+(?:up|above|over|more)(?![a-z])")),
    ("lower", re.compile(rf"{_LB}(?P<c11>{_CUR}\s?)(?P<n1>{_NUM})\+")),
    # Chinese: "100元以下", "200以内", "低于300元", "500元以上", "超过1000"
    ("upper", re.compile(rf"{_LB}(?P<n1>{_NUM})\s*{_ZH_CUR}?\s*(?:以下|以内|之内)")),
    ("upper", re.compile(rf"(?:低于|不超过|不到|少于|小于)\s*(?P<n1>{_NUM})\s*{_ZH_CUR}?")),
    ("lower", re.compile(rf"{_LB}(?P<n1>{_NUM})\s*{_ZH_CUR}?\s*以上")),
    ("lower", re.compile(rf"(?:高于|超过|大于|多于)\s*(?P<n1>{_NUM})\s*{_ZH_CUR}?")),
    ("around", re.compile(rf"{_LB}(?P<n1>{_NUM})\s*{_ZH_CUR}\s*左右")),
    # An amount with a currency: "$50", "50 dollars", "99元".
    ("amount", re.compile(rf"{_amt(1)}{_RB}")),
]

# Words that, right after a number, make it a measure or a time, not money:
# "under 20 inch", "up to 64 gb", "2-3 years", "10-20 pack".
_UNIT_WORDS = (
    r"inch(?:es)?|in|ft|feet|foot|cm|mm|m|meters?|metres?|km|tb|gb|mb|kb|kg|g|grams?|lbs?|pounds?|oz|ml|"
    r"l|liters?|litres?|w|watts?|kw|mah|v|volts?|hz|khz|mhz|ghz|qt|quarts?|gal|gallons?|"
    r"pack|packs|pk|pcs|pc|pieces?|count|ct|pairs?|sets?|rolls?|sheets?|pages?|"
    r"years?|yrs?|months?|weeks?|days?|hours?|hrs?|minutes?|mins?|seconds?|secs?|ppm|dpi|rpm|x|%|"
    r"寸|英寸|码|号|升|毫升|克|千克|公斤|斤|米|厘米|毫米|瓦|岁|个月|天|件|个|只|支|条|双|套|包|盒|瓶|片|张"
)
_UNIT_AFTER_RE = re.compile(rf"\s*(?:{_UNIT_WORDS})(?![a-z])")

_ZH_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_QTY_UNITS_EN = r"packs?|pk|pcs|pc|pieces?|count|ct|pairs?|rolls?|sets?|bottles?|cans|units?|boxes"
_QTY_UNITS_ZH = r"件套|件|个|只|支|条|双|套|包|盒|瓶|片|张|袋|卷|台|箱|罐|枚"
_QTY_RULES: list[re.Pattern[str]] = [
    re.compile(rf"{_LB}(?P<q>\d+)\s*-?\s*(?:{_QTY_UNITS_EN})(?![a-z])"),
    re.compile(r"(?<![a-z])(?:pack|set|box|case|bundle|lot)\s+of\s+(?P<q>\d+)(?![a-z0-9])"),
    re.compile(rf"{_LB}(?P<q>\d+|[一二两三四五六七八九十]{{1,3}})\s*(?:{_QTY_UNITS_ZH})"),
]

_SIZE_UNIT_CANON = {
    '"': "inch", "''": "inch", "inch": "inch", "inches": "inch", "in": "inch", "-inch": "inch",
    "ft": "ft", "feet": "ft", "foot": "ft", "cm": "cm", "mm": "mm", "m": "m", "meter": "m", "meters": "m",
    "metre": "m", "metres": "m", "tb": "tb", "gb": "gb", "mb": "mb", "kg": "kg", "g": "g", "gram": "g",
    "grams": "g", "lb": "lb", "lbs": "lb", "oz": "oz", "ml": "ml", "l": "l", "liter": "l", "liters": "l",
    "litre": "l", "litres": "l", "w": "w", "watt": "w", "watts": "w", "kw": "kw", "mah": "mah", "v": "v",
    "volt": "v", "volts": "v", "hz": "hz", "khz": "khz", "mhz": "mhz", "ghz": "ghz", "qt": "qt",
    "quart": "qt", "quarts": "qt", "gal": "gal", "gallon": "gal", "gallons": "gal",
    "寸": "inch", "英寸": "inch", "码": "", "号": "", "升": "l", "毫升": "ml", "克": "g", "千克": "kg",
    "公斤": "kg", "斤": "jin", "米": "m", "厘米": "cm", "毫米": "mm", "瓦": "w", "毫安": "mah", "毫安时": "mah",
}
_SIZE_UNITS_EN = (
    r'"|\'\'|-inch|inch(?:es)?|in(?!\s*(?:\d|one(?![a-z])))|ft|feet|foot|cm|mm|meters?|metres?|m|tb|gb|mb|'
    r"kg|grams?|g|lbs?|oz|ml|liters?|litres?|l|watts?|w|kw|mah|volts?|v|ghz|mhz|khz|hz|quarts?|qt|gallons?|gal"
)
_SIZE_UNITS_ZH = r"英寸|寸|码|号|毫升|升|千克|公斤|克|斤|厘米|毫米|米|瓦|毫安时|毫安"
_LETTER_SIZES = {"xxs": "xxs", "xs": "xs", "xl": "xl", "xxl": "xxl", "xxxl": "xxxl", "2xl": "xxl", "3xl": "xxxl",
                 "4xl": "4xl", "5xl": "5xl", "x-large": "xl", "xx-large": "xxl", "x-small": "xs",
                 "extra large": "xl", "extra small": "xs", "plus size": "plus size"}
_SIZE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("dims", re.compile(rf"{_LB}(?P<a>\d+(?:\.\d+)?)\s*x\s*(?P<b>\d+(?:\.\d+)?)(?:\s*x\s*(?P<c>\d+(?:\.\d+)?))?"
                        rf"(?:\s*(?P<u>{_SIZE_UNITS_EN}))?(?![a-z0-9])")),
    ("unit", re.compile(rf"{_LB}(?P<n>\d+(?:\.\d+)?)\s?(?P<u>{_SIZE_UNITS_EN})(?![a-z0-9])")),
    ("unit", re.compile(rf"{_LB}(?P<n>\d+(?:\.\d+)?)\s?(?P<u>{_SIZE_UNITS_ZH})")),
    ("letter", re.compile(r"(?<![a-z0-9\-])(?P<l>" + "|".join(sorted(map(re.escape, _LETTER_SIZES), key=len, reverse=True))
                          + r")(?![a-z0-9\-])")),
    ("sized", re.compile(r"(?<![a-z])size\s+(?P<n>\d+(?:\.\d+)?|xxs|xs|s|m|l|xl|xxl|xxxl|small|medium|large)(?![a-z0-9.])")),
    # A bare half size ("nike air 10.5"): only x.5 up to 20, which is a shoe or
    # clothing size far more often than anything else.
    ("half", re.compile(rf"{_LB}(?P<n>1?\d\.5)(?![a-z0-9.%])")),
]


def _number(text: str) -> float | None:
    text = text.replace(",", "").strip()
    mult = 1
    if text.endswith("k"):
        text, mult = text[:-1], 1000
    try:
        return float(text) * mult
    except ValueError:
        return None


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _zh_or_int(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    # "十" = 10, "十二" = 12, "二十" = 20, "两" = 2
    total, current = 0, 0
    for ch in text:
        n = _ZH_NUMERALS.get(ch)
        if n is None:
            return None
        if n == 10:
            total += (current or 1) * 10
            current = 0
        else:
            current = n
    return total + current


def regex_entities(folded: str) -> list[tuple[int, int, str, str, float]]:
    """Candidate price, quantity and size spans found by the regex rules.

    Args:
        folded: The folded text (:func:`fold`); it has the length of the
            original, so the offsets are offsets into the original too.

    Returns:
        ``(start, end, label, value, score)`` candidates; they may overlap.
    """
    out: list[tuple[int, int, str, str, float]] = []
    for kind, pattern in _PRICE_RULES:
        for m in pattern.finditer(folded):
            if _UNIT_AFTER_RE.match(folded, m.end()):
                continue
            groups = m.groupdict()
            a = _number(groups["n1"])
            has_cur = bool(groups.get("c11") or groups.get("c21") or groups.get("c12") or groups.get("c22"))
            if a is None:
                continue
            if kind == "range":
                b = _number(groups["n2"])
                if b is None or b <= a:
                    continue
                # Without a currency, "2-3" or "2019-2020" is rarely a price.
                if not has_cur and not re.search(_ZH_CUR, m.group()) and (b < 10 or 1900 <= a <= 2100):
                    continue
                value = f"{_fmt(a)}-{_fmt(b)}"
            elif kind == "upper":
                value = f"<={_fmt(a)}"
            elif kind == "lower":
                value = f">={_fmt(a)}"
            else:  # "around" (N元左右) or "amount" ($N, N dollars)
                if kind == "amount" and not has_cur:
                    continue  # a bare number is no price
                value = _fmt(a)
            out.append((m.start(), m.end(), "price_range", value, SCORE_PRICE))
    for pattern in _QTY_RULES:
        for m in pattern.finditer(folded):
            q = _zh_or_int(m.group("q"))
            if q is None or q <= 0:
                continue
            out.append((m.start(), m.end(), "quantity", str(q), SCORE_QUANTITY))
    for kind, pattern in _SIZE_RULES:
        for m in pattern.finditer(folded):
            score = SCORE_SIZE
            if kind == "dims":
                parts = [p for p in (m.group("a"), m.group("b"), m.group("c")) if p]
                unit = _SIZE_UNIT_CANON.get(m.group("u") or "", "")
                value = "x".join(parts) + (f" {unit}" if unit else "")
            elif kind == "unit":
                n = m.group("n")
                unit = _SIZE_UNIT_CANON.get(m.group("u"), m.group("u"))
                # "5g"/"4g" are network generations, not grams.
                if unit == "g" and float(n) < 10:
                    continue
                value = f"{n} {unit}" if unit else n
            elif kind == "letter":
                value = _LETTER_SIZES[m.group("l")]
            elif kind == "sized":
                value = m.group("n")
            else:
                if float(m.group("n")) > 20:
                    continue
                value, score = m.group("n"), SCORE_SIZE_WEAK
            out.append((m.start(), m.end(), "size", value, score))
    return out


# --------------------------------------------------------------------------------------
# The gazetteer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GazetteerEntry:
    """One phrase of a gazetteer.

    Attributes:
        phrase: the folded phrase (lower-case, single spaces).
        label: entity label.
        value: canonical value (catalog spelling, or English for built-ins).
        source: ``"builtin"``, ``"catalog"`` or ``"label"``.
        count: how many products (or labels) named it.
    """

    phrase: str
    label: str
    value: str
    source: str = SOURCE_CATALOG
    count: int = 1


_COLOR_KEY_RE = re.compile(r"(?:^|_)colou?rs?$")
_MATERIAL_KEY_RE = re.compile(r"(?:^|_)materials?$")
_PAREN_RE = re.compile(r"^(?P<main>[^()]+?)\s*\((?P<alt>[^()]+)\)$")
_PLURAL_IRREGULAR = {"mouse": "mice", "mice": "mouse", "knife": "knives", "knives": "knife", "lens": "lenses",
                     "lenses": "lens"}
#: Colour/material attribute values that are no names a shopper types for the
#: property ("Light", "Various") or that are ordinary words in queries
#: ("pet", "hips", "box": material codes in Icecat).
_ATTRIBUTE_STOPWORDS = frozenset({
    "light", "dark", "multi", "metallic", "various", "variable", "assorted colours", "gloss enhancer",
    "other", "mixed", "natural", "standard", "box", "carton", "pet", "hips", "pp", "gel", "synthetic",
    "polymer", "monotone", "pattern", "image",
})


def _plural_variants(phrase: str) -> list[str]:
    """Singular/plural of the last word: "headphones" ↔ "headphone"."""
    words = phrase.split(" ")
    last = words[-1]
    if not last.isalpha() or len(last) < 3:
        return []
    if last in _PLURAL_IRREGULAR:
        alts = [_PLURAL_IRREGULAR[last]]
    elif last.endswith("ies"):
        alts = [last[:-3] + "y"]
    elif last.endswith(("ses", "xes", "ches", "shes")):
        alts = [last[:-2]]
    elif last.endswith(("ss", "us", "is", "os", "as")):
        alts = [last + "es"]
    elif last.endswith("s"):
        alts = [last[:-1]]
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        alts = [last[:-1] + "ies"]
    elif last.endswith(("x", "ch", "sh")):
        alts = [last + "es"]
    else:
        alts = [last + "s"]
    return [" ".join(words[:-1] + [alt]) for alt in alts]


def _brand_variants(phrase: str) -> list[str]:
    """Spellings shoppers type for a brand: "tp-link" → "tp link", "tplink";
    "startech.com" → "startech"; "be quiet!" → "be quiet"."""
    out = []
    stripped = phrase.strip("!.,'\" ")
    if stripped != phrase:
        out.append(stripped)
    if stripped.endswith(".com"):
        out.append(stripped[:-4])
    if "-" in stripped:
        out += [stripped.replace("-", " "), stripped.replace("-", "")]
    return [v for v in out if len(v) >= 2]


def _model_variants(phrase: str) -> list[str]:
    """"tl-wa860re" → "tlwa860re": shoppers drop the separators of codes."""
    compact = re.sub(r"[\s\-./_]", "", phrase)
    return [compact] if compact != phrase and len(compact) >= 4 else []


def _usable_model_number(code: str) -> bool:
    """Model codes short or purely numeric ("85", "2024") would tag ordinary
    numbers; keep codes of 3+ characters with a letter and a digit, or long
    digit strings."""
    code = code.strip()
    has_alpha = any(c.isalpha() for c in code)
    has_digit = any(c.isdigit() for c in code)
    return (len(code) >= 3 and has_alpha and has_digit) or (not has_alpha and len(code) >= 5)


def _attribute_words(value: Any) -> list[str]:
    """Colour/material attribute values as words: "Black,Silver" → two;
    values with digits or longer than three words are not names."""
    if not isinstance(value, str):
        return []
    out = []
    for part in re.split(r"[,;/]", value):
        part = " ".join(part.split())
        if not part or any(c.isdigit() or c == "\\" for c in part) or len(part) > 40:
            continue
        if part.lower() in _ATTRIBUTE_STOPWORDS:
            continue
        if sum(c.isalpha() for c in part) < 3 or len(part.split()) > 3:
            continue
        out.append(part)
    return out


def _usable(phrase: str, key: tuple[str, str, str], count: int) -> bool:
    """Catalog product types of one short word seen on a single product are
    mostly extraction noise of the title heuristic ("cut", "gen", "born")."""
    label, _value, source = key
    return not (source == SOURCE_CATALOG and label == "product_type" and count < 2
                and phrase.isascii() and " " not in phrase and len(phrase) <= 4)


class Gazetteer:
    """Phrase → (label, canonical value) dictionary with regex rules.

    Args:
        builtins: Include the built-in colours, materials, audiences and
            Chinese product words (default True).
    """

    def __init__(self, *, builtins: bool = True) -> None:
        # phrase → Counter of (label, value, source) → count; resolved lazily.
        self._candidates: dict[str, Counter[tuple[str, str, str]]] = {}
        self._resolved: dict[str, GazetteerEntry] | None = None
        self._trie: dict[str, Any] | None = None
        self._lock = threading.Lock()
        if builtins:
            for table, label in ((BUILTIN_COLORS, "color"), (BUILTIN_MATERIALS, "material"),
                                 (BUILTIN_AUDIENCES, "audience"), (BUILTIN_PRODUCT_TYPES_ZH, "product_type")):
                for phrase, value in table.items():
                    self.add(phrase, label, value, source=SOURCE_BUILTIN, count=0)

    # -- building ----------------------------------------------------------------------

    def add(self, phrase: str, label: str, value: str = "", *, source: str = SOURCE_CATALOG, count: int = 1) -> bool:
        """Add a phrase.

        Args:
            phrase: The words as shoppers type them (folded and whitespace-collapsed here).
            label: Entity label.
            value: Canonical value; the phrase itself when empty.
            source: ``"builtin"``, ``"catalog"`` or ``"label"``.
            count: Weight (products or labels naming it).

        Returns:
            False when the phrase is unusable (empty, or a single Latin
            character, which would tag every "a"), True otherwise.
        """
        key = _fold_phrase(phrase or "")
        if not key or not label or source not in _SOURCE_RANK:
            return False
        if len(key) < 2 and not is_han(key):
            return False
        value = (value or "").strip() or " ".join((phrase or "").split())
        bucket = self._candidates.setdefault(key, Counter())
        bucket[(label, value, source)] += count  # a zero count still creates the key
        self._resolved = None
        self._trie = None
        return True

    def add_document(self, doc: Any) -> None:
        """Add the brand, product type, model number and colour/material attribute
        values of a catalog document (a :class:`~suggestions.adapter.ProductDocument`
        or any object/mapping with those fields)."""
        get = doc.get if isinstance(doc, Mapping) else lambda name, default="": getattr(doc, name, default)
        brand = str(get("brand", "") or "").strip()
        if brand:
            self.add(brand, "brand", brand)
            for variant in _brand_variants(_fold_phrase(brand)):
                self.add(variant, "brand", brand)
        product_type = str(get("product_type", "") or "").strip()
        if product_type and sum(c.isalpha() for c in product_type) >= 3:
            self.add(product_type, "product_type", product_type)
            for variant in _plural_variants(_fold_phrase(product_type)):
                self.add(variant, "product_type", product_type)
        model = str(get("model_number", "") or "").strip()
        if model and _usable_model_number(model):
            self.add(model, "model_number", model)
            for variant in _model_variants(_fold_phrase(model)):
                self.add(variant, "model_number", model)
        attributes = get("attributes", None) or {}
        if isinstance(attributes, Mapping):
            for key, raw in attributes.items():
                key = str(key).lower()
                if "number" in key:
                    continue
                if _COLOR_KEY_RE.search(key):
                    label = "color"
                elif _MATERIAL_KEY_RE.search(key):
                    label = "material"
                else:
                    continue
                for word in _attribute_words(raw):
                    m = _PAREN_RE.match(word)
                    if m:  # "Polyvinyl chloride (PVC)": both spellings
                        self.add(m.group("main"), label, m.group("main"))
                        self.add(m.group("alt"), label, m.group("main"))
                    else:
                        self.add(word, label, word)

    def add_query_label(self, query: str, entities: Iterable[Mapping[str, Any]]) -> int:
        """Add a merchandiser's reviewed spans (``QueryLabel.entities``).

        Price ranges and quantities are skipped: their numbers vary, the regex
        rules find them.

        Args:
            query: The text the offsets refer to.
            entities: ``{"label", "start", "end", "text"?, "value"?}`` dicts.

        Returns:
            How many phrases were added.
        """
        added = 0
        for ent in entities or ():
            try:
                label = str(ent["label"])
                start, end = int(ent["start"]), int(ent["end"])
            except (KeyError, TypeError, ValueError):
                continue
            if label in ("price_range", "quantity"):
                continue
            text = query[start:end] if 0 <= start < end <= len(query) else str(ent.get("text", ""))
            if self.add(text, label, str(ent.get("value") or "").strip() or text, source=SOURCE_LABEL):
                added += 1
        return added

    @classmethod
    def from_documents(cls, docs: Iterable[Any], labels: Iterable[Any] = (), *, builtins: bool = True) -> Gazetteer:
        """Build a gazetteer from catalog documents and reviewed labels.

        Args:
            docs: :class:`~suggestions.adapter.ProductDocument` objects (or mappings).
            labels: :class:`~suggestions.models.QueryLabel` rows, or mappings
                with ``query`` and ``entities``.
            builtins: Include the built-in lists.

        Returns:
            The gazetteer.
        """
        gaz = cls(builtins=builtins)
        for doc in docs:
            gaz.add_document(doc)
        for row in labels:
            if isinstance(row, Mapping):
                gaz.add_query_label(str(row.get("query", "")), row.get("entities") or ())
            else:
                gaz.add_query_label(row.query, row.entities or ())
        return gaz

    # -- resolved view ---------------------------------------------------------------------

    def _resolve(self) -> dict[str, GazetteerEntry]:
        resolved = self._resolved
        if resolved is None:
            resolved = {}
            for phrase, bucket in self._candidates.items():
                usable = [kv for kv in bucket.items() if _usable(phrase, *kv)]
                if not usable:
                    continue
                (label, value, source), count = max(
                    usable,
                    key=lambda kv: (_SOURCE_RANK[kv[0][2]], kv[1], _LABEL_RANK.get(kv[0][0], 0), kv[0][1]),
                )
                resolved[phrase] = GazetteerEntry(phrase, label, value, source, count)
            self._resolved = resolved
        return resolved

    def entries(self) -> Iterator[GazetteerEntry]:
        """The winning entry of every phrase, sorted by phrase."""
        resolved = self._resolve()
        for phrase in sorted(resolved):
            yield resolved[phrase]

    def lookup(self, phrase: str) -> GazetteerEntry | None:
        """The entry of ``phrase`` (folded first), or None."""
        return self._resolve().get(_fold_phrase(phrase))

    def values(self, label: str) -> set[str]:
        """Canonical values of one label."""
        return {e.value for e in self._resolve().values() if e.label == label}

    def segmenter_words(self) -> set[str]:
        """Brand and product-type phrases and values to give :func:`segment.add_words`."""
        out: set[str] = set()
        for e in self._resolve().values():
            if e.label in ("brand", "product_type", "model_number", "product_name"):
                out.add(e.phrase)
                out.add(e.value)
        return out

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and _fold_phrase(phrase) in self._candidates

    # -- tagging -------------------------------------------------------------------------

    def compile(self) -> None:
        """Build the matching trie now (otherwise done on the first :meth:`tag`)."""
        self._compiled()

    def _compiled(self) -> dict[str, Any]:
        trie = self._trie
        if trie is None:
            with self._lock:
                trie = self._trie
                if trie is None:
                    trie = {}
                    for phrase, entry in self._resolve().items():
                        node = trie
                        for ch in phrase:
                            node = node.setdefault(ch, {})
                        node[_END] = entry
                    self._trie = trie
        return trie

    def _dictionary_candidates(self, folded: str) -> list[tuple[int, int, GazetteerEntry]]:
        trie = self._compiled()
        n = len(folded)
        out = []
        for i in range(n):
            ch = folded[i]
            if ch.isspace() or ch not in trie:
                continue
            if _is_word(ch) and i > 0 and _is_word(folded[i - 1]):
                continue  # not at a word start: "hp" inside "ahp"
            node = trie
            j = i
            while j < n:
                ch = folded[j]
                if ch.isspace():
                    k = j
                    while k < n and folded[k].isspace():
                        k += 1
                    node = node.get(" ")
                    if node is None:
                        break
                    j = k
                    continue
                node = node.get(ch)
                if node is None:
                    break
                j += 1
                entry = node.get(_END)
                # A match ending in a Latin word character needs a word end after it.
                if entry is not None and not (_is_word(folded[j - 1]) and j < n and _is_word(folded[j])):
                    out.append((i, j, entry))
        return out

    def tag(self, text: str) -> list[Entity]:
        """Find entities in ``text``.

        Args:
            text: A query as typed.

        Returns:
            Non-overlapping entities sorted by ``start``, offsets into ``text``.
        """
        if not text:
            return []
        folded = fold(text)
        # (start, end, priority, label, value, score)
        cands: list[tuple[int, int, float, str, str, float]] = []
        for i, j, e in self._dictionary_candidates(folded):
            cands.append((i, j, _PRIO[e.source], e.label, e.value, _SOURCE_SCORE[e.source]))
        for i, j, label, value, score in regex_entities(folded):
            cands.append((i, j, _PRIO[label], label, value, score))
        # Leftmost, then longest, then the higher priority.
        cands.sort(key=lambda c: (c[0], -(c[1] - c[0]), -c[2]))
        entities: list[Entity] = []
        last_end = 0
        for start, end, _prio, label, value, score in cands:
            if start < last_end:
                continue
            # Trim whitespace a regex may have swallowed at the edges.
            while end > start and text[end - 1].isspace():
                end -= 1
            entities.append(Entity(label=label, text=text[start:end], start=start, end=end, value=value, score=score))
            last_end = end
        return entities

    # -- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the winning entry of every non-built-in phrase."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "entries": [[e.phrase, e.label, e.value, e.source, e.count]
                        for e in self.entries() if e.source != SOURCE_BUILTIN],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, builtins: bool = True) -> Gazetteer:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: When ``data`` is not a gazetteer of a known version.
        """
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(f"not a gazetteer of format {_FORMAT} v{_VERSION}")
        gaz = cls(builtins=builtins)
        for phrase, label, value, source, count in data.get("entries", ()):
            gaz.add(phrase, label, value, source=source, count=int(count))
        return gaz

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the gazetteer as JSON, atomically (readers never see half a file).

        Args:
            path: Target file; its folder is created when missing.
        """
        path = os.fspath(path)
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gazetteer-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, builtins: bool = True) -> Gazetteer:
        """Read a gazetteer written by :meth:`save`.

        Raises:
            OSError: When the file cannot be read.
            ValueError: When it is not a gazetteer (bad JSON or format).
        """
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return cls.from_dict(data, builtins=builtins)


# --------------------------------------------------------------------------------------
# Process-wide gazetteer
# --------------------------------------------------------------------------------------

_cache_lock = threading.Lock()
# (path, (mtime_ns, size) or None when the file is missing, gazetteer)
_cache: tuple[str, tuple[int, int] | None, Gazetteer] | None = None


def gazetteer_path() -> str:
    """``<SUGGESTIONS_MODEL_DIR>/gazetteer.json``."""
    from ..conf import app_settings

    return os.path.join(app_settings.MODEL_DIR, GAZETTEER_FILENAME)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _install(path: str, stamp: tuple[int, int] | None, gaz: Gazetteer) -> None:
    global _cache
    gaz.compile()
    from .segment import add_words

    add_words(gaz.segmenter_words())
    _cache = (path, stamp, gaz)


def get_gazetteer() -> Gazetteer:
    """The process's gazetteer, loaded from ``gazetteer_path()``.

    One ``os.stat`` per call: the file is re-read when its mtime or size
    changed (or the configured path did). Without a file, or when it cannot
    be read, a gazetteer of the built-in lists is used (a broken file is
    logged once per change, and the previously loaded gazetteer kept).

    Returns:
        A compiled gazetteer; treat it as read-only.
    """
    path = gazetteer_path()
    stamp = _stamp(path)
    cached = _cache
    if cached is not None and cached[0] == path and cached[1] == stamp:
        return cached[2]
    with _cache_lock:
        cached = _cache
        if cached is not None and cached[0] == path and cached[1] == stamp:
            return cached[2]
        if stamp is None:
            gaz = Gazetteer()
        else:
            try:
                gaz = Gazetteer.load(path)
            except (OSError, ValueError) as exc:
                logger.warning("Cannot load gazetteer %s: %s", path, exc)
                gaz = cached[2] if cached is not None and cached[0] == path else Gazetteer()
        _install(path, stamp, gaz)
        return gaz


def reset_gazetteer_cache() -> None:
    """Forget the process's gazetteer (tests)."""
    global _cache
    with _cache_lock:
        _cache = None


def build_gazetteer(save: bool = True, path: str | None = None) -> Gazetteer:
    """Build the gazetteer from the configured adapter's documents and the
    reviewed :class:`~suggestions.models.QueryLabel` rows.

    Args:
        save: Write it to ``path`` and make it this process's gazetteer.
        path: Target file; ``gazetteer_path()`` by default.

    Returns:
        The new gazetteer. Its brands and product types are also added to the
        segmenter's user dictionary.
    """
    from ..adapter import get_adapter
    from ..models import QueryLabel
    from .segment import add_words

    labels = QueryLabel.objects.exclude(entities=[]).only("query", "entities").iterator(chunk_size=1000)
    gaz = Gazetteer.from_documents(get_adapter().iter_documents(), labels)
    if save:
        target = path or gazetteer_path()
        gaz.save(target)
        with _cache_lock:
            _install(target, _stamp(target), gaz)
    else:
        add_words(gaz.segmenter_words())
    return gaz
