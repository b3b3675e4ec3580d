"""Query text helpers: normalisation, private-content detection, hashing.

Contract: :func:`normalize_query` is the one canonical form used for storage,
aggregation, suggestion keys and prefix matching; it is idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_SPACE_RE = re.compile(r"\s+")
# Punctuation that separates words in queries; kept characters (. - / + # & ')
# occur inside product names such as "startech.com", "usb-c", "3.5mm", "c++".
_STRIP_RE = re.compile(r"[\"“”‘’`´,;:!?¡¿()\[\]{}<>|\\*^~=_]+")


def normalize_query(text: str) -> str:
    """Return the canonical form of a query.

    NFKC-folds (full-width to half-width, ligatures), lower-cases, replaces
    separator punctuation by spaces and collapses whitespace. CJK characters
    are kept as they are.
    """
    text = unicodedata.normalize("NFKC", text or "").lower()
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


_EMAIL_RE = re.compile(r"[^\s@]+@[^\s@]+\.[a-z]{2,}", re.IGNORECASE)
# A phone number: optional +, then 9+ digits with common separators; never
# starting right after a letter ("mp3 20110902" is a product and a date).
_PHONE_RE = re.compile(r"(?<![^\W\d_])(?:\+\s*)?\d(?:[\s\-./()]*\d){8,}")
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


def looks_private(text: str) -> bool:
    """True when ``text`` contains an e-mail address, a phone number or a
    payment-card-like number (13–19 digits passing the Luhn check).

    Such queries are never turned into suggestions, whatever their popularity.
    """
    if _EMAIL_RE.search(text):
        return True
    for match in _DIGIT_RUN_RE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and not _is_code_list(match.group()):
            return True
    for match in _PHONE_RE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        # Long digit strings that are not separated like a phone number are
        # usually EANs or part numbers; require a separator or a leading +.
        raw = match.group()
        if _is_code_list(raw):
            continue
        if len(digits) >= 9 and (raw.lstrip().startswith("+") or re.search(r"[\s\-./()]", raw)):
            return True
    return False


def hash_identifier(value: str, salt: str) -> str:
    """HMAC-SHA256 of an identifier (session key, imported user id), hex.

    Stored instead of the identifier itself so that history can count distinct
    shoppers without keeping anything that identifies them outside this shop.
    """
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
