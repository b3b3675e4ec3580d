"""Cold-start suggestions: phrases a shopper would type, mined from the catalog alone.

A shop with no search history still needs a search box that completes "lap"
to "laptop bag" and "prin" to "laser printer". This module reads the host's
product documents (:class:`~suggestions.adapter.ProductDocument`) once and
returns phrases by *rule*, each with the number of products it describes:

* ``product_type``: the type of every product. A document's own
  ``product_type`` is used when it has one; the others get one derived from
  their title (then description): the trailing words of a noun run (letters
  only, no stop words, units, colours or codes) whose last word is a *head
  noun* of the catalog, that is the last word of explicit types, or a word
  that ends title segments in many products ("... Laptop Lock - Keyed" →
  "laptop lock"). The longest trailing phrase shared by enough products wins,
  and its shorter endings count too ("fiber optic cable" is also a "cable").
* ``type_word``: the first word of a multi-word type ("laptop" of "laptop
  lock", "hdmi" of "hdmi cable"): what a shopper types before the rest.
* ``brand`` and ``brand_type`` ("hp laser printer").
* ``type_attribute``: a word of a short attribute value that varies within
  the type, before the type ("laser printer" from ``print_technology:
  Laser``; "wireless mouse" from ``connectivity: Wireless``).
* ``product_name`` (when asked for): the leading words of a product's name
  ("call of duty", "call of duty modern warfare 3"), up to
  :data:`PRODUCT_NAME_WORDS` words, for catalogs whose titles are names
  (games, books, media) rather than specifications; ``"auto"`` asks for them
  when the median title has at most :data:`AUTO_PRODUCT_NAME_WORDS` words.
  A name describes the products whose titles start with it (one is enough)
  and may end on a number ("fifa 12"), never on a stop word.
* ``model_family``: the brand and the one or two words after it in titles
  that several products share ("hp laserjet pro", "samsung galaxy"), and the
  series alone when nearly all its products are that brand's ("galaxy").
  Words without a letter, measurements ("6 ft"), units and generic catalog
  words ("series") end a family, so no dangling fragment is kept.

Contracts:
* Generic: nothing here knows a shop; the word lists are small general
  English stop, unit and colour words.
* No phrase ends on a stop word, unit, number or measurement, and no phrase is
  made of those only.
* Every returned phrase returns products: each of its words occurs, as the
  search engines analyse text (split on non-alphanumerics, lower-cased,
  accents folded), in the searchable fields (title, brand, product type,
  model number, description) of at least ``min_products`` documents *together*
  (:class:`MatchIndex`); the engines' stemming only adds matches to that.
* One pass over the documents; memory grows with the catalog's vocabulary and
  a few short tuples per document.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .adapter import ProductDocument
from .text import normalize_query

#: General English function words: never the first or last word of a phrase.
STOP_WORDS = frozenset(
    """
    a an and or of for with without in into on onto to by from the at as per via vs x
    incl including inkl w wo not no non only also up over under this that these those
    is are be it its your you our we all any each new other others etc plus more most
    one two three four five six seven eight nine ten
    """.split()
)
#: Measurement units and counters that follow numbers ("6 ft", "1500 pages").
UNIT_WORDS = frozenset(
    """
    mm cm m km in inch inches ft feet foot yd g kg mg lb lbs oz l ml cl dl
    w kw mw v mv kv a ah mah wh kwh hz khz mhz ghz b kb mb gb tb pb kbps mbps gbps
    bit bits byte bytes dpi ppi ppm ipm rpm db dbi ohm ohms lm lux k
    pc pcs piece pieces pk pack packs page pages sheet sheets
    pixel pixels px pin pins way ways core cores cell cells
    gen th st nd rd pcs s
    """.split()
)
#: Colour words: a colour is a property of a product, not its type.
COLOUR_WORDS = frozenset(
    """
    black white red green blue yellow cyan magenta grey gray silver gold orange pink purple
    brown beige violet transparent clear light dark multicolour multicolor colour color colours colors
    """.split()
)
#: Words a catalog uses about its products that a shopper does not type alone
#: or at the end of a phrase ("samsung series", "hp original").
GENERIC_WORDS = frozenset(
    """
    series edition collection version model models type types style kit set
    original genuine compatible product products item items accessory accessories
    """.split()
)
_NOT_PHRASE_END = STOP_WORDS | UNIT_WORDS | COLOUR_WORDS | GENERIC_WORDS
_NOT_TYPE_WORD = STOP_WORDS | UNIT_WORDS | COLOUR_WORDS

_TOKEN_RE = re.compile(r"[^\W_]+")
_LETTERS_RE = re.compile(r"^[^\W\d_]{2,}$")
_HAS_LETTER_RE = re.compile(r"[^\W\d_]")
# "6ft", "10m", "3.5in", "1500mah": a number glued to a unit is a measurement.
_MEASURE_RE = re.compile(r"^\d+(?:[.,]\d+)?([^\W\d_]+)$")
# Where a title's noun phrases end: dashes between spaces, punctuation, brackets.
_SEGMENT_RE = re.compile(r"\s[-–—]\s|[,;:()\[\]{}|+&!?]|\s/\s|\s[-–—]$|^[-–—]\s")

#: How much each rule's phrases weigh against others describing as many
#: products: what a product *is* (its type, its brand) first, narrower
#: phrases after, single title words last.
RULE_FACTORS = {
    "product_type": 1.0,
    "brand": 1.0,
    "type_word": 0.9,
    "model_family": 0.9,
    "brand_type": 0.85,
    "type_attribute": 0.85,
    "keyword": 0.8,
    # A product's own name ranks under the shop's types and brands in the first stage.
    "product_name": 0.5,
}
#: Longest product-name phrase, in words.
PRODUCT_NAME_WORDS = 10
#: ``product_names="auto"`` mines names when the median title has at most this many words.
AUTO_PRODUCT_NAME_WORDS = 6

#: Longest type phrase, in words ("fiber optic cable").
MAX_TYPE_WORDS = 3
#: Products that must name themselves by a shorter ending of a type for the
#: ending to count as a type (see ``whole`` in :func:`mine_phrases`).
MIN_WHOLE = 2
#: Share of a head word's title occurrences that end a noun run: above it, a
#: word never seen in an explicit type is taken as a head noun.
MIN_HEADNESS = 0.5
#: Share of a series word's products that must be one brand's for the series
#: to be suggested without its brand.
MIN_SERIES_BRAND_SHARE = 0.8
#: Attribute values longer than this (characters) are descriptions, not modifiers.
MAX_MODIFIER_VALUE = 24
#: Distinct values an attribute may have among one type's products and still
#: distinguish them (more is free text or a measurement).
MAX_MODIFIER_VALUES = 12


def _fold(word: str) -> str:
    folded = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def analyse(text: str) -> list[str]:
    """Words of ``text`` as the search engines index them: split on anything
    that is not a letter or digit, lower-cased, accents folded ("Core™" is
    "core", "Café" is "cafe")."""
    return [_fold(word) for word in _TOKEN_RE.findall((text or "").lower())]


def is_measurement(word: str) -> bool:
    """A number, or a number glued to a unit ("6ft", "10m")."""
    if word.replace(".", "").replace(",", "").isdigit():
        return True
    match = _MEASURE_RE.match(word)
    return bool(match) and match.group(1) in UNIT_WORDS


def is_type_word(word: str) -> bool:
    """A word that may be part of a product type: letters only, not a stop
    word, unit or colour."""
    return bool(_LETTERS_RE.match(word)) and word not in _NOT_TYPE_WORD


def is_phrase(words: tuple[str, ...] | list[str]) -> bool:
    """Whether ``words`` is a phrase a shopper would type: it neither starts
    nor ends on a stop word, unit, colour or generic catalog word, ends on a
    word with a letter, and holds no measurement."""
    if not words:
        return False
    first, last = words[0], words[-1]
    if first in STOP_WORDS or last in _NOT_PHRASE_END or not _HAS_LETTER_RE.search(last):
        return False
    return not any(is_measurement(w) for w in words)


def _remove(text: str, phrase: str) -> str:
    phrase = " ".join((phrase or "").split())
    if not phrase:
        return text
    # Whole words only: brand "HP" must not eat the "hp" of "hpc".
    return re.sub(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", " ", text, flags=re.IGNORECASE)


def noun_runs(text: str) -> list[tuple[tuple[str, ...], bool]]:
    """Maximal runs of type words in each segment of ``text``.

    A code ("MBS-100", "TK-570C": a space-separated token with a digit) breaks
    a run whole, so its letters never join a type; a hyphenated name
    ("Mini-HDMI") adds its words.

    Returns:
        ``(words, at_end)`` per run, in text order; ``at_end`` tells that only
        numbers, measurements, units and colours follow the run in its segment
        ("Notebook 35.6 cm"), the place of a head noun in a product title.
    """
    runs: list[tuple[tuple[str, ...], bool]] = []
    for segment in _SEGMENT_RE.split(text or ""):
        current: list[str] = []
        raw = segment.split()
        for i, token in enumerate(raw):
            words = [] if any(ch.isdigit() for ch in token) else analyse(token)
            # "Wi-Fi", "USB-C": a hyphenated name with a one- or two-letter
            # part is a name of its own, not words of a type.
            if len(words) > 1 and any(len(w) <= 2 for w in words):
                words = []
            if words and all(is_type_word(w) for w in words):
                current.extend(words)
                continue
            if current:
                rest = [w for t in raw[i:] for w in analyse(t)]
                at_end = all(is_measurement(w) or w in UNIT_WORDS or w in COLOUR_WORDS for w in rest)
                runs.append((tuple(current), at_end))
                current = []
        if current:
            runs.append((tuple(current), True))
    return runs


def head_phrases(run: tuple[str, ...], heads: set[str] | dict) -> list[tuple[str, ...]]:
    """The parts of a run that end on a head noun not followed by another:
    "household battery rechargeable battery nickel" gives "household
    battery" and "rechargeable battery"; "flat panel monitor stand" stays
    whole (a compound ends on its last noun)."""
    out = []
    start = 0
    for i, word in enumerate(run):
        if word in heads and (i + 1 == len(run) or run[i + 1] not in heads):
            out.append(run[start:i + 1])
            start = i + 1
    return out


class MatchIndex:
    """Which documents every word occurs in, as search matches words.

    Built from the searchable fields of each document; :meth:`count` is the
    number of documents holding every word of a phrase.
    """

    FIELDS = ("title", "brand", "product_type", "model_number", "description")

    def __init__(self) -> None:
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._sets: dict[str, frozenset[int]] = {}
        self._brands: list[str] = []
        self.size = 0

    def add(self, doc: ProductDocument) -> int:
        """Index ``doc``; returns its number in the index."""
        number = self.size
        self.size += 1
        self._brands.append(normalize_query(doc.brand))
        words = set()
        for name in self.FIELDS:
            words.update(analyse(str(getattr(doc, name) or "")))
        for word in words:
            self._postings[word].append(number)
        return number

    def _docs(self, word: str) -> frozenset[int]:
        found = self._sets.get(word)
        if found is None:
            found = self._sets[word] = frozenset(self._postings.get(word, ()))
        return found

    def brand_share(self, word: str, brand: str) -> float:
        """Share of the documents holding ``word`` whose brand is ``brand``."""
        docs = self._postings.get(word, ())
        return sum(1 for i in docs if self._brands[i] == brand) / len(docs) if docs else 0.0

    def count(self, phrase: str) -> int:
        """Documents holding every word of ``phrase`` (0 for a phrase without words)."""
        words = sorted(set(analyse(phrase)), key=lambda w: len(self._postings.get(w, ())))
        if not words:
            return 0
        found = self._docs(words[0])
        for word in words[1:]:
            if not found:
                break
            found = found & self._docs(word)
        return len(found)


@dataclass
class _Doc:
    brand: str
    brand_words: tuple[str, ...]
    explicit_type: str
    runs: list[tuple[tuple[str, ...], bool]]
    description_runs: list[tuple[tuple[str, ...], bool]]
    after_brand: tuple[str, ...]
    title_words: frozenset[str]
    modifiers: list[tuple[str, str]] = field(default_factory=list)
    title: str = ""


@dataclass(frozen=True)
class CatalogPhrase:
    """A mined phrase: its rule, the products it describes, the documents
    holding all its words."""

    text: str
    rule: str
    products: int
    matching: int

    @property
    def score(self) -> float:
        """log(1 + products), scaled by the rule's factor (:data:`RULE_FACTORS`)."""
        return math.log1p(self.products) * RULE_FACTORS.get(self.rule, 0.5)


def _modifier_values(attributes: dict) -> list[tuple[str, str]]:
    """(attribute, word) for each short text value that is one word ("Wireless",
    "Laser"), or one word and a word of the type's family ("Laser printing"):
    the values that read as an adjective before the type."""
    out = []
    for name, value in (attributes or {}).items():
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODIFIER_VALUE:
            continue
        words = analyse(value)
        if 1 <= len(words) <= 2 and is_type_word(words[0]) and len(words[0]) >= 3 and words[0] not in GENERIC_WORDS:
            out.append((str(name), " ".join(words)))
    return out


def _plain_words(tokens: list[str]) -> list[str]:
    """The space-separated tokens that are one word: no code ("M404dn"), no
    hyphenated name ("Wi-Fi" would give "wi")."""
    out = []
    for token in tokens:
        words = analyse(token)
        if len(words) == 1 and not any(ch.isdigit() for ch in token):
            out.append(words[0])
    return out


def _read(doc: ProductDocument) -> _Doc:
    brand = normalize_query(doc.brand)
    title = _remove(_remove(doc.title or "", doc.brand), doc.model_number)
    description = _remove(_remove(doc.description or "", doc.brand), doc.model_number)
    title_words = analyse(doc.title)
    brand_words = tuple(analyse(doc.brand))
    after: list[str] = []
    raw = (doc.title or "").split()
    n = len(analyse(" ".join(raw[:len((doc.brand or "").split())])))
    if brand_words and n == len(brand_words) and tuple(title_words[:n]) == brand_words:
        # The series: whole words after the brand; a code ("CLT-K406S") ends it.
        for token in raw[len(doc.brand.split()):]:
            words = analyse(token)
            if len(words) != 1 or any(ch.isdigit() for ch in token) or len(after) == 2:
                break
            after.append(words[0])
    return _Doc(brand=brand, brand_words=brand_words, explicit_type=normalize_query(doc.product_type),
                runs=noun_runs(title), description_runs=noun_runs(description)[:4], after_brand=tuple(after),
                title_words=frozenset(_plain_words(raw)),
                modifiers=_modifier_values(doc.attributes), title=doc.title or "")


def _endings(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Trailing phrases of a run, longest first: the whole run when it has at
    most ``MAX_TYPE_WORDS`` words, and its endings of two words and one. An
    ending of three words cut from a longer run ("speed hdmi cable" of "high
    speed hdmi cable") would be a fragment."""
    out = [words] if 2 < len(words) <= MAX_TYPE_WORDS else []
    return out + [words[-n:] for n in range(min(2, len(words)), 0, -1)]


def _similar(a: str, b: str) -> bool:
    # "printing" before "printer" says nothing new.
    return a[:5] == b[:5]


def _split_brand(text: str, brands: Counter) -> list[tuple[str, str]]:
    """(brand, rest) for each brand that ``text`` starts with."""
    words = text.split()
    out = []
    for i in range(1, len(words)):
        head = " ".join(words[:i])
        if head in brands:
            out.append((head, " ".join(words[i:])))
    return out


def product_name_phrases(title: str, *, max_words: int = PRODUCT_NAME_WORDS) -> list[str]:
    """The leading-words phrases of a product title, shortest first: the
    normalised title's first 1..``max_words`` words, except those ending on a
    stop word or holding no letter."""
    words = normalize_query(title).split()
    return [" ".join(words[:n]) for n in range(1, min(len(words), max_words) + 1)
            if words[n - 1] not in STOP_WORDS and any(_HAS_LETTER_RE.search(w) for w in words[:n])
            and len(" ".join(words[:n])) >= 2]


def mine_phrases(documents: Iterable[ProductDocument], *, min_products: int = 3,
                 progress: Callable[[int], None] | None = None,
                 product_names: bool | str = False) -> dict[str, CatalogPhrase]:
    """Cold-start phrases of a catalog (see the module docstring).

    Args:
        documents: Every searchable product document.
        min_products: A phrase must describe at least this many products and
            its words must occur together in at least this many documents
            (product names: one).
        progress: Called with 1 after each document is read.
        product_names: Mine the ``product_name`` rule: ``True``, ``False`` or
            ``"auto"`` (when the median title is short).

    Returns:
        Text → phrase; a text found by several rules keeps the one of the
        highest :attr:`CatalogPhrase.score`.
    """
    index = MatchIndex()
    docs: list[_Doc] = []
    for doc in documents:
        index.add(doc)
        docs.append(_read(doc))
        if progress:
            progress(1)

    # Head nouns: last words of explicit types, and words that mostly end a
    # noun run at the end of a title segment.
    explicit = Counter(d.explicit_type for d in docs if d.explicit_type)
    heads: Counter = Counter()
    for text, n in explicit.items():
        words = text.split()
        if words and is_type_word(words[-1]):
            heads[words[-1]] += n
    ends: Counter = Counter()
    seen: Counter = Counter()
    for d in docs:
        for word in {w for words, _end in d.runs for w in words}:
            seen[word] += 1
        for word in {words[-1] for words, at_end in d.runs if at_end}:
            ends[word] += 1
    for word, n in ends.items():
        if n >= min_products and n / seen[word] >= MIN_HEADNESS and word not in GENERIC_WORDS:
            heads[word] += n

    # Candidate type phrases of the untyped products: trailing phrases of the
    # runs that end on a head noun, from the title, else the description.
    def runs_of(d: _Doc) -> list[tuple[str, ...]]:
        found = [p for words, _end in d.runs for p in head_phrases(words, heads)]
        return found or [p for words, _end in d.description_runs for p in head_phrases(words, heads)]

    support: Counter = Counter()
    # How many products name themselves by exactly this phrase (a whole head
    # phrase, or their own type): an ending of a longer type is a type of its
    # own only when some do ("patch cable" of "fiber patch cable" is; "supply"
    # of "power supply" and "unit" of "power distribution unit" are not).
    whole: Counter = Counter()
    for d in docs:
        if d.explicit_type:
            whole[tuple(d.explicit_type.split())] += 1
        else:
            for phrase in {e for words in runs_of(d) for e in _endings(words)}:
                support[phrase] += 1
            for phrase in {words for words in runs_of(d) if len(words) <= MAX_TYPE_WORDS}:
                whole[phrase] += 1
    # Explicit types and their endings ("coffee maker" of "drip coffee maker").
    known = {e for t in explicit for e in _endings(tuple(t.split()))} | {tuple(t.split()) for t in explicit}

    def types_of(d: _Doc) -> list[tuple[str, ...]]:
        """The product's types, its own first: for each head phrase of its title
        (else description), the longest ending that is a known type or shared
        by enough products."""
        found = [tuple(d.explicit_type.split())] if d.explicit_type else []
        for words in runs_of(d):
            for ending in _endings(words):
                if ending in known or support[ending] >= min_products:
                    if ending not in found:
                        found.append(ending)
                    break
        return found

    counts: dict[str, Counter] = {rule: Counter() for rule in (
        "product_type", "type_word", "brand", "brand_type", "type_attribute", "model_family", "keyword")}
    modifier_values: dict[tuple[str, str], set[str]] = defaultdict(set)
    families: Counter = Counter()
    type_word_types: dict[str, set[str]] = defaultdict(set)
    series_brands: dict[str, Counter] = defaultdict(Counter)
    typed: list[tuple[_Doc, tuple[str, ...]]] = []
    for d in docs:
        types = types_of(d)
        ptype = types[0] if types else ()
        typed.append((d, ptype))
        if d.brand:
            counts["brand"][d.brand] += 1
        for word in d.title_words:
            if is_type_word(word) and word not in GENERIC_WORDS and word not in d.brand_words:
                counts["keyword"][word] += 1
        texts = ({" ".join(e) for t in types for e in _endings(t) if whole[e] >= MIN_WHOLE}
                 | {" ".join(t) for t in types})
        for text in texts:
            counts["product_type"][text] += 1
            if d.brand:
                counts["brand_type"][f"{d.brand} {text}"] += 1
        for t in types:
            if len(t) > 1:
                type_word_types[t[0]].add(" ".join(t))
        for word in {t[0] for t in types if len(t) > 1}:
            counts["type_word"][word] += 1
        if ptype:
            for attribute, word in d.modifiers:
                modifier_values[(" ".join(ptype), attribute)].add(word)
        # Model families: the words after the brand, up to the first that is
        # not part of a name.
        family: list[str] = []
        for word in d.after_brand:
            if (not _HAS_LETTER_RE.search(word) or is_measurement(word) or word in _NOT_PHRASE_END
                    or word in heads or len(word) < 2):
                break
            family.append(word)
            families[(d.brand, tuple(family))] += 1
        if family:
            series_brands[family[0]][d.brand] += 1

    for d, ptype in typed:
        if not ptype:
            continue
        type_text = " ".join(ptype)
        for attribute, value in d.modifiers:
            values = modifier_values[(type_text, attribute)]
            word, *rest = value.split()
            if rest and not any(_similar(rest[0], w) for w in ptype):
                continue  # "Wi-Fi", "Serial ATA": not an adjective of the type
            if 2 <= len(values) <= MAX_MODIFIER_VALUES and word not in ptype and not any(
                    _similar(word, w) for w in ptype):
                counts["type_attribute"][f"{word} {type_text}"] += 1
    # A title word that is nearly always a brand's ("lite" of "Tripp Lite",
    # "com" of "StarTech.com") is that brand, not a word of its own.
    brand_of_word = {w: b for b in counts["brand"] for w in analyse(b)}
    for word in [w for w in counts["keyword"] if w in brand_of_word
                 and index.brand_share(w, brand_of_word[w]) >= MIN_SERIES_BRAND_SHARE]:
        del counts["keyword"][word]
    # A type's first word alone ("laptop") only when it starts several types.
    for word in [w for w, types in type_word_types.items() if len(types) < 2]:
        del counts["type_word"][word]
    for (brand, words), n in families.items():
        counts["model_family"][f"{brand} {' '.join(words)}"] += n
        # The series alone ("galaxy") when it is a name, not a common word:
        # nearly every document that holds it is that brand's.
        series = words[0]
        if (len(words) == 1 and len(series) >= 3 and series not in heads
                and index.brand_share(series, brand) >= MIN_SERIES_BRAND_SHARE):
            counts["model_family"][series] += n

    phrases: dict[str, CatalogPhrase] = {}
    for rule, counter in counts.items():
        for text, n in counter.items():
            if n < min_products or not text:
                continue
            # The shop's own types and brands are phrases as they are ("pc" is
            # a unit in "6 pc(s)", and a type when the shop says so).
            named = rule == "brand" or text in explicit or (
                rule == "brand_type" and any(text == f"{b} {t}" for b, t in _split_brand(text, counts["brand"])
                                             if t in explicit))
            if not named and not is_phrase(text.split()):
                continue
            current = phrases.get(text)
            if current is not None and current.score >= math.log1p(n) * RULE_FACTORS[rule]:
                continue
            matching = index.count(text)
            if matching < min_products:
                continue
            phrases[text] = CatalogPhrase(text=text, rule=rule, products=n, matching=matching)
    if product_names == "auto":
        lengths = sorted(len(normalize_query(d.title).split()) for d in docs)
        product_names = bool(lengths) and lengths[len(lengths) // 2] <= AUTO_PRODUCT_NAME_WORDS
    if product_names:
        names: Counter = Counter()
        for d in docs:
            names.update(set(product_name_phrases(d.title)))
        for text, n in names.items():
            current = phrases.get(text)
            if current is not None and current.score >= math.log1p(n) * RULE_FACTORS["product_name"]:
                continue
            matching = index.count(text)
            if matching:
                phrases[text] = CatalogPhrase(text=text, rule="product_name", products=n, matching=matching)
    return phrases
