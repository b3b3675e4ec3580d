"""Query text helpers: normalisation, matching keys, private-content detection, hashing.

Contracts:

* :func:`normalize_query` is the one canonical form used for storage,
  aggregation, suggestion keys and prefix matching; it is idempotent. It drops
  invisible characters (zero-width, soft hyphen, bidi and other format
  controls, control characters) but keeps every script as typed: a Cyrillic or
  Chinese query is stored in Cyrillic or Chinese.
* :func:`match_key` is the one form used to *test* text (blocked terms, the
  privacy filter; the k-anonymity gate counts shoppers per canonical form, so
  an invisible character cannot split or forge a count): the canonical
  form, case-folded, with words written in look-alike characters (Unicode
  confusables, e.g. a Cyrillic ``а`` in ``cаsino``) mapped to the Latin word
  they imitate. It is never stored or shown.
* :func:`looks_private` and :func:`is_suggestible` decide what may become a
  public suggestion; both work on any text (they apply the forms above).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import unicodedata

import re2

_SPACE_RE = re.compile(r"\s+")
# Punctuation that separates words in queries; kept characters (. - / + # & ')
# occur inside product names such as "startech.com", "usb-c", "3.5mm", "c++".
_STRIP_RE = re.compile(r"[\"“”‘’`´,;:!?¡¿()\[\]{}<>|\\*^~=_]+")
# ASCII control characters other than whitespace (whitespace becomes a space).
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
# Default-ignorable code points that are not format characters (Cf), from
# Unicode's DerivedCoreProperties (Default_Ignorable_Code_Point): combining
# grapheme joiner, Hangul fillers, variation selectors. They render as nothing,
# so they can hide inside a word just like a zero-width space.
_IGNORABLE_MARKS_RE = re.compile("[\u034f\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def _is_invisible(ch: str) -> bool:
    category = unicodedata.category(ch)
    # Cf: zero-width space/joiners, word joiner, BOM, soft hyphen, bidi
    # controls; Cs: lone surrogates (cannot even be encoded for the database);
    # Cc: controls, except the whitespace ones (tab, newline), which separate.
    return category in ("Cf", "Cs") or (category == "Cc" and not ch.isspace())


def strip_invisible(text: str) -> str:
    """Remove characters that render as nothing (see the module contract).

    Args:
        text: Any text.

    Returns:
        ``text`` without zero-width, format, surrogate and non-whitespace
        control characters; whitespace controls are kept (they separate words).
    """
    if text.isascii():
        return _ASCII_CONTROL_RE.sub("", text)
    text = _IGNORABLE_MARKS_RE.sub("", text)
    return "".join(ch for ch in text if not _is_invisible(ch))


def normalize_query(text: str) -> str:
    """Return the canonical form of a query.

    Removes invisible characters, NFKC-folds (full-width to half-width,
    ligatures), lower-cases, replaces separator punctuation by spaces and
    collapses whitespace. CJK and other scripts are kept as they are.

    Args:
        text: A query as typed (``None`` and ``""`` give ``""``).

    Returns:
        The canonical form; ``normalize_query`` of it is itself.
    """
    # Invisible characters go first: removing them later could leave text that
    # NFKC would compose differently on a second pass.
    text = unicodedata.normalize("NFKC", strip_invisible(text or "")).lower()
    # Lower-casing can produce text that NFKC changes again (e.g. "ϴ"); a
    # second pass keeps the form idempotent.
    text = unicodedata.normalize("NFKC", text)
    text = _STRIP_RE.sub(" ", text)
    return _SPACE_RE.sub(" ", text).strip()


def normalize_prefix(prefix: str) -> str:
    """Normalise what a shopper has typed so far like a suggestion key, keeping
    one trailing space when they typed one ("hp " must not complete to "hpe")."""
    key = normalize_query(prefix)
    if key and prefix[-1:].isspace():
        key += " "
    return key


def facet_key(value: str) -> str:
    """Case- and space-insensitive form of a brand or product type, used for
    filters and facets."""
    return " ".join((value or "").split()).lower()


# -- the matching key ----------------------------------------------------------------

# Runs of letters and digits: the unit whose look-alike characters are mapped.
_ALNUM_RUN_RE = re.compile(r"[^\W_]+")


@functools.cache
def _latin_lookalikes() -> dict[str, str]:
    """Non-ASCII characters that Unicode's confusables data says look like one
    ASCII letter or digit, mapped to it (case-folded).

    Loaded on first use: the data is about 1 MB of JSON.
    """
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[str, str] = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        # The data lists each character's look-alikes in both directions (some
        # wrapped in left-to-right marks); keep the plain ASCII ones.
        ascii_like = {h["c"].strip("\u200e").casefold() for h in homoglyphs}
        ascii_like = {c for c in ascii_like if len(c) == 1 and c.isascii() and c.isalnum()}
        if len(ascii_like) == 1:
            table[char] = ascii_like.pop()
    return table


def _ascii_lookalike(ch: str, table: dict[str, str]) -> str:
    if ch.isascii():
        return ch
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        # A decimal digit of any script is that digit ("٠٧٩" is "079"): a
        # canonical property, not a look-alike.
        return str(digit)
    return table.get(ch, ch)


def _is_latin(ch: str) -> bool:
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN ")


def _latin_word(match: re.Match) -> str:
    word = match.group()
    if word.isascii():
        return word
    table = _latin_lookalikes()
    mapped = "".join(_ascii_lookalike(ch, table) for ch in word)
    # Only a word that becomes entirely Latin is a disguised Latin word
    # ("cаsino" with a Cyrillic а). A word that keeps letters with no Latin
    # look-alike ("ноутбук") is genuine text in its own script and stays as
    # typed, so a Latin term cannot match pieces of it.
    return mapped if all(_is_latin(ch) for ch in mapped) else word


def match_key(text: str) -> str:
    """The form in which text is tested against blocked terms, the privacy
    filter and the k-anonymity gate (see the module contract).

    :func:`normalize_query`, then Unicode case folding ("Straße" and "STRASSE"
    agree), then every run of letters and digits that consists of Latin
    letters and look-alikes of Latin letters or digits (Unicode confusables:
    Cyrillic, Greek, Cherokee, mathematical letters …) is rewritten with the
    Latin letters it imitates; decimal digits of any script become ASCII
    digits. ASCII characters are never changed: mapping ``0`` to ``o`` or
    ``1`` to ``l`` would turn phone numbers into words.

    Args:
        text: Any text (raw or already normalised).

    Returns:
        The key; ``match_key`` of it is itself. Never stored or shown.
    """
    key = normalize_query(text).casefold()
    if key.isascii():
        return key
    return _ALNUM_RUN_RE.sub(_latin_word, key)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")


def contains_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word: neither preceded
    nor followed by a letter, digit, mark or underscore ("bra" is in "sports
    bra", not in "library"; "ноутбук" is not in "ноутбуки").

    Args:
        text: Text to search (a match key).
        word: Word or phrase to find (a match key).

    Returns:
        Whether a whole-word occurrence exists.
    """
    if not word:
        return False
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        if (start == 0 or not _is_word_char(text[start - 1])) and (end == len(text) or not _is_word_char(text[end])):
            return True
        start = text.find(word, start + 1)
    return False


# -- what may become a suggestion ------------------------------------------------------

# Unassigned, private-use and surrogate code points: nothing a shopper can
# read, whatever the font (fuzzers and broken clients send them).
_UNREADABLE_CATEGORIES = frozenset({"Cn", "Co", "Cs"})


def suggestible_chars(text: str) -> int:
    """Letters and digits in ``text``, a wide (East Asian) character counting
    two: one Chinese character is a word ("鞋", shoes), one Latin letter is not."""
    count = 0
    for ch in text:
        if ch.isalnum():
            count += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return count


def is_suggestible(text: str, *, min_chars: int = 2) -> bool:
    """True when ``text`` is fit to be shown as a suggestion, by its form alone.

    Rules: it is already in canonical form (:func:`normalize_query` leaves it
    unchanged, so it holds no invisible or control characters), it has no
    unassigned, private-use or surrogate code point, and it has at least
    ``min_chars`` letters and digits as counted by :func:`suggestible_chars`.
    Whether it is private or popular enough is decided elsewhere.

    Args:
        text: A normalised query.
        min_chars: The minimum count (``SUGGESTIONS_MIN_SUGGESTION_CHARS`` in
            the build).

    Returns:
        Whether the text may become a suggestion.
    """
    if not text or normalize_query(text) != text:
        return False
    if not text.isascii() and any(unicodedata.category(ch) in _UNREADABLE_CATEGORIES for ch in text):
        return False
    return suggestible_chars(text) >= min_chars


# -- private content -------------------------------------------------------------------

# The e-mail patterns run on RE2: with a backtracking engine, "[^\s@]+@" alone
# is quadratic in the length of a long word without "@".
_EMAIL_RE = re2.compile(r"[^\s@]+@[^\s@]+\.[a-z]{2,}")
# E-mail addresses written out to dodge filters: "john.doe at example dot com",
# "john(at)example(dot)com", "jane [at] mail [dot] de" (brackets are already
# spaces in the key). A name, "@" or " at ", then a domain with at least one
# " dot " or "." and a final label of letters. Requiring all three keeps
# "shoes at target" and "dot matrix printer" out.
_DOT = r"(?:\s*\.\s*|\s+dot\s+)"
_OBFUSCATED_EMAIL_RE = re2.compile(
    rf"[^\s@]+(?:\s*@\s*|\s+at\s+)[a-z0-9][a-z0-9\-]*(?:{_DOT}[a-z0-9][a-z0-9\-]*)*{_DOT}[a-z]{{2,}}"
)
# A phone number: optional +, then 9+ digits with common separators; never
# starting right after a letter ("mp3 20110902" is a product and a date).
_PHONE_RE = re.compile(r"(?<![^\W\d_])(?:\+\s*)?\d(?:[\s\-./()]*\d){8,}")
# A number right after a word that says it is one ("call 07946095812",
# "whatsapp me on 7946 095812", "tel: 555 1234567"): seven digits or more,
# separated or not. "call of duty 4" and "ring size 7" have no such number.
_PHONE_CUE_RE = re.compile(
    r"\b(?:call|phone|tel|telephone|mobile|cell|cellphone|whatsapp|viber|telegram|ring|text|sms|fax)\b"
    r"(?:\s*(?:me|us|on|at|no|nr|number|#|-|\.))*\s*\+?\d(?:[\s\-./]*\d){6,}"
)
# An unseparated number that starts like a phone number in national (0…) or
# international (+…, 00…) form: 10 to 15 digits standing alone.
_DIALLED_RE = re.compile(r"(?<![\w+])(\+?)(\d{10,15})(?!\w)")
_DIGIT_RUN_RE = re.compile(r"\d(?:[\s\-]*\d){12,18}")
_LONG_GROUP_RE = re.compile(r"\d{6,}")


def _is_code_list(raw: str) -> bool:
    # Two or more groups of 6+ digits ("2371074 2126339") are SKUs or part
    # numbers pasted into the box; phone and card numbers are grouped in
    # shorter blocks (except the national part of some phone numbers, which
    # then stands alone).
    return len(_LONG_GROUP_RE.findall(raw)) >= 2


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _gtin_ok(digits: str) -> bool:
    """GS1 check digit of an EAN-8/UPC-A/EAN-13/GTIN-14 (weights 3, 1 from the right)."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _isbn10_ok(digits: str) -> bool:
    return sum((10 - i) * int(d) for i, d in enumerate(digits)) % 11 == 0


def _is_product_code(digits: str) -> bool:
    # Shoppers paste barcodes and ISBNs, and many start with 0 (a UPC-A as
    # EAN-13 starts with 0, English-language ISBN-10s with 0). A code whose
    # check digit is right is taken for a product; a phone number passes one
    # of these checks by chance about once in ten, an accepted miss.
    if len(digits) in (12, 13, 14):
        return _gtin_ok(digits)
    if len(digits) == 10:
        return _isbn10_ok(digits)
    return False


def _looks_dialled(key: str) -> bool:
    for match in _DIALLED_RE.finditer(key):
        plus, digits = match.groups()
        # "+" only ever prefixes a phone number; a leading 0 is the national
        # trunk prefix (or 00, the international one) unless the digits are a
        # valid barcode or ISBN. Codes without a leading 0 (EAN-13 such as
        # 4006381333931, SKUs, dates) are not phone-shaped.
        if plus or (digits.startswith("0") and not _is_product_code(digits)):
            return True
    return False


def _looks_like_card(key: str) -> bool:
    for match in _DIGIT_RUN_RE.finditer(key):
        raw = match.group()
        digits = re.sub(r"\D", "", raw)
        if not (13 <= len(digits) <= 19 and _luhn_ok(digits)) or _is_code_list(raw):
            continue
        # A 13-digit EAN passes Luhn about once in ten; 13-digit card numbers
        # are no longer issued, so an unseparated 13-digit valid EAN is a
        # product ("5901234123457"), not a card.
        if len(digits) == 13 and raw.isdigit() and _gtin_ok(digits):
            continue
        return True
    return False


def looks_private(text: str) -> bool:
    """True when ``text`` contains an e-mail address (also written out, "john
    at example dot com"), a phone number (separated, after a word such as
    "call" or "tel", or an unseparated number dialled with + or 0) or a
    payment-card-like number (13–19 digits passing the Luhn check).

    Tested on :func:`match_key`, so look-alike and invisible characters do not
    hide anything. Such queries are never turned into suggestions, whatever
    their popularity. Product codes stay public: barcodes (EAN/UPC with a
    valid check digit), ISBN-10s, SKU lists and model numbers after a word.

    Args:
        text: Any text.

    Returns:
        Whether the text may identify or reach a person.
    """
    key = match_key(text)
    if _EMAIL_RE.search(key) or _OBFUSCATED_EMAIL_RE.search(key):
        return True
    if _looks_like_card(key) or _looks_dialled(key) or _PHONE_CUE_RE.search(key):
        return True
    for match in _PHONE_RE.finditer(key):
        digits = re.sub(r"\D", "", match.group())
        # Long digit strings that are not separated like a phone number are
        # usually EANs or part numbers; require a separator or a leading +.
        raw = match.group()
        if _is_code_list(raw):
            continue
        if len(digits) >= 9 and (raw.lstrip().startswith("+") or re.search(r"[\s\-./()]", raw)):
            return True
    return False


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, what ``uuid.uuid4().hex`` gives.

    Every answer gets one (clicks refer to it). Setting the version and variant
    bits on 16 random bytes directly costs a quarter of building a ``uuid.UUID``
    (0.7 µs against 2.8 µs, timeit), on the path of every keystroke."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def hash_identifier(value: str, salt: str) -> str:
    """HMAC-SHA256 of an identifier (session key, imported user id), hex.

    Stored instead of the identifier itself so that history can count distinct
    shoppers without keeping anything that identifies them outside this shop.
    """
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
