"""Mapping of Open Icecat product records onto :class:`catalog.models.Product` fields.

Pure functions, no database: :func:`product_fields` turns one record of the
Icecat JSON dump into keyword arguments for ``Product``; the two heuristics it
uses (:func:`looks_like_model_code`, :func:`derive_product_type`) are exposed
for tests and reuse.

Contracts:
* ``product_fields(record)`` never raises on missing or oddly typed optional
  keys; only ``id`` and ``title`` are required (``KeyError`` otherwise).
* ``derive_product_type`` returns a lowercase category phrase such as
  ``"toner cartridge"``, or ``""`` when the title has none.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

#: Words that never make a product type on their own: connectives, units,
#: colours and packaging words that follow numbers in Icecat titles
#: ("230 W", "6 pc(s)", "Light magenta", "1500 pages").
IGNORED_WORDS = frozenset(
    """
    a an and or of for with without in on to by from the incl including per via x
    m cm mm km g kg mg l ml w kw v mv a ah mah hz khz mhz ghz mb gb tb kb
    in ft inch inches pc pcs pages page sheets sheet pixels pixel ppm ipm dpi rpm
    bit bits channel channels w/ w/o up over one not categorized other type
    series edition collection de luxe van stuks
    black white red green blue yellow cyan magenta grey gray silver gold
    orange pink purple brown beige violet transparent light dark
    """.split()
)

# A word of a product type: lowercase letters, optionally with '/' or '-'
# inside ("power adapter/inverter", "all-in-one"); must start with a letter.
_TYPE_WORD_RE = re.compile(r"^[a-z][a-z/\-]*$")
# Punctuation that may trail a word and ends the phrase after it.
_TRAILING_PUNCT = ",;:"
_MODEL_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_\-+#()]*$")


def looks_like_model_code(name: str) -> bool:
    """Tell whether Icecat's ``name`` is a model code rather than a product name.

    Icecat's ``name`` is either a manufacturer code ("006R90321",
    "TL-WA860RE", "EC.J6000.001", "85") or a marketing name ("Waste Toner
    Container"). A code is one token with at least one digit.

    Args:
        name: The ``name`` value of an Icecat record.

    Returns:
        True for a single token of code characters that contains a digit.
    """
    name = (name or "").strip()
    if not name or len(name) > 64 or any(ch.isspace() for ch in name):
        return False
    return bool(_MODEL_CODE_RE.match(name)) and any(ch.isdigit() for ch in name)


def _remove_phrase(text: str, phrase: str) -> str:
    phrase = (phrase or "").strip()
    if not phrase:
        return text
    # Whole-word match only: brand "HP" must not eat the "hp" of "hpc".
    pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
    return re.sub(pattern, " ", text, flags=re.IGNORECASE)


def derive_product_type(title: str, brand: str = "", model_name: str = "") -> str:
    """Derive a category phrase from an Icecat title.

    Icecat titles read "<Brand> <model> <category> <specs…>", with the
    category in lowercase and everything else capitalised or numeric. So:
    remove the brand and the model name, split into words, and take the first
    maximal run of lowercase words (letters, ``/``, ``-``). Runs made only of
    connectives, units or colours are skipped; such words are also trimmed
    from the ends of the chosen run.

    Examples:
        >>> derive_product_type("Xerox 006R90321 toner cartridge Original Black 6 pc(s)", "Xerox", "006R90321")
        'toner cartridge'
        >>> derive_product_type("Acer EC.J6000.001 projector lamp 230 W", "Acer", "EC.J6000.001")
        'projector lamp'

    Args:
        title: The product title.
        brand: The brand (Icecat ``supplier``), removed wherever it occurs.
        model_name: Icecat's ``name``, removed when it occurs in the title.

    Returns:
        The phrase in lowercase, or ``""`` when the title has none.
    """
    text = _remove_phrase(_remove_phrase(title or "", brand), model_name)
    runs: list[list[str]] = []
    current: list[str] = []
    for token in text.split():
        word = token.rstrip(_TRAILING_PUNCT)
        if _TYPE_WORD_RE.match(word):
            current.append(word)
            if word != token:  # "cable," ends the phrase after "cable"
                runs.append(current)
                current = []
            continue
        if current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)

    for run in runs:
        while run and run[0] in IGNORED_WORDS:
            run = run[1:]
        while run and run[-1] in IGNORED_WORDS:
            run = run[:-1]
        if run:
            return " ".join(run)
    return ""


def normalize_product_type(value: str) -> str:
    """Bring an explicit product type into the style of derived ones.

    Icecat's ``attr_t_product_type`` is sentence case ("Drip coffee maker",
    "Network Interface Card") and sometimes junk ("1"). Capitalised words are
    lowercased, acronyms ("PC", "RAID") are kept; values without letters give
    ``""``.

    Args:
        value: The raw attribute value.

    Returns:
        The normalised phrase, or ``""``.
    """
    value = " ".join(str(value or "").split())
    if sum(ch.isalpha() for ch in value) < 2:
        return ""
    words = [w[0].lower() + w[1:] if w[:1].isupper() and w[1:] == w[1:].lower() else w for w in value.split()]
    return " ".join(words)


def _price(value: Any) -> Decimal | None:
    # Icecat (Chorus edition) prices are integers in cents.
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        cents = Decimal(str(value))
    except InvalidOperation:
        return None
    if not cents.is_finite() or cents < 0:
        return None
    return (cents / 100).quantize(Decimal("0.01"))


def _first(value: Any) -> str:
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return str(value or "").strip()


def product_fields(record: dict[str, Any]) -> dict[str, Any]:
    """Map one Icecat record onto ``Product`` field values.

    Args:
        record: One element of an ``icecat_products_*.json`` array.

    Returns:
        Keyword arguments for ``Product`` (without primary key or timestamps).

    Raises:
        KeyError: When the record has no ``id`` or ``title``.
    """
    title = " ".join(str(record["title"]).split())
    brand = str(record.get("supplier") or "").strip()
    name = str(record.get("name") or "").strip()
    attributes = {
        key[len("attr_x_"):]: value
        for key, value in record.items()
        if key.startswith(("attr_t_", "attr_n_"))
    }
    product_type = normalize_product_type(record.get("attr_t_product_type") or "")
    if not product_type:
        product_type = derive_product_type(title, brand, name)
    return {
        "source_id": str(record["id"]),
        "title": title[:300],
        "brand": brand[:100],
        "model_number": name if looks_like_model_code(name) else "",
        "product_type": product_type[:100],
        "price": _price(record.get("price")),
        "description": str(record.get("short_description") or "").strip(),
        "ean": _first(record.get("ean"))[:20],
        "image_url": (str(record.get("img_500x500") or record.get("img_high") or "").strip())[:500],
        "attributes": attributes,
    }


#: Units Open Icecat stores numeric specs in, by the end of the attribute name.
_UNITS = (("_weight", "g"), ("_length", "m"), ("_width", "mm"), ("_height", "mm"), ("_depth", "mm"),
          ("_thickness", "mm"), ("_diameter", "mm"))


def _number(value: float) -> str:
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text or "0"


def format_attribute(name: str, value: Any) -> str:
    """A spec value as a shopper reads it: "326 kg", "1.8 m", "33.6 mm", "Black".

    Icecat numeric specs (``attr_n_*``) are floats in fixed units: grams,
    metres for cable and cord lengths, millimetres for dimensions. Names
    without a known unit show the number alone, without a trailing ".0".
    """
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if not isinstance(value, (int, float)):
        return str(value)
    key = f"_{name}" if not name.startswith("_") else name
    unit = next((u for suffix, u in _UNITS if key.endswith(suffix) and "imperial" not in key), "")
    if unit == "g" and abs(value) >= 1000:
        return f"{_number(value / 1000)} kg"
    if unit == "m" and not key.endswith(("cable_length", "cord_length", "roll_length")):
        unit = "mm"  # lengths other than cables' are dimensions
    return f"{_number(value)} {unit}".strip()


def format_attribute_name(name: str) -> str:
    """Icecat's flattened spec names back in words: ``dimensions__wxdxh_`` →
    "Dimensions (wxdxh)", ``cable_length`` → "Cable length"."""
    head, sep, rest = name.partition("__")
    words = " ".join(head.replace("_", " ").split()).capitalize()
    if sep:
        inner = " ".join(rest.strip("_").replace("__", " ").replace("_", " ").split())
        if inner:
            words += f" ({inner})"
    return words
